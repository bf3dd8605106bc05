"""Handlers' progress (jobrunner.progress): coalesced, last report wins, written before the
outcome, fenced to the attempt that holds the job, cleared by a new attempt."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

from jobrunner import client
from jobrunner.context import JobContext
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.models import Job, JobState
from jobrunner.progress import ProgressBoard, ProgressReport
from jobrunner.worker.progress import ProgressWriter
from tests.support.tasks import gate
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker, terminal

ReadJob = Callable[[UUID], Awaitable[Job]]
WORKER = "w-progress"


async def test_many_reports_are_written_coalesced_and_the_last_one_wins(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    key = str(uuid4())
    async with pool.acquire() as conn:
        job = await client.enqueue(
            "test.progress_steps", {"key": key, "steps": 1000, "fail_first": False}, conn=conn
        )
    worker = await start_worker()

    async def last_step_stored() -> Job | None:
        read = await job_state(job.id)
        return read if read.progress is not None and read.progress.fraction == 1.0 else None

    running = await wait_for(last_step_stored, what="the last report stored")
    assert running.state is JobState.RUNNING
    assert running.progress is not None
    assert (running.progress.message, running.progress.data) == (
        "step 1000 of 1000",
        {"step": 1000},
    )
    # A thousand reports, made in a tight loop, took a write or two, not a thousand.
    assert 1 <= worker.progress.writes <= 3
    gate(key).set()
    done = await wait_for(lambda: _ended(job_state, job.id), what="the job ended")
    assert done.state is JobState.SUCCEEDED
    # The report made as it returned was written before its outcome, and kept.
    assert done.progress is not None and done.progress.message == "finished"


async def test_a_job_that_ends_before_the_first_round_stores_no_progress(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue(
            "test.sync_progress", {"fraction": 0.25, "message": "a quarter"}, conn=conn
        )
    worker = await start_worker()
    done = await wait_for(lambda: _ended(job_state, job.id), what="the job ended")
    assert done.state is JobState.SUCCEEDED, done.errors  # the report was accepted
    assert done.progress is None  # nobody saw it run: no UPDATE for it
    assert worker.progress.writes == 0


async def test_a_new_attempt_starts_without_the_last_attempts_progress(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    key = str(uuid4())
    async with pool.acquire() as conn:
        job = await client.enqueue(
            "test.progress_steps", {"key": key, "steps": 4, "fail_first": True}, conn=conn
        )
    await start_worker()

    async def first_attempt_shown() -> Job | None:
        read = await job_state(job.id)
        return read if read.progress is not None and read.progress.fraction == 1.0 else None

    first = await wait_for(first_attempt_shown, what="the first attempt's progress written")
    assert first.attempt == 1
    gate(f"{key}:first").set()

    async def second_attempt_running() -> Job | None:
        read = await job_state(job.id)
        return read if read.attempt == 2 and read.state is JobState.RUNNING else None

    second = await wait_for(second_attempt_running, what="the second attempt running")
    assert second.progress is None
    gate(key).set()
    done = await wait_for(lambda: _ended(job_state, job.id), what="the job ended")
    assert done.state is JobState.SUCCEEDED
    assert done.progress is None  # the second attempt ended before a round showed it


async def test_only_the_attempt_that_holds_the_job_writes_its_progress(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        (claimed,) = await queries.job_claim(
            conn, queues=["default"], worker_id=WORKER, limit=1, lease_seconds=30
        )
        stale = [
            _report(claimed.id, claimed.attempt - 1, 0.9),  # an attempt replaced since
            _report(claimed.id, claimed.attempt + 1, 0.8),  # not (yet) this job's attempt
        ]
        for report in stale:
            assert await queries.progress_write_many(conn, [report], worker_id=WORKER) == {}
        other = await queries.progress_write_many(
            conn, [_report(claimed.id, claimed.attempt, 0.7)], worker_id="w-other"
        )
        assert other == {}
        assert (await client.get_job(claimed.id, conn=conn)).progress is None
        current = _report(claimed.id, claimed.attempt, 0.5)
        written = await queries.progress_write_many(conn, [current], worker_id=WORKER)
        assert written == {claimed.id: True}
        progress = (await client.get_job(claimed.id, conn=conn)).progress
        assert progress is not None and progress.fraction == 0.5


async def test_a_row_locked_elsewhere_is_skipped_and_its_report_put_back(pool: Pool) -> None:
    async with pool.acquire() as conn, pool.acquire() as other:
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        (claimed,) = await queries.job_claim(
            conn, queues=["default"], worker_id=WORKER, limit=1, lease_seconds=30
        )
        writer = ProgressWriter(ProgressBoard(), worker_id=WORKER)
        job = JobContext(
            claimed.id,
            claimed.task,
            claimed.attempt,
            claimed.max_attempts,
            claimed.queue,
            report_to=writer.board.join,
        )
        job.progress(0.3, "at 0.3")
        async with other.transaction():  # as the heartbeat renewing it would
            await other.execute("SELECT 1 FROM jobrunner.jobs WHERE id = $1 FOR UPDATE", claimed.id)
            await writer.write_round(conn)
        assert writer.writes == 1 and (await client.get_job(claimed.id, conn=conn)).progress is None
        job.progress(0.4, "at 0.4")  # newer than the one put back: only it is taken
        assert [r.fraction for r in writer.board.take()] == [0.4]
        writer.board.put_back([_report(claimed.id, claimed.attempt, 0.4)])
        await writer.write_round(conn)  # unlocked now
        progress = (await client.get_job(claimed.id, conn=conn)).progress
        assert progress is not None and progress.fraction == 0.4
        await writer.write_before_outcomes(conn, [(claimed.id, claimed.attempt)])
        assert writer.writes == 2 and not writer.board  # nothing new to write; it left
        assert not writer.busy()


async def test_an_attempt_whose_row_is_gone_leaves_the_board(pool: Pool) -> None:
    async with pool.acquire() as conn:
        made = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        board = ProgressBoard()
        job = JobContext(made.id, "test.add", 1, 3, "default", report_to=board.join)
        job.progress(0.5)  # never claimed by this worker: its row is not held
        await ProgressWriter(board, worker_id=WORKER).write_round(conn)
        assert not board


async def _ended(read: ReadJob, job_id: UUID) -> Job | None:
    job = await read(job_id)
    return job if terminal(job) else None


def _report(job_id: UUID, attempt: int, fraction: float) -> ProgressReport:
    return ProgressReport(job_id, attempt, fraction, f"at {fraction}", None)
