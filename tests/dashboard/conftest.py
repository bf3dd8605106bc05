from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.cli import JWT_SECRET, Cli, cli_env
from tests.support.dashboard import browser


@pytest.fixture
def cli(db_dsn: str, tmp_path: Path) -> Cli:
    """`python -m jobrunner` against this test's own migrated database."""
    return Cli(cli_env(tmp_path, JOBRUNNER_DATABASE_URL=db_dsn, JOBRUNNER_JWT_SECRET=JWT_SECRET))


@pytest.fixture
async def app(settings: Settings, served_queues: frozenset[str]) -> AsyncIterator[FastAPI]:
    api_settings = settings.model_copy(
        update={"jwt_secret": SecretStr("dashboard-" + "y" * 40), "dev_mode": False}
    )
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def admin(app: FastAPI, pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app, pool, "root", admin=True) as logged_in:
        yield logged_in


@pytest.fixture
async def user(app: FastAPI, pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(app, pool, "ada", admin=False) as logged_in:
        yield logged_in
