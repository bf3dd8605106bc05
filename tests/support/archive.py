"""Archiving on demand: finished jobs moved to jobrunner.job_history as maintenance does."""

from __future__ import annotations

from uuid import UUID

from jobrunner.db.pool import Conn, Pool
from jobrunner.settings import Settings
from jobrunner.worker.maintenance import Maintenance
from tests.support.waiting import wait_for


async def archive_now(pool: Pool, settings: Settings) -> int:
    """One maintenance tick with JOBRUNNER_ARCHIVE_AFTER near zero: every job finished before
    it (and no parent of an unfinished child) moves to job_history. How many moved."""
    tick = Maintenance(pool, settings.model_copy(update={"archive_after": 0.001}))
    # a worker's own maintenance may hold the lock for a moment: take it when it is free
    result = await wait_for(tick.run_once, what="the maintenance lock")
    return result.archived


async def where(conn: Conn, job_id: UUID) -> list[str]:
    """The tables holding job `job_id` (one, or none once deleted)."""
    found = await conn.fetch(
        "SELECT 'jobs' AS t FROM jobrunner.jobs WHERE id = $1"
        " UNION ALL SELECT 'job_history' FROM jobrunner.job_history WHERE id = $1",
        job_id,
    )
    return [r["t"] for r in found]


async def archived_count(conn: Conn) -> int:
    count: int = await conn.fetchval("SELECT count(*) FROM jobrunner.job_history")
    return count
