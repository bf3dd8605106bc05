"""The API under test: the app with its lifespan, an HTTP client on it, and logged-in users."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import accounts
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import PASSWORD, SECRET, Account, Login


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "dev_mode": False, "pool_min_size": 1}
    )


@pytest.fixture
async def app(api_settings: Settings, served_queues: frozenset[str]) -> AsyncIterator[FastAPI]:
    """The API, with a worker's row serving the queues tests submit to (served_queues)."""
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.fixture
def login(http: httpx.AsyncClient, pool: Pool) -> Login:
    """Make an account (admin through the library, as the CLI does) and log it in."""

    async def make(username: str, *, admin: bool = False) -> Account:
        async with pool.acquire() as conn:
            await accounts.create_user(conn, username=username, password=PASSWORD, admin=admin)
        answer = await http.post("/auth/token", json={"username": username, "password": PASSWORD})
        assert answer.status_code == 200, answer.text
        tokens = answer.json()
        return Account(
            username,
            {"Authorization": f"Bearer {tokens['access_token']}"},
            tokens["refresh_token"],
        )

    return make
