"""Accounts a user or an admin can look after over HTTP: password change, log out
everywhere, disable/enable/delete, webhook secret rotation, registration modes, names unique
whatever their case, the refresh grace for two tabs, and no database or PyJWT text in
answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from jobrunner.api import problems
from jobrunner.api.app import create_app
from jobrunner.settings import Settings
from tests.support.api import PASSWORD, Account, Login

NEW_PASSWORD = "another horse battery"


def _bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def _second_session(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    answer = await http.post("/auth/token", json={"username": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return _bearer(answer.json())


async def _alive(http: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    return (await http.get("/auth/me", headers=headers)).status_code == 200


async def test_password_change_needs_the_current_one_and_ends_other_sessions(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    other = await _second_session(http, "alice")
    wrong = await http.post(
        "/auth/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert wrong.status_code == 401
    short = await http.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=alice.headers,
    )
    assert short.status_code == 422
    assert await _alive(http, other)  # nothing changed yet
    changed = await http.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=alice.headers,
    )
    assert changed.status_code == 204
    assert await _alive(http, alice.headers)  # this session stays
    assert not await _alive(http, other)
    old = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    new = await http.post("/auth/token", json={"username": "alice", "password": NEW_PASSWORD})
    assert new.status_code == 200


async def test_logout_all_ends_every_session(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    other = await _second_session(http, "alice")
    bob = await login("bob")
    assert (await http.post("/auth/logout-all", headers=alice.headers)).status_code == 204
    assert not await _alive(http, alice.headers)
    assert not await _alive(http, other)
    refreshed = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refreshed.status_code == 401
    assert await _alive(http, bob.headers)  # other users are untouched


async def test_admin_disables_enables_and_deletes_users(
    http: httpx.AsyncClient, login: Login
) -> None:
    root, alice, bob = await login("root", admin=True), await login("alice"), await login("bob")
    assert (await http.post("/admin/users/bob/disable", headers=alice.headers)).status_code == 403
    made = await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)
    assert made.status_code == 201

    disabled = await http.post("/admin/users/alice/disable", headers=root.headers)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert not await _alive(http, alice.headers)  # sessions revoked at once
    refused = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403
    assert (await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)).is_error

    assert (await http.post("/admin/users/alice/enable", headers=root.headers)).status_code == 200
    assert (await _second_session(http, "alice"))["Authorization"]

    # Alice owns a job: refused (jobs name their owner), she stays.
    assert (await http.delete("/admin/users/alice", headers=root.headers)).status_code == 409
    assert (await http.delete("/admin/users/bob", headers=root.headers)).status_code == 204
    assert not await _alive(http, bob.headers)
    gone = await http.post("/auth/token", json={"username": "bob", "password": PASSWORD})
    assert gone.status_code == 401
    assert (await http.delete("/admin/users/bob", headers=root.headers)).status_code == 404
    bad = await http.delete("/admin/users/%00x", headers=root.headers)
    assert bad.status_code == 422


async def test_webhook_secret_rotates(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    before = (await http.get("/auth/me", headers=alice.headers)).json()["webhook_secret"]
    rotated = await http.post("/auth/webhook-secret/rotate", headers=alice.headers)
    assert rotated.status_code == 200
    after = rotated.json()["webhook_secret"]
    assert after != before and after.startswith("whsec_")
    assert (await http.get("/auth/me", headers=alice.headers)).json()["webhook_secret"] == after


async def test_usernames_are_unique_whatever_their_case(
    http: httpx.AsyncClient, login: Login
) -> None:
    await login("alice")
    twin = await http.post("/auth/register", json={"username": "Alice", "password": PASSWORD})
    assert twin.status_code == 409
    # Logins match the name as registered.
    shouted = await http.post("/auth/token", json={"username": "ALICE", "password": PASSWORD})
    assert shouted.status_code == 401


@pytest.fixture
async def http_with(api_settings: Settings) -> AsyncIterator[object]:
    """An API client under other settings: `async with http_with(registration=...)`."""
    import contextlib

    @contextlib.asynccontextmanager
    async def make(**changes: object) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        app = create_app(api_settings.model_copy(update=changes))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                yield app, http

    yield make


async def test_registration_closed_or_awaiting_approval(
    http_with: object, login: Login, http: httpx.AsyncClient
) -> None:
    root = await login("root", admin=True)
    body = {"username": "carol", "password": PASSWORD}
    async with http_with(registration="closed") as (_, closed):  # type: ignore[operator]
        answer = await closed.post("/auth/register", json=body)
        assert answer.status_code == 403
        assert answer.headers["content-type"] == "application/problem+json"
    async with http_with(registration="approval") as (_, approval):  # type: ignore[operator]
        made = await approval.post("/auth/register", json=body)
        assert made.status_code == 201 and made.json()["disabled"] is True
        waiting = await approval.post("/auth/token", json=body)
        assert waiting.status_code == 403
        enabled = await approval.post("/admin/users/carol/enable", headers=root.headers)
        assert enabled.status_code == 200
        assert (await approval.post("/auth/token", json=body)).status_code == 200


async def test_two_tabs_refreshing_at_once_get_the_same_pair(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice: Account = await login("alice")
    first = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    second = await http.post("/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()  # the very same pair, and the session lives on
    assert await _alive(http, _bearer(first.json()))
    onwards = await http.post(
        "/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
    )
    assert onwards.status_code == 200


async def test_reuse_after_the_grace_still_revokes(http_with: object, login: Login) -> None:
    await login("alice")
    async with http_with(refresh_reuse_grace=0.0) as (_, strict):  # type: ignore[operator]
        tokens = (
            await strict.post("/auth/token", json={"username": "alice", "password": PASSWORD})
        ).json()
        first = await strict.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert first.status_code == 200
        again = await strict.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 401
        assert not await _alive(strict, _bearer(first.json()))


def _postgres_error(sqlstate: str, **fields: str) -> Exception:
    """An error as asyncpg builds it from the server's message fields."""
    message = {"C": sqlstate, "M": 'new row violates check constraint "jobs_queue_check" (x7)'}
    return asyncpg.PostgresError.new({**message, **fields})


async def test_database_messages_never_reach_the_answer() -> None:
    request = Request({"type": "http", "method": "POST", "path": "/jobs", "headers": []})
    error = _postgres_error("23514", n="jobs_queue_check", t="jobs")
    assert isinstance(error, asyncpg.CheckViolationError)
    answer = await problems.handle_error(request, error)
    assert answer.status_code == 422
    text = bytes(answer.body).decode()
    assert "violates" not in text and "x7" not in text
    assert '"loc":["body","queue"]' in text
    # A column type's check (a domain, migration 0021) names no table.
    typed = await problems.handle_error(request, _postgres_error("23514", n="priority_check"))
    assert '"loc":["body","priority"]' in bytes(typed.body).decode()
    data = await problems.handle_error(request, _postgres_error("22P02"))
    assert data.status_code == 422 and "x7" not in bytes(data.body).decode()
    # A deadlock PostgreSQL broke (a child's insert beside an outcome write): try again.
    for sqlstate in ("40P01", "40001"):
        collided = await problems.handle_error(request, _postgres_error(sqlstate))
        assert collided.status_code == 409 and "x7" not in bytes(collided.body).decode()
