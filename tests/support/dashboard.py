"""A logged-in dashboard browser: an httpx client on the app that keeps its cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from jobrunner import accounts
from jobrunner.db.pool import Pool

PASSWORD = "correct horse battery"


@asynccontextmanager
async def browser(
    app: FastAPI, pool: Pool, username: str, admin: bool
) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in browser: an httpx client that keeps the dashboard's cookies."""
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username=username, password=PASSWORD, admin=admin)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.post(
            "/dashboard/login", data={"username": username, "password": PASSWORD}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/dashboard"
        yield client
