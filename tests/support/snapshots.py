"""A transaction holding its snapshot, as pg_dump or a forgotten psql session does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from jobrunner import horizon
from jobrunner.db.pool import Pool
from tests.support.waiting import wait_for


@contextlib.asynccontextmanager
async def held_snapshot(dsn: str, pool: Pool, *, for_at_least: float) -> AsyncIterator[int]:
    """Hold a REPEATABLE READ snapshot on a connection of its own; yields its pid once the
    server reports it as the oldest snapshot, held for at least `for_at_least` seconds."""
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.fetchval("SELECT count(*) FROM jobrunner.jobs")  # takes the snapshot
        pid = holder.get_server_pid()

        async def ours_and_old_enough() -> bool:
            async with pool.acquire() as conn:
                found = await horizon.read(conn, warn_after=for_at_least)
            return found.holder is not None and found.holder.pid == pid and found.too_old

        await wait_for(ours_and_old_enough, timeout=30)
        yield pid
    finally:
        await holder.close()
