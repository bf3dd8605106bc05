from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import accounts
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings

SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "dev_mode": False, "pool_min_size": 1}
    )


@pytest.fixture
async def app(api_settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@dataclass
class Account:
    username: str
    headers: dict[str, str]
    refresh_token: str


Login = Callable[..., Awaitable[Account]]


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


async def wait_for(condition: Callable[[], Awaitable[bool]], *, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)
