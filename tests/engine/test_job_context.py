"""Handlers see their job (jobrunner.context): by a parameter typed JobContext, or
current_job(), in async and sync handlers alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

import pytest
import structlog

from jobrunner import JobContext, client, current_job
from jobrunner.db.pool import Pool
from jobrunner.errors import InvalidArguments, JobrunnerError
from jobrunner.models import Job, JobState
from jobrunner.registry import get_task
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker

ReadJob = Callable[[UUID], Awaitable[Job]]


async def test_a_handler_sees_its_job_by_parameter_and_context_variable(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        retried = await client.enqueue("test.context", {"fail_first": True}, conn=conn)
        synced = await client.enqueue("test.sync_context", {}, conn=conn, queue="other")
    await start_worker(queues=["default", "other"])

    async def finished(job_id: UUID) -> Job | None:
        job = await job_state(job_id)
        return job if job.state.is_terminal else None

    done = await wait_for(lambda: finished(retried.id), timeout=15)
    sync_done = await wait_for(lambda: finished(synced.id), timeout=15)
    assert done.state is JobState.SUCCEEDED, done.errors
    assert done.result == {
        "id": str(retried.id),
        "task": "test.context",
        "attempt": 2,
        "max_attempts": 2,
        "queue": "default",
        "same_as_current": True,
        "log_context": {"job_id": str(retried.id), "task": "test.context", "attempt": "2"},
    }
    assert sync_done.state is JobState.SUCCEEDED, sync_done.errors
    assert sync_done.result["id"] == str(synced.id)
    assert (sync_done.result["queue"], sync_done.result["attempt"]) == ("other", 1)


def test_the_context_parameter_is_no_argument_of_the_job() -> None:
    task = get_task("test.context")
    assert task.context_param == "job"
    assert set(task.args_schema()["properties"]) == {"fail_first"}
    with pytest.raises(InvalidArguments):
        task.validate_args({"fail_first": False, "job": {}})


def test_current_job_outside_a_handler_says_so() -> None:
    with pytest.raises(JobrunnerError, match="only known inside a job's handler"):
        current_job()


def test_a_context_is_cheap_to_build_and_binds_its_logger_once() -> None:
    job = JobContext(uuid4(), "t", attempt=1, max_attempts=1, queue="q")
    assert job.is_last_attempt
    assert job.log is job.log
    assert structlog.get_context(job.log)["task"] == "t"
