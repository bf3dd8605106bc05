"""/auth: register, log in (OAuth2 password form or JSON), refresh, log out, and who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from jobrunner import accounts
from jobrunner.api import limits
from jobrunner.api.deps import CodecDep, ConnDep, PrincipalDep, SettingsDep
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import (
    LoginCreate,
    MePublic,
    RefreshCreate,
    TokenPublic,
    UserCreate,
    UserPublic,
)
from jobrunner.db.queries import RateBucket

router = APIRouter(prefix="/auth", tags=["auth"])

_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                },
                "example": {
                    "grant_type": "password",
                    "username": "alice",
                    "password": "correct horse battery",
                },
            },
            "application/json": {
                "schema": LoginCreate.model_json_schema(),
                "example": {"username": "alice", "password": "correct horse battery"},
            },
        },
    }
}


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/register", status_code=201, responses={409: {"description": "Name taken"}})
async def register(
    body: UserCreate, request: Request, conn: ConnDep, settings: SettingsDep
) -> UserPublic:
    """Create an account (role `user`); admins are made with `jobrunner users create --admin`."""
    per_minute = settings.login_attempts_per_minute
    bucket = RateBucket(f"register-addr:{_address(request)}", per_minute / 60.0, per_minute)
    await limits.take(conn, bucket, "registrations from this address")
    user = await accounts.create_user(conn, username=body.username, password=body.password)
    return UserPublic.of(user)


async def _login_body(request: Request) -> LoginCreate:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            return LoginCreate.model_validate_json(await request.body())
        form = await request.form()
        if form.get("grant_type") not in (None, "password"):
            raise ApiProblem(400, "grant_type must be 'password'")
        fields = {k: v for k, v in form.items() if k in ("username", "password")}
        return LoginCreate.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


@router.post("/token", openapi_extra=_LOGIN_BODY, responses={401: {}, 429: {}})
async def token(
    request: Request, conn: ConnDep, settings: SettingsDep, codec: CodecDep
) -> TokenPublic:
    """Log in with the OAuth2 password form (Swagger's Authorize button) or a JSON body."""
    body = await _login_body(request)
    pair = await limits.login(
        conn, codec, settings, username=body.username, password=body.password,
        address=_address(request),
    )  # fmt: skip
    return TokenPublic.of(pair)


@router.post("/refresh", responses={401: {}})
async def refresh(body: RefreshCreate, conn: ConnDep, codec: CodecDep) -> TokenPublic:
    """Spend a refresh token for a new pair. Presenting a spent one again ends the session."""
    return TokenPublic.of(await accounts.refresh(conn, codec, body.refresh_token))


@router.post("/logout", status_code=204, response_class=Response)
async def logout(me: PrincipalDep, conn: ConnDep) -> None:
    """End this session: its access and refresh tokens stop working at once."""
    await accounts.logout(conn, me)


@router.get("/me")
async def me(me: PrincipalDep, conn: ConnDep) -> MePublic:
    """Your account, with the secret that signs your webhooks."""
    user = await accounts.get_user(conn, me.username)
    if user is None:
        raise ApiProblem(401, "account not found")
    return MePublic.of(user)
