"""Whether the archive keeps up (doctor's "archive" check, /metrics' archive lag): finished
jobs left in jobs past JOBRUNNER_ARCHIVE_AFTER and a margin, too few partitions made ahead,
and rows in the default partition each warn; a fresh database and a healthy archive are ok;
the reads walk an index end, whatever the size of jobs. Times are set in SQL, never waited."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from jobrunner.api.job_metrics import read_figures
from jobrunner.cli.doctor import ARCHIVE_COUNT_CAP, ArchivePace, check_archive
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.db.queries import QUERIES
from jobrunner.settings import Settings
from jobrunner.worker.maintenance import Maintenance
from tests.support.archive import insert_finished_job, insert_history_row


async def test_a_fresh_database_and_a_kept_archive_are_ok(pool: Pool, settings: Settings) -> None:
    pace = ArchivePace.of(settings)
    async with pool.acquire() as conn:
        fresh = await check_archive(conn, pace)
        assert fresh.status == "ok", fresh
        assert fresh.detail == (
            "no finished job waits in jobrunner.jobs; no partition made yet "
            "(maintenance makes them before it archives)"
        )
        await Maintenance(pool, settings).keep_partitions(conn)
        await insert_finished_job(conn, finished_ago=5)  # within JOBRUNNER_ARCHIVE_AFTER
        kept = await check_archive(conn, pace)
    assert kept.status == "ok", kept
    assert kept.detail.startswith("0 finished jobs past JOBRUNNER_ARCHIVE_AFTER in jobrunner.jobs")
    assert kept.detail.endswith("; 3 partitions ahead (3 asked)")


async def test_a_finished_job_left_past_the_threshold_warns(pool: Pool, settings: Settings) -> None:
    pace = ArchivePace.of(settings)
    async with pool.acquire() as conn:
        await Maintenance(pool, settings).keep_partitions(conn)
        await insert_finished_job(conn, finished_ago=pace.lag_warn - 60)  # late, not too late
        await insert_finished_job(conn, finished_ago=5)
        assert (await check_archive(conn, pace)).status == "ok"
        await insert_finished_job(conn, finished_ago=2 * 3600)
        late = await check_archive(conn, pace)
    assert late.status == "warn"
    assert late.detail == (
        "2 finished jobs wait in jobrunner.jobs to be archived, the oldest finished 2h00m ago "
        "(JOBRUNNER_ARCHIVE_AFTER is 1m00s)"
    )
    assert "start a worker if none runs" in late.fix


async def test_a_parent_kept_for_its_unfinished_child_is_not_lag(
    pool: Pool, settings: Settings
) -> None:
    """The archiver keeps such a parent as long as the child takes: that is not falling behind."""
    async with pool.acquire() as conn:
        await insert_finished_job(conn, finished_ago=86400, parent_of_unfinished=True)
        found = await check_archive(conn, ArchivePace.of(settings))
        assert await queries.job_archive_oldest(conn) is None
    assert found.status == "ok", found


async def test_a_row_in_the_default_partition_warns(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        await insert_history_row(conn, finished_ago=3600)  # no partition yet: the default one
        found = await check_archive(conn, ArchivePace.of(settings))
    assert found.status == "warn"
    assert found.detail.startswith("1 jobs in job_history_default (finished ")
    assert "none can be made for their time while they stay" in found.detail
    assert found.fix.endswith("rows in job_history_default are deleted once past retention")


async def test_too_few_partitions_ahead_warn(pool: Pool, settings: Settings) -> None:
    keeper, pace = Maintenance(pool, settings), ArchivePace.of(settings)
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        # made two days ago, three days ahead of then: today covered, one day ahead of now
        await keeper.keep_partitions(conn, now=now - timedelta(days=2))
        short = await check_archive(conn, pace)
        assert short.status == "warn"
        assert short.detail.startswith(
            "only 1 partitions of job_history ahead of now (JOBRUNNER_HISTORY_PARTITIONS_AHEAD "
            "is 3)"
        )
        # one ahead fewer than asked is a boundary passed since the last run: no fault
        await keeper.keep_partitions(conn, now=now - timedelta(days=1))
        assert (await check_archive(conn, pace)).status == "ok"


async def test_no_partition_covering_now_warns(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        await Maintenance(pool, settings).keep_partitions(conn, now=now - timedelta(days=30))
        found = await check_archive(conn, ArchivePace.of(settings))
    assert found.status == "warn"
    assert found.detail.startswith("no partition of job_history covers now (0 ahead;")


def test_one_boundary_passed_between_runs_is_allowed_for() -> None:
    day, hour = 86400.0, 3600.0
    assert ArchivePace(60, 3, day, 600).partitions_needed == 2
    assert ArchivePace(60, 3, hour, hour).partitions_needed == 1  # a run may come after two
    assert ArchivePace(60, 1, day, 600).partitions_needed == 0  # then only "covers now" counts
    assert ArchivePace(60, 3, day, 600).lag_warn == 660


async def test_the_archive_lag_is_a_gauge_of_metrics(pool: Pool) -> None:
    async with pool.acquire() as conn:
        assert (await read_figures(conn, max_queues=20, snapshot_warn=120)).archive_lag_seconds == 0
        await insert_finished_job(conn, finished_ago=7200)
        figures = await read_figures(conn, max_queues=20, snapshot_warn=120)
    assert 7200 <= figures.archive_lag_seconds < 7260


async def test_the_backlog_is_read_along_the_finished_index(
    db_dsn: str, settings: Settings
) -> None:
    """doctor and every /metrics refresh read it: beside a big table of live and finished jobs
    it must walk jobs_finished_idx from its low end, and count no more than its cap."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs (queue, task, state, run_at)
            SELECT 'q', 'noop', 'queued', now() FROM generate_series(1, 100000);
            INSERT INTO jobrunner.jobs (queue, task, state, attempt, run_at, finished_at)
            SELECT 'q', 'noop', 'succeeded', 1, now(), now() - n * interval '1 second'
            FROM generate_series(1, 30000) AS n;
            ANALYZE jobrunner.jobs;
            """
        )
        for name, args in [("job_archive_oldest", ()), ("job_archive_due", (60.0, 10_000))]:
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + QUERIES[name], *args))
            assert "jobs_finished_idx" in plan, plan
            assert "Seq Scan on jobs" not in plan and "Sort" not in plan, plan
        found = await check_archive(conn, ArchivePace.of(settings))
    finally:
        await conn.close()
    assert found.status == "warn"
    assert found.detail.startswith(f"{ARCHIVE_COUNT_CAP:,}+ finished jobs wait")
    assert "the oldest finished 8h20m ago" in found.detail
