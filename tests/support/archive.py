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


async def insert_finished_job(
    conn: Conn, *, finished_ago: float, parent_of_unfinished: bool = False
) -> UUID:
    """A job in jobs that succeeded `finished_ago` seconds ago and was never archived (no
    maintenance ran), its times set directly. `parent_of_unfinished`: it gained a child,
    queued still, so the archiver keeps it."""
    job_id: UUID = await conn.fetchval(
        "INSERT INTO jobrunner.jobs (queue, task, state, attempt, run_at, finished_at,"
        "                            child_added_at)"
        " VALUES ('default', 'noop', 'succeeded', 1, now() - make_interval(secs => $1::float8),"
        "         now() - make_interval(secs => $1::float8),"
        "         CASE WHEN $2::bool THEN now() - make_interval(secs => $1::float8) END)"
        " RETURNING id",
        finished_ago,
        parent_of_unfinished,
    )
    if parent_of_unfinished:
        child: UUID = await conn.fetchval(
            "INSERT INTO jobrunner.jobs (queue, task, state, run_at) "
            "VALUES ('default', 'noop', 'queued', now()) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO jobrunner.job_dependencies (parent_id, child_id, resolved_at)"
            " VALUES ($1, $2, now())",
            job_id,
            child,
        )
    return job_id


async def insert_history_row(conn: Conn, *, finished_ago: float) -> None:
    """An archived job finished `finished_ago` seconds ago, written to job_history directly:
    to job_history_default when no partition covers that time."""
    await conn.execute(
        "INSERT INTO jobrunner.job_history (task, state, attempt, finished_at, created_at)"
        " VALUES ('noop', 'succeeded', 1, now() - make_interval(secs => $1::float8),"
        "         now() - make_interval(secs => $1::float8 + 1))",
        finished_ago,
    )
