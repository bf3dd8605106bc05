"""An attempt's limits hold whatever its handler does: a timeout is a promise."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any
from uuid import UUID

import pytest
import structlog
from structlog.testing import capture_logs

from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.models import Job, JobState
from jobrunner.worker import outcomes
from tests.support import tasks
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker, terminal

ReadJob = Callable[[UUID], Awaitable[Job]]


async def _enqueue(pool: Pool, task: str, args: dict[str, object]) -> Job:
    async with pool.acquire() as conn:
        return await client.enqueue(task, args, conn=conn)


async def _finished(job_state: ReadJob, job_id: UUID, timeout: float = 15) -> Job:
    async def probe() -> Job | None:
        job = await job_state(job_id)
        return job if terminal(job) else None

    return await wait_for(probe, timeout=timeout)


async def test_a_handler_ignoring_its_timeout_is_abandoned_after_the_grace(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    stubborn = await _enqueue(pool, "test.ignore_timeout", {"token": "t1", "seconds": 4.0})
    after = await _enqueue(pool, "test.add", {"a": 1, "b": 2})
    with capture_logs() as logs:
        # One slot: the second job runs only if the stubborn handler's slot is freed.
        await start_worker(concurrency=1, settings={"timeout_grace": 0.2})
        done = await _finished(job_state, stubborn.id)
        # Both attempts were recorded while their handlers still ran.
        assert tasks.ran_past_timeout.get("t1", 0) == 0
        assert done.state is JobState.FAILED and done.attempt == 2
        assert [(e["error"], e["outcome"]) for e in done.errors] == [
            ("timed out after 0.3s", "retrying"),
            ("timed out after 0.3s", "failed"),
        ]
        assert (await _finished(job_state, after.id)).state is JobState.SUCCEEDED
    abandoned = [e for e in logs if e["event"] == "handler ignored its timeout; abandoning it"]
    assert len(abandoned) == 2
    assert all(e["log_level"] == "error" and e["task"] == "test.ignore_timeout" for e in abandoned)
    assert {e["job_id"] for e in abandoned} == {str(stubborn.id)}

    # The abandoned coroutines end on their own; let them, before the loop closes.
    async def both_ended() -> bool:
        return tasks.ran_past_timeout.get("t1") == 2

    await wait_for(both_ended, timeout=15)


async def _orphan(pool: Pool, max_attempts: int) -> Job:
    """A job of a task no worker knows (as during a deploy): enqueued, then renamed."""
    job = await _enqueue(pool, "test.add", {"a": 1, "b": 1})
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobrunner.jobs SET task = 'deploy.not_yet', max_attempts = $2 WHERE id = $1",
            job.id,
            max_attempts,
        )
    return job


async def test_an_unknown_task_is_deferred_without_spending_an_attempt(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    job = await _orphan(pool, max_attempts=1)
    await start_worker(settings={"unknown_task_delay": 3600.0})

    async def deferred() -> Job | None:
        seen = await job_state(job.id)
        return seen if seen.errors else None

    waiting = await wait_for(deferred)
    assert waiting.state is JobState.RETRYING and waiting.attempt == 0
    assert [(e["error"], e["outcome"]) for e in waiting.errors] == [
        ("no worker knows task 'deploy.not_yet'", "deferred")
    ]
    async with pool.acquire() as conn:
        wait = await conn.fetchval(
            "SELECT extract(epoch FROM run_at - now()) FROM jobrunner.jobs WHERE id = $1", job.id
        )
    assert 3500 < wait <= 3600
    async with pool.acquire() as conn:  # what doctor and the dashboard show of it
        assert await client.unknown_tasks(conn=conn) == {"deploy.not_yet": 1}


@pytest.mark.usefixtures("outcome_log_at_debug")
async def test_past_its_deferrals_an_unknown_task_retries_then_fails(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    job = await _orphan(pool, max_attempts=2)
    with capture_logs() as logs:
        await start_worker(settings={"unknown_task_delay": 0.05, "unknown_task_max_deferrals": 2})
        done = await _finished(job_state, job.id)
    assert done.state is JobState.FAILED and done.attempt == 2
    assert [e["outcome"] for e in done.errors] == ["deferred", "deferred", "retrying", "failed"]
    # The log tells a deferral from a defer past its bound, which is a retry.
    events = [e["event"] for e in logs if e.get("job_id") == str(job.id)]
    assert events == ["job deferred", "job deferred", "job failed; retrying", "job failed"]


@pytest.fixture
def outcome_log_at_debug(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The suite logs at warning, and loggers keep the level they first met: give the outcome
    writer a logger made at debug, so its info and debug lines can be captured too."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    monkeypatch.setattr(outcomes, "log", structlog.get_logger("jobrunner.worker"))
    yield
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


@pytest.mark.usefixtures("outcome_log_at_debug")
async def test_the_outcome_log_says_what_became_of_each_job(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    ok = await _enqueue(pool, "test.add", {"a": 1, "b": 2})
    doomed = await _enqueue(pool, "test.always_fail", {})
    with capture_logs() as logs:
        await start_worker()
        await _finished(job_state, ok.id)
        await _finished(job_state, doomed.id)

    def about(job: Job) -> list[MutableMapping[str, Any]]:
        return [e for e in logs if e.get("job_id") == str(job.id)]

    [succeeded] = about(ok)
    assert succeeded["event"] == "job succeeded" and succeeded["log_level"] == "debug"
    assert succeeded["task"] == "test.add" and succeeded["attempt"] == 1
    retrying, failed = about(doomed)
    assert (retrying["event"], retrying["log_level"]) == ("job failed; retrying", "warning")
    assert retrying["error"] == "RuntimeError: always" and retrying["attempt"] == 1
    assert isinstance(retrying["next_run_at"], str)
    assert (failed["event"], failed["log_level"]) == ("job failed", "error")
    assert failed["error"] == "RuntimeError: always" and failed["attempt"] == 2
    assert all(isinstance(e["duration_ms"], float) for e in (succeeded, retrying, failed))
    summaries = [e for e in logs if e["event"] == "outcomes written"]
    assert sum(e["count"] for e in summaries) == 3
    assert all(e["log_level"] == "info" for e in summaries)
