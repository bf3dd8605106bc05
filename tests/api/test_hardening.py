"""Issue 14: what a hostile user could do, each attack replayed over HTTP and shown harmless."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from jobrunner.api.deps import get_settings
from jobrunner.api.limits import ADDRESS_LOGIN_FACTOR
from jobrunner.settings import Settings
from tests.api.conftest import PASSWORD, Login


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address` (the peer the server sees)."""
    transport = httpx.ASGITransport(app=app, client=(address, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_an_attacker_cannot_lock_an_owner_out(
    app: FastAPI, login: Login, api_settings: Settings
) -> None:
    strict = api_settings.model_copy(update={"login_attempts_per_minute": 2})
    app.dependency_overrides[get_settings] = lambda: strict
    await login("victim")
    details = []
    async with client_at(app, "203.0.113.66") as attacker:
        wrong = {"username": "victim", "password": "guess-guess"}
        for _ in range(ADDRESS_LOGIN_FACTOR * 2 + 1):
            answer = await attacker.post("/auth/token", json=wrong)
            details.append((answer.status_code, answer.json()["detail"]))
    assert [status for status, _ in details[:3]] == [401, 401, 429]  # the account's bucket
    assert details[-1][0] == 429 and "address" in details[-1][1]  # then the address's
    async with client_at(app, "198.51.100.7") as owner:
        right = {"username": "victim", "password": PASSWORD}
        answer = await owner.post("/auth/token", json=right)
    assert answer.status_code == 200, answer.text
