from __future__ import annotations

import time

import httpx
import jwt
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import accounts
from jobrunner.accounts import InvalidAccount, UserExists
from jobrunner.api.app import create_app
from jobrunner.api.deps import get_settings
from jobrunner.api.limits import ADDRESS_LOGIN_FACTOR
from jobrunner.db.pool import Pool
from jobrunner.errors import ConfigError
from jobrunner.settings import Settings
from tests.support.api import PASSWORD, SECRET, Login


async def test_register_then_login_with_form_and_json(http: httpx.AsyncClient) -> None:
    made = await http.post("/auth/register", json={"username": "alice", "password": PASSWORD})
    assert made.status_code == 201
    assert made.json()["username"] == "alice" and made.json()["role"] == "user"
    form = await http.post("/auth/token", data={"username": "alice", "password": PASSWORD})
    assert form.status_code == 200
    body = form.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    as_json = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
    assert as_json.status_code == 200
    me = await http.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["webhook_secret"].startswith("whsec_")


async def test_register_taken_name_is_409(http: httpx.AsyncClient) -> None:
    body = {"username": "bob", "password": PASSWORD}
    assert (await http.post("/auth/register", json=body)).status_code == 201
    again = await http.post("/auth/register", json=body)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["status"] == 409


@pytest.mark.parametrize(
    "body",
    [
        {"username": "a", "password": PASSWORD},
        {"username": "alice", "password": "short"},
        {"username": "alice", "password": PASSWORD, "role": "admin"},
        {"username": "bad name!", "password": PASSWORD},
    ],
)
async def test_register_rejects_bad_bodies(http: httpx.AsyncClient, body: dict[str, str]) -> None:
    answer = await http.post("/auth/register", json=body)
    assert answer.status_code == 422
    assert answer.json()["errors"]


async def test_wrong_password_is_401(http: httpx.AsyncClient, login: Login) -> None:
    await login("carol")
    answer = await http.post("/auth/token", json={"username": "carol", "password": "nope-nope"})
    assert answer.status_code == 401
    unknown = await http.post("/auth/token", json={"username": "nobody", "password": "nope-nope"})
    assert unknown.status_code == 401


async def test_login_attempts_are_throttled_per_account(
    http: httpx.AsyncClient, login: Login, api_settings: Settings
) -> None:
    await login("dave")  # a right password: the account's bucket is not charged
    per_minute = api_settings.login_attempts_per_minute
    started = time.monotonic()
    statuses: list[int] = []
    while not statuses or statuses[-1] != 429:
        answer = await http.post("/auth/token", json={"username": "dave", "password": "wrong!"})
        statuses.append(answer.status_code)
        # The bucket refills per_minute a minute: on a loaded machine, where each argon2
        # check takes a while, the attempts so far may have earned one or two more.
        earned = int((time.monotonic() - started) * per_minute / 60)
        assert len(statuses) <= per_minute + 1 + earned, statuses
    assert len(statuses) >= per_minute + 1, statuses  # refused only once the bucket is spent
    assert set(statuses[:-1]) == {401}
    assert int(answer.headers["Retry-After"]) >= 1
    # Wrong passwords empty only the account's bucket: the right one still logs in.
    right = await http.post("/auth/token", json={"username": "dave", "password": PASSWORD})
    assert right.status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_family(
    app: FastAPI, http: httpx.AsyncClient, login: Login
) -> None:
    # No grace (see test_accounts.py for the two-tabs grace): a second use is a leak.
    app.state.settings = app.state.settings.model_copy(update={"refresh_reuse_grace": 0.0})
    alice = await login("alice")
    first = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert first.status_code == 200
    rotated = first.json()
    assert rotated["refresh_token"] != alice.refresh_token
    new_headers = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await http.get("/auth/me", headers=new_headers)).status_code == 200
    # The spent token again: refused, and the whole session with it.
    reuse = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert reuse.status_code == 401
    assert (await http.get("/auth/me", headers=new_headers)).status_code == 401
    later = await http.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert later.status_code == 401


async def test_logout_ends_the_session(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    assert (await http.post("/auth/logout", headers=alice.headers)).status_code == 204
    assert (await http.get("/auth/me", headers=alice.headers)).status_code == 401
    again = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert again.status_code == 401


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": "jobrunner",
        "aud": "jobrunner-api",
        "sub": "alice",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
        "sid": "00000000-0000-0000-0000-000000000000",
        "jti": "00000000-0000-0000-0000-000000000001",
    }
    claims.update(overrides)
    return claims


async def test_forged_tokens_are_401(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    real = alice.headers["Authorization"].removeprefix("Bearer ")
    sid = jwt.decode(real, options={"verify_signature": False})["sid"]
    good = _claims(sid=sid)
    forged = {
        "alg none": jwt.encode(good, None, algorithm="none"),
        "wrong key": jwt.encode(good, "y" * 48, algorithm="HS256"),
        "expired": jwt.encode(_claims(sid=sid, exp=int(time.time()) - 120), SECRET),
        "wrong audience": jwt.encode(_claims(sid=sid, aud="someone-else"), SECRET),
        "wrong issuer": jwt.encode(_claims(sid=sid, iss="evil"), SECRET),
        "refresh as access": alice.refresh_token,
        "other user's name": jwt.encode(_claims(sid=sid, sub="mallory"), SECRET),
        "no exp": jwt.encode({k: v for k, v in good.items() if k != "exp"}, SECRET),
        "garbage": "not.a.jwt",
    }
    # A correctly signed copy of the real claims is accepted: the forgeries fail on their flaw.
    assert (
        await http.get("/auth/me", headers={"Authorization": f"Bearer {jwt.encode(good, SECRET)}"})
    ).status_code == 200
    for name, token in forged.items():
        answer = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, name
        assert answer.headers["content-type"] == "application/problem+json"
        # Fixed texts: PyJWT's own ("Invalid audience", "Signature verification failed")
        # would tell a prober which check failed.
        assert answer.json()["detail"] in {
            "invalid token",
            "token expired",
            "session ended",
            "not an access token",
        }
    assert (await http.get("/auth/me")).status_code == 401


def test_weak_or_missing_secret_fails_at_startup(api_settings: Settings) -> None:
    with pytest.raises(ConfigError):
        create_app(api_settings.model_copy(update={"jwt_secret": None}))
    with pytest.raises(ConfigError):
        create_app(api_settings.model_copy(update={"jwt_secret": SecretStr("short")}))
    # Dev mode keeps a generated one instead.
    create_app(api_settings.model_copy(update={"jwt_secret": None, "dev_mode": True}))
    assert (api_settings.data_dir / "dev-jwt-secret").exists()


async def test_login_attempts_are_throttled_per_address(
    http: httpx.AsyncClient, app: FastAPI, api_settings: Settings
) -> None:
    strict = api_settings.model_copy(update={"login_attempts_per_minute": 1})
    app.dependency_overrides[get_settings] = lambda: strict
    per_address = ADDRESS_LOGIN_FACTOR * strict.login_attempts_per_minute
    statuses = []
    for n in range(per_address + 1):  # a different account each time: only the address repeats
        answer = await http.post("/auth/token", json={"username": f"user{n}", "password": "x"})
        statuses.append(answer.status_code)
    assert statuses == [401] * per_address + [429]
    assert "address" in answer.json()["detail"]


async def test_create_user_checks_what_the_cli_passes(pool: Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(InvalidAccount):
            await accounts.create_user(conn, username="no spaces", password=PASSWORD)
        with pytest.raises(InvalidAccount):
            await accounts.create_user(conn, username="carol", password="short")
        root = await accounts.create_user(conn, username="root", password=PASSWORD, admin=True)
        with pytest.raises(UserExists):
            await accounts.create_user(conn, username="root", password=PASSWORD)
        assert root.role == "admin" and root.webhook_secret.startswith("whsec_")
        assert [u.username for u in await accounts.list_users(conn)] == ["root"]
