"""Passwords and tokens, with no web framework in sight.

Passwords are hashed with argon2id in a small thread pool of their own: hashing is slow and
memory-hungry on purpose, so it runs off the event loop, and only a few at once.

Tokens are JWTs signed with one pinned algorithm (HS256). Every claim that matters is required
and checked: exp, iat, sub, iss, aud, and `typ`, so a refresh token is never accepted as an
access token or the other way round. Both carry `sid`, the login session they belong to.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jobrunner.errors import JobrunnerError
from jobrunner.settings import MIN_JWT_SECRET_BYTES

log = structlog.get_logger("jobrunner.auth")

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]
VERIFIED_TOKENS_KEPT = 4096

_hasher = PasswordHasher()  # argon2id with argon2-cffi's recommended (RFC 9106) parameters
_hash_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jobrunner-argon2")


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so both paths take the same time.
    Made at the first such login, not at import: a hash costs ~0.1 s, and every process that
    imports this module (a worker, the CLI) would pay it at start."""
    return _hasher.hash("jobrunner: no such user")


class InvalidToken(JobrunnerError):
    """The token is malformed, forged, expired, or not meant for this use."""


async def hash_password(password: str) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hash_threads, _hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """True if the password matches; a missing hash still costs one verification."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_hash_threads, _verify, password, password_hash)


def _verify(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    sid: uuid.UUID
    jti: uuid.UUID
    typ: TokenType
    exp: int


@dataclass(frozen=True, slots=True)
class TokenCodec:
    """Signs and checks tokens for one issuer and audience."""

    secret: str
    issuer: str
    audience: str
    access_ttl: float
    refresh_ttl: float
    # Access tokens already verified, by their exact text: a client sends the same one on
    # every request until it expires, and checking the signature and claims again each time
    # was a tenth of a submission's cost. Expiry is still checked on every use.
    _verified: dict[str, TokenClaims] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.secret.encode()) < MIN_JWT_SECRET_BYTES:
            raise JobrunnerError(f"the JWT secret needs at least {MIN_JWT_SECRET_BYTES} bytes")

    def encode(
        self,
        typ: TokenType,
        *,
        sub: str,
        sid: uuid.UUID,
        jti: uuid.UUID | None = None,
        iat: int | None = None,
    ) -> str:
        """A signed token; with `jti` and `iat` given, the same text every time."""
        now = int(time.time()) if iat is None else iat
        ttl = self.access_ttl if typ == "access" else self.refresh_ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + int(ttl),
            "typ": typ,
            "sid": str(sid),
            "jti": str(jti or uuid.uuid4()),
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def decode(self, token: str, typ: TokenType) -> TokenClaims:
        if typ == "access":
            return self._decode_access(token)
        return self._decode(token, typ)

    def _decode_access(self, token: str) -> TokenClaims:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token, "access")
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                del self._verified[next(iter(self._verified))]  # the oldest entry
            self._verified[token] = claims
        if claims.exp <= time.time():
            del self._verified[token]
            raise InvalidToken("token expired")
        return claims

    def _decode(self, token: str, typ: TokenType) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "typ", "sid", "jti"]},
            )
            if claims["typ"] != typ:
                raise InvalidToken(f"not an {typ} token")
            return TokenClaims(
                sub=str(claims["sub"]),
                sid=uuid.UUID(str(claims["sid"])),
                jti=uuid.UUID(str(claims["jti"])),
                typ=typ,
                exp=int(claims["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            # PyJWT's own words (which claim, which check) help an attacker probe, not a
            # client: they go to the log, the answer says only this.
            log.debug("token refused", reason=str(exc))
            raise InvalidToken("invalid token") from None
