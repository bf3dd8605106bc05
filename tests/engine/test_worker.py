from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from uuid import UUID

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.db.queries import OutcomePolicy
from jobrunner.models import Job, JobState, Outcome, OutcomeKind
from jobrunner.settings import Settings
from jobrunner.testing import drain
from jobrunner.webhooks import delivery_rows
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker, terminal

POLICY = OutcomePolicy(
    backoff_base=0.01, backoff_cap=0.05, max_deferrals=20, delivery=delivery_rows()
)

ReadJob = Callable[[UUID], Awaitable[Job]]


async def _enqueue(pool: Pool, task: str, args: dict[str, object], **options: object) -> Job:
    async with pool.acquire() as conn:
        return await client.enqueue(task, args, conn=conn, **options)  # type: ignore[arg-type]


async def _finished(job_state: ReadJob, job_id: UUID, timeout: float = 15) -> Job:
    async def probe() -> Job | None:
        job = await job_state(job_id)
        return job if terminal(job) else None

    return await wait_for(probe, timeout=timeout)


async def test_each_outcome_maps_to_its_state(
    pool: Pool, settings: Settings, start_worker: StartWorker, job_state: ReadJob
) -> None:
    ok = await _enqueue(pool, "test.add", {"a": 2, "b": 3})
    sync = await _enqueue(pool, "test.sync_mul", {"a": 6, "b": 7})
    flaky = await _enqueue(pool, "test.fail_until", {"key": "flaky", "succeed_on": 3})
    doomed = await _enqueue(pool, "test.always_fail", {})
    cancelled = await _enqueue(pool, "test.cancel_me", {"reason": "bad input"})
    timed_out = await _enqueue(pool, "test.slow_timeout", {})
    unserialisable = await _enqueue(pool, "test.unserialisable", {})
    await start_worker()

    assert (await _finished(job_state, ok.id)).result == 5
    assert (await _finished(job_state, sync.id)).result == 42

    flaky_done = await _finished(job_state, flaky.id)
    assert flaky_done.state is JobState.SUCCEEDED
    assert flaky_done.attempt == 3
    assert [e["outcome"] for e in flaky_done.errors] == ["retrying", "retrying"]
    assert "ValueError: boom 1" in flaky_done.errors[0]["error"]
    assert "Traceback" in flaky_done.errors[0]["traceback"]

    doomed_done = await _finished(job_state, doomed.id)
    assert doomed_done.state is JobState.FAILED
    assert doomed_done.attempt == doomed_done.max_attempts == 2
    assert [e["outcome"] for e in doomed_done.errors] == ["retrying", "failed"]

    cancelled_done = await _finished(job_state, cancelled.id)
    assert cancelled_done.state is JobState.CANCELLED
    assert cancelled_done.errors[-1]["error"] == "bad input"

    timed_out_done = await _finished(job_state, timed_out.id)
    assert timed_out_done.state is JobState.FAILED
    assert "timed out" in timed_out_done.errors[0]["error"]

    bad_result = await _finished(job_state, unserialisable.id)
    assert bad_result.state is JobState.FAILED and bad_result.attempt == 1


async def test_retry_waits_for_its_time_in_database_time(pool: Pool, settings: Settings) -> None:
    job = await _enqueue(pool, "test.retry_later", {"seconds": 3600})
    await drain(pool, settings=settings)
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT state, run_at - now() AS wait FROM jobrunner.jobs WHERE id = $1", job.id
        )
    assert row is not None and row["state"] == "retrying"
    assert 3500 < row["wait"].total_seconds() <= 3600


async def test_higher_priority_runs_first(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        low = await client.enqueue("test.add", {"a": 0, "b": 0}, conn=conn, priority=-5)
        high = await client.enqueue("test.add", {"a": 0, "b": 0}, conn=conn, priority=10)
        claimed = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=1, lease_seconds=30
        )
    assert [c.id for c in claimed] == [high.id]
    assert low.id != high.id


async def test_two_workers_never_run_one_job_at_once(pool: Pool, start_worker: StartWorker) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE public.runs (job_id uuid, attempt int, PRIMARY KEY (job_id, attempt))"
        )
        ids = await client.enqueue_many(
            "test.sleep", [{"seconds": 0} for _ in range(500)], conn=conn
        )
    await start_worker(concurrency=7)
    await start_worker(concurrency=5)

    async def all_done() -> bool:
        async with pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) = $1 FROM jobrunner.jobs WHERE state = 'succeeded'", len(ids)
                )
            )

    await wait_for(all_done, timeout=60)
    async with pool.acquire() as conn:
        attempts = await conn.fetchval("SELECT sum(attempt) FROM jobrunner.jobs")
        workers = await conn.fetchval("SELECT count(DISTINCT worker_id) FROM jobrunner.jobs")
    assert attempts == len(ids)  # each job ran exactly once
    assert workers == 2


async def test_a_stale_outcome_is_refused(pool: Pool) -> None:
    """A worker paused past its lease cannot overwrite the attempt that replaced it."""
    job = await _enqueue(pool, "test.add", {"a": 1, "b": 1}, max_attempts=3)
    async with pool.acquire() as conn:
        (first,) = await queries.job_claim(
            conn, queues=["default"], worker_id="slow", limit=1, lease_seconds=0.001
        )
        await asyncio.sleep(0.01)  # let the tiny lease lapse (creating the fault, not waiting)
        assert len(await queries.job_rescue_expired(conn, limit=10, delivery=delivery_rows())) == 1
        (second,) = await queries.job_claim(
            conn, queues=["default"], worker_id="fast", limit=1, lease_seconds=30
        )
        assert second.attempt == first.attempt + 1
        ok = Outcome(job.id, second.attempt, OutcomeKind.SUCCEEDED, result_json="2")
        accepted = await queries.job_record_outcomes(conn, [ok], worker_id="fast", policy=POLICY)
        assert accepted.keys() == {job.id} and accepted[job.id].state is JobState.SUCCEEDED
        late = Outcome(job.id, first.attempt, OutcomeKind.SUCCEEDED, result_json="999")
        assert (
            await queries.job_record_outcomes(conn, [late], worker_id="slow", policy=POLICY) == {}
        )
        final = await client.get_job(job.id, conn=conn)
    assert final.result == 2 and final.worker_id == "fast" and final.attempt == 2
    assert final.errors[0]["error"].startswith("worker lost")


async def test_cancel_queued_is_immediate_and_running_stops_its_handler(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    waiting = await _enqueue(pool, "test.sleep", {"seconds": 60}, delay=3600)
    async with pool.acquire() as conn:
        assert (await client.cancel_job(waiting.id, conn=conn)).state is JobState.CANCELLED

    running = await _enqueue(pool, "test.sleep", {"seconds": 60})
    await start_worker(settings={"heartbeat_interval": 1.0, "lease_seconds": 30.0})

    async def is_running() -> bool:
        return (await job_state(running.id)).state is JobState.RUNNING

    await wait_for(is_running)
    async with pool.acquire() as conn:
        requested = await client.cancel_job(running.id, conn=conn)
    assert requested.state is JobState.RUNNING and requested.cancel_requested_at is not None
    done = await _finished(job_state, running.id, timeout=5)
    assert done.state is JobState.CANCELLED


async def test_doorbell_wakes_an_idle_worker_long_before_its_poll(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    worker = await start_worker(settings={"poll_interval": 60.0})

    async def listening() -> bool:
        async with pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'jobrunner-listener' AND datname = current_database()"
                )
            )

    await wait_for(listening)
    # Not waiting for work: giving the worker time to settle into its one-minute poll wait,
    # so only the doorbell can explain a prompt pickup.
    await asyncio.sleep(0.2)
    job = await _enqueue(pool, "test.add", {"a": 1, "b": 1})
    assert (await _finished(job_state, job.id, timeout=20)).state is JobState.SUCCEEDED
    assert worker.stats.claimed == 1


async def test_stop_drains_short_jobs_and_releases_long_ones(
    pool: Pool, settings: Settings, db_dsn: str, job_state: ReadJob
) -> None:
    await client.configure(pool)
    short = await _enqueue(pool, "test.sleep", {"seconds": 0.2})
    long = await _enqueue(pool, "test.sleep", {"seconds": 600})
    worker_settings = settings.model_copy(update={"drain_timeout": 1.0})
    from jobrunner.worker.worker import Worker

    worker = Worker(worker_settings, dsn=db_dsn)
    run = asyncio.create_task(worker.run())

    async def both_running() -> bool:
        return all([(await job_state(j.id)).state is not JobState.QUEUED for j in (short, long)])

    await wait_for(both_running)
    worker.request_stop()
    await asyncio.wait_for(run, timeout=15)
    assert (await job_state(short.id)).state is JobState.SUCCEEDED
    released = await job_state(long.id)
    assert released.state is JobState.QUEUED
    assert released.attempt == 0  # an interrupted attempt is not held against the job
    assert released.worker_id is None
