"""Admins are told when a long transaction holds back cleanup."""

from __future__ import annotations

import httpx
import pytest

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.snapshots import held_snapshot


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"snapshot_warn_seconds": 0.5})


async def test_admins_see_who_holds_back_cleanup(
    admin: httpx.AsyncClient, user: httpx.AsyncClient, db_dsn: str, pool: Pool
) -> None:
    async with held_snapshot(db_dsn, pool, for_at_least=0.5) as pid:
        page = (await admin.get("/dashboard")).text
        assert 'id="horizon"' in page and f"session pid {pid}" in page
        assert f"pg_terminate_backend({pid})" in page
        assert 'id="horizon"' not in (await user.get("/dashboard")).text
