"""API accounts and their login sessions; the CLI, the API and the dashboard all call these.

A login opens a session and hands out an access token and a refresh token, both naming it.
Refreshing spends the refresh token for a new pair; spending one twice revokes the session,
so a stolen refresh token is good for at most one use, by whichever side uses it first.
One exception: within `REFRESH_GRACE_SECONDS` of a rotation the old token gets the very same
new pair again (two browser tabs refreshing at once), which gives a thief nothing the
rightful holder did not just get.

Usernames are unique whatever their case (`Alice` is taken once `alice` is), and a login
matches the name exactly as registered. A disabled account cannot log in and has no live
session; an account that owns jobs cannot be deleted (their rows name it): disable it.
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from jobrunner.auth import InvalidToken, TokenCodec, hash_password, verify_password
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.errors import JobrunnerError
from jobrunner.models import Role, User

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,64}")  # as the users table's CHECK says
MIN_PASSWORD, MAX_PASSWORD = 8, 1024


class UserExists(JobrunnerError):
    def __init__(self, username: str) -> None:
        super().__init__(f"the username {username!r} is taken")
        self.username = username


class InvalidAccount(JobrunnerError):
    """A username or password that cannot be used."""


class LoginFailed(JobrunnerError):
    """Wrong username or password (deliberately not saying which)."""


class AccountDisabled(JobrunnerError):
    """The password was right, but the account is disabled (or awaits an admin's approval)."""


class UnknownUser(JobrunnerError):
    def __init__(self, username: str) -> None:
        super().__init__(f"no user {username!r}")


class UserHasJobs(JobrunnerError):
    def __init__(self, username: str) -> None:
        super().__init__(f"{username!r} owns jobs, which name their owner: disable the account")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user behind a checked access token and its live session."""

    username: str
    role: Role
    session_id: uuid.UUID

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidAccount(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")


async def create_user(
    conn: Conn, *, username: str, password: str, admin: bool = False, disabled: bool = False
) -> User:
    """A new account; `disabled` (registration awaiting approval) until an admin enables it."""
    if not USERNAME.fullmatch(username):
        raise InvalidAccount("a username is 3 to 64 letters, digits, '_', '.' or '-'")
    _check_password(password)
    password_hash = await hash_password(password)
    user = await queries.user_insert(
        conn,
        username=username,
        password_hash=password_hash,
        role="admin" if admin else "user",
        webhook_secret=new_webhook_secret(),
        disabled=disabled,
    )
    if user is None:
        raise UserExists(username)
    return user


async def list_users(conn: Conn) -> list[User]:
    return await queries.user_list(conn)


async def get_user(conn: Conn, username: str) -> User | None:
    return await queries.user_get(conn, username)


async def login(conn: Conn, codec: TokenCodec, *, username: str, password: str) -> TokenPair:
    found = await queries.user_get_password_hash(conn, username)
    if not await verify_password(password, found[0] if found else None):
        raise LoginFailed("wrong username or password")
    if found is not None and found[1]:  # said only to whoever knows the password
        raise AccountDisabled("this account is disabled or awaits an admin's approval")
    jti = uuid.uuid4()
    session_id = await queries.session_create(
        conn, username=username, ttl=codec.refresh_ttl, refresh_jti=jti
    )
    return _pair(codec, username, session_id, jti)


REFRESH_GRACE_SECONDS = 10.0


async def refresh(
    conn: Conn, codec: TokenCodec, refresh_token: str, *, grace: float = REFRESH_GRACE_SECONDS
) -> TokenPair:
    """Spend a refresh token for a new pair. The same token again within `grace` seconds
    gets the same pair; later, it revokes the session."""
    claims = codec.decode(refresh_token, "refresh")
    new_jti = uuid.uuid4()
    # Separate statements, each atomic; not one transaction, since the revocation must stick.
    spent = await queries.refresh_token_use(
        conn, jti=claims.jti, session_id=claims.sid, new_jti=new_jti
    )
    if spent is not None:
        return _pair(codec, spent[0], claims.sid, new_jti, iat=spent[1])
    again = await queries.refresh_token_successor(
        conn, jti=claims.jti, session_id=claims.sid, grace=grace
    )
    if again is not None:
        successor, username, issued_at = again
        return _pair(codec, username, claims.sid, successor, iat=issued_at)
    if await queries.refresh_token_reused(conn, jti=claims.jti, session_id=claims.sid):
        raise InvalidToken("refresh token used twice: the session is revoked")
    raise InvalidToken("refresh token expired or revoked")


async def logout(conn: Conn, principal: Principal) -> None:
    await queries.session_revoke(conn, session_id=principal.session_id, username=principal.username)


async def logout_everywhere(conn: Conn, username: str) -> None:
    """End every session of the user, this one included."""
    await queries.session_revoke_all(conn, username=username)


async def change_password(conn: Conn, principal: Principal, *, current: str, new: str) -> None:
    """Needs the current password; every other session of the user ends (this one stays)."""
    _check_password(new)
    found = await queries.user_get_password_hash(conn, principal.username)
    if not await verify_password(current, found[0] if found else None):
        raise LoginFailed("the current password is wrong")
    await queries.user_set_password(
        conn,
        username=principal.username,
        password_hash=await hash_password(new),
        keep_session=principal.session_id,
    )


async def set_disabled(conn: Conn, username: str, *, disabled: bool) -> User:
    """Disable (revoking every session at once) or enable an account."""
    user = await queries.user_set_disabled(conn, username=username, disabled=disabled)
    if user is None:
        raise UnknownUser(username)
    return user


async def set_max_priority(conn: Conn, username: str, max_priority: int) -> User:
    """The highest priority the user may give a job (admins give any). Above 0, their jobs
    jump other users' waiting jobs."""
    if not -100 <= max_priority <= 100:
        raise InvalidAccount("a maximum priority is between -100 and 100, as priorities are")
    user = await queries.user_set_max_priority(conn, username=username, max_priority=max_priority)
    if user is None:
        raise UnknownUser(username)
    return user


async def delete_user(conn: Conn, username: str) -> None:
    """Delete an account that owns no jobs (else UserHasJobs: disable it instead)."""
    if await queries.user_delete(conn, username):
        return
    if await queries.user_owns_jobs(conn, username):
        raise UserHasJobs(username)
    raise UnknownUser(username)


async def rotate_webhook_secret(conn: Conn, username: str) -> User:
    """A new webhook signing secret; deliveries signed from now on use it."""
    row = await queries.user_set_webhook_secret(
        conn, username=username, secret=new_webhook_secret()
    )
    if row is None:
        raise UnknownUser(username)
    return row


async def authenticate(conn: Conn, codec: TokenCodec, access_token: str) -> Principal:
    """Check an access token and that its session is still live; the role is read fresh."""
    claims = codec.decode(access_token, "access")
    return await live_session(conn, username=claims.sub, session_id=claims.sid)


async def live_session(conn: Conn, *, username: str, session_id: uuid.UUID) -> Principal:
    """The principal of session `session_id` of `username`; InvalidToken once it has ended."""
    role = await queries.session_principal(conn, session_id=session_id, username=username)
    if role is None:
        raise InvalidToken("session ended")
    return Principal(username, "admin" if role == "admin" else "user", session_id)


async def authenticate_and_take(
    conn: Conn,
    codec: TokenCodec,
    access_token: str,
    bucket_of: Callable[[str], queries.RateBucket],
    want: int = 1,
) -> tuple[Principal, int]:
    """`authenticate`, and up to `want` tokens from the user's rate bucket
    (`bucket_of(username)`) in one round trip: the principal, and how many tokens the bucket
    gave (0 when it was empty)."""
    claims = codec.decode(access_token, "access")
    found = await queries.session_principal_take(
        conn, session_id=claims.sid, username=claims.sub, bucket=bucket_of(claims.sub), want=want
    )
    if found is None:
        raise InvalidToken("session ended")
    role, taken = found
    return Principal(claims.sub, "admin" if role == "admin" else "user", claims.sid), taken


def _pair(
    codec: TokenCodec,
    username: str,
    session_id: uuid.UUID,
    jti: uuid.UUID,
    *,
    iat: int | None = None,
) -> TokenPair:
    """The tokens of one rotation. Given `iat`, the same text every time: the access token
    shares the refresh token's jti (its typ tells them apart)."""
    return TokenPair(
        access_token=codec.encode("access", sub=username, sid=session_id, jti=jti, iat=iat),
        refresh_token=codec.encode("refresh", sub=username, sid=session_id, jti=jti, iat=iat),
        expires_in=int(codec.access_ttl),
    )
