from __future__ import annotations

import asyncio

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.models import JobState
from jobrunner.registry import _registry
from jobrunner.settings import Settings
from jobrunner.tasks import task
from jobrunner.worker.maintenance import Maintenance
from jobrunner.worker.periodic import enqueue_due_periodic, latest_tick


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
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 10


async def test_a_periodic_task_gets_exactly_one_job_per_tick(pool: Pool) -> None:
    @task(name="test.every_minute", cron="* * * * *")
    async def every_minute() -> None:
        return None

    try:
        async with pool.acquire() as conn:
            # First sight records the tick without enqueuing for it.
            assert await enqueue_due_periodic(conn) == 0
            await conn.execute(
                "UPDATE jobrunner.periodic_ticks SET last_tick = last_tick - interval '1 minute'"
            )

        async def one_caller() -> int:
            async with pool.acquire() as conn:
                return await enqueue_due_periodic(conn)

        counts = await asyncio.gather(*(one_caller() for _ in range(8)))
        assert sum(counts) == 1
        async with pool.acquire() as conn:
            assert (
                await conn.fetchval(
                    "SELECT count(*) FROM jobrunner.jobs WHERE task = 'test.every_minute'"
                )
                == 1
            )
    finally:
        del _registry["test.every_minute"]


def test_latest_tick_is_at_or_before_now() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, 10, 7, 30, tzinfo=UTC)
    assert latest_tick("*/5 * * * *", now) == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    exact = datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert latest_tick("*/5 * * * *", exact) == exact
