from __future__ import annotations

import asyncio

from jobrunner import client
from jobrunner.cron import next_tick
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.models import JobState
from jobrunner.registry import _registry
from jobrunner.settings import Settings
from jobrunner.tasks import task
from jobrunner.worker.maintenance import Maintenance
from jobrunner.worker.periodic import fire_due_schedules, sync_code_schedules


async def test_due_scheduled_jobs_become_queued(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        due = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=0.001)
        later = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=3600)
        await conn.execute(
            "UPDATE jobrunner.jobs SET run_at = now() - interval '1s' WHERE id = $1", due.id
        )
    result = await Maintenance(pool, settings).run_once()
    assert result is not None and result.promoted == 1
    async with pool.acquire() as conn:
        assert (await client.get_job(due.id, conn=conn)).state is JobState.QUEUED
        assert (await client.get_job(later.id, conn=conn)).state is JobState.SCHEDULED


async def test_expired_leases_are_rescued_then_fail_when_attempts_are_spent(
    pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, max_attempts=2)
        for expected in (JobState.QUEUED, JobState.FAILED):
            await queries.job_claim(
                conn, queues=["default"], worker_id="dead", limit=1, lease_seconds=30
            )
            await conn.execute(
                "UPDATE jobrunner.jobs SET lease_expires_at = now() - interval '1s' WHERE id = $1",
                job.id,
            )
            result = await Maintenance(pool, settings).run_once()
            assert result is not None and result.rescued == 1
            assert (await client.get_job(job.id, conn=conn)).state is expected
        final = await client.get_job(job.id, conn=conn)
    assert [e["error"] for e in final.errors] == ["worker lost: lease expired"] * 2
    assert final.finished_at is not None


async def test_only_one_process_maintains_at_a_time(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as holder:
        assert await queries.maintenance_try_lock(holder)
        try:
            assert await Maintenance(pool, settings).run_once() is None
        finally:
            await queries.maintenance_unlock(holder)
    assert await Maintenance(pool, settings).run_once() is not None


async def test_finished_jobs_past_retention_are_pruned_in_batches(
    pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs (task, state, finished_at, created_at)
            SELECT 'noop', 'succeeded', now() - interval '8 days', now() - interval '8 days'
            FROM generate_series(1, 2500);
            INSERT INTO jobrunner.jobs (task, state, finished_at)
            SELECT 'noop', 'failed', now() - interval '1 hour' FROM generate_series(1, 10);
            """
        )
    tuned = settings.model_copy(update={"prune_batch": 1000, "retention_failed": 86400.0})
    result = await Maintenance(pool, tuned).run_once()
    assert result is not None and result.pruned == 2500
    async with pool.acquire() as conn:
        # the rest were archived (finished over JOBRUNNER_ARCHIVE_AFTER ago), not deleted
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.all_jobs") == 10
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.job_history") == 10


async def test_a_periodic_task_gets_exactly_one_job_per_tick(
    pool: Pool, settings: Settings
) -> None:
    @task(name="test.every_minute", cron="* * * * *")
    async def every_minute() -> None:
        return None

    try:
        async with pool.acquire() as conn:
            # First sight records the next tick without enqueuing for the current one.
            await sync_code_schedules(conn, by="test")
            assert await fire_due_schedules(conn) == 0
            await conn.execute(
                "UPDATE jobrunner.schedules SET next_run_at = next_run_at - interval '1 minute'"
            )

        async def one_caller() -> int:
            async with pool.acquire() as conn:
                return await fire_due_schedules(conn)

        counts = await asyncio.gather(*(one_caller() for _ in range(8)))
        assert sum(counts) == 1
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM jobrunner.jobs WHERE task = 'test.every_minute'"
                )
                == 1
            )
            # The maintenance tick is what fires them.
            await conn.execute("UPDATE jobrunner.schedules SET next_run_at = now()")
        result = await Maintenance(pool, settings).run_once()
        assert result is not None and result.periodic == 1
    finally:
        del _registry["test.every_minute"]


def test_the_next_tick_is_after_now() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 10, 7, 30, tzinfo=UTC)
    assert next_tick("*/5 * * * *", "UTC", now) == datetime(2026, 11, 23, 10, 10, tzinfo=UTC)
    exact = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert next_tick("*/5 * * * *", "UTC", exact) == datetime(2026, 11, 23, 10, 10, tzinfo=UTC)
