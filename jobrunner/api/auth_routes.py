"""/auth: register, log in (OAuth2 password form or JSON), refresh, log out (here or
everywhere), change the password, rotate the webhook secret, and who am I."""

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
    PasswordChange,
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


@router.post(
    "/register",
    status_code=201,
    responses={403: {"description": "Registration is closed"}, 409: {"description": "Name taken"}},
)
async def register(
    body: UserCreate, request: Request, conn: ConnDep, settings: SettingsDep
) -> UserPublic:
    """Create an account (role `user`); admins are made with `jobrunner users create --admin`.
    Names are unique whatever their case. Under `JOBRUNNER_REGISTRATION=approval` the account
    starts disabled until an admin enables it; under `closed` this is 403."""
    if settings.registration == "closed":
        raise ApiProblem(403, "registration is closed: ask an admin for an account")
    per_minute = settings.login_attempts_per_minute
    bucket = RateBucket(f"register-addr:{_address(request)}", per_minute / 60.0, per_minute)
    await limits.take(conn, bucket, "registrations from this address")
    user = await accounts.create_user(
        conn,
        username=body.username,
        password=body.password,
        disabled=settings.registration == "approval",
    )
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
async def refresh(
    body: RefreshCreate, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> TokenPublic:
    """Spend a refresh token for a new pair. The same token again within
    `JOBRUNNER_REFRESH_REUSE_GRACE` seconds gets the same pair; later, it ends the session."""
    pair = await accounts.refresh(
        conn, codec, body.refresh_token, grace=settings.refresh_reuse_grace
    )
    return TokenPublic.of(pair)


@router.post("/logout", status_code=204, response_class=Response)
async def logout(me: PrincipalDep, conn: ConnDep) -> None:
    """End this session: its access and refresh tokens stop working at once."""
    await accounts.logout(conn, me)


@router.post("/logout-all", status_code=204, response_class=Response)
async def logout_all(me: PrincipalDep, conn: ConnDep) -> None:
    """End every session of yours, this one included (a lost laptop, a leaked token)."""
    await accounts.logout_everywhere(conn, me.username)


@router.post("/password", status_code=204, response_class=Response, responses={401: {}})
async def change_password(body: PasswordChange, me: PrincipalDep, conn: ConnDep) -> None:
    """Change your password, giving the current one. Your other sessions end; this one stays."""
    await accounts.change_password(conn, me, current=body.current_password, new=body.new_password)


@router.post("/webhook-secret/rotate")
async def rotate_webhook_secret(me: PrincipalDep, conn: ConnDep) -> MePublic:
    """A new secret for your webhooks' signatures; deliveries from now on are signed with it."""
    return MePublic.of(await accounts.rotate_webhook_secret(conn, me.username))


@router.get("/me")
async def me(me: PrincipalDep, conn: ConnDep) -> MePublic:
    """Your account, with the secret that signs your webhooks."""
    user = await accounts.get_user(conn, me.username)
    if user is None:
        raise ApiProblem(401, "account not found")
    return MePublic.of(user)
