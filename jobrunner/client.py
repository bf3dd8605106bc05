"""The library API over the queue: enqueue, read, cancel, retry.

The HTTP API, the CLI and users' code all call these, so none of them holds SQL. Every
function takes an optional `conn`: pass one to act inside your own transaction (a job enqueued
that way is rolled back with it, and no worker hears of it before it commits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool, create_pool
from jobrunner.doorbell import Doorbell
from jobrunner.errors import InvalidArguments, JobNotFound, JobrunnerError, JobStateConflict
from jobrunner.models import Job, JobState
from jobrunner.tasks import get_task

_pool: Pool | None = None
_doorbell: Doorbell | None = None


async def configure(pool_or_dsn: Pool | str) -> Pool:
    """Set the pool that calls without `conn` use (the worker and API do this at start)."""
    global _pool, _doorbell
    _pool = (
        await create_pool(pool_or_dsn, role="client", stateless=True)  # our calls keep none
        if isinstance(pool_or_dsn, str)
        else pool_or_dsn
    )
    _doorbell = Doorbell(_pool)
    return _pool


async def close() -> None:
    """Ring every doorbell still waiting, then close the default pool (end of a script)."""
    global _pool, _doorbell
    pool, doorbell = _pool, _doorbell
    _pool = _doorbell = None
    if doorbell is not None:
        await doorbell.flush()
    if pool is not None:
        await pool.close()


def default_doorbell() -> Doorbell | None:
    """The doorbell that rings on the default pool, once `configure` has set one."""
    return _doorbell


def default_pool() -> Pool:
    if _pool is None:
        raise JobrunnerError(
            "no database configured: call `await jobrunner.configure(dsn)` or pass conn="
        )
    return _pool


@asynccontextmanager
async def _connection(conn: Conn | None) -> AsyncIterator[Conn]:
    if conn is not None:
        yield conn
        return
    async with default_pool().acquire() as acquired:
        yield acquired


def _seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _options_error(task: str, message: str) -> InvalidArguments:
    return InvalidArguments(task, [{"loc": ["options"], "msg": message, "type": "value_error"}])


def _check_start(task_name: str, delay: timedelta | float | None, run_at: datetime | None) -> None:
    if delay is not None and run_at is not None:
        raise _options_error(task_name, "give delay or run_at, not both")
    if run_at is not None and run_at.tzinfo is None:
        raise _options_error(task_name, "run_at must carry a timezone")


def _timeout(timeout: timedelta | float | None, task_default: float | None) -> timedelta | None:
    seconds = _seconds(timeout) if timeout is not None else task_default
    return timedelta(seconds=seconds) if seconds else None


def prepare_job(
    task_name: str,
    args: Mapping[str, Any] | None = None,
    *,
    delay: timedelta | float | None = None,
    run_at: datetime | None = None,
    priority: int | None = None,
    dedup_key: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | float | None = None,
    owner: str | None = None,
    callback_url: str | None = None,
) -> queries.NewJob:
    """A job as `enqueue` would insert it: its task known, its arguments checked, the task's
    defaults filled in. Raises before anything is written."""
    task = get_task(task_name)
    valid_args = task.validate_args(dict(args or {}))
    _check_start(task.name, delay, run_at)
    return queries.NewJob(
        queue=queue or task.queue,
        task=task.name,
        args=valid_args,
        priority=task.priority if priority is None else priority,
        max_attempts=max_attempts or task.max_attempts,
        run_at=run_at,
        delay_seconds=_seconds(delay),
        timeout=_timeout(timeout, task.timeout),
        dedup_key=dedup_key,
        owner=owner,
        callback_url=callback_url,
    )


async def enqueue(
    task_name: str,
    args: Mapping[str, Any] | None = None,
    *,
    conn: Conn | None = None,
    delay: timedelta | float | None = None,
    run_at: datetime | None = None,
    priority: int | None = None,
    dedup_key: str | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | float | None = None,
    owner: str | None = None,
    callback_url: str | None = None,
    doorbell: Doorbell | None = None,
) -> Job:
    """Validate and insert one job; a live job with the same dedup key is returned instead.

    Without `conn`, the job commits on its own and its queue is rung just after, through the
    default pool's doorbell. With `conn`, the ring goes out with the caller's transaction,
    unless `doorbell` is given: then the caller promises `conn` is in no transaction (each
    statement commits at once) and that the doorbell rings the same database.
    """
    job = prepare_job(
        task_name,
        args,
        delay=delay,
        run_at=run_at,
        priority=priority,
        dedup_key=dedup_key,
        queue=queue,
        max_attempts=max_attempts,
        timeout=timeout,
        owner=owner,
        callback_url=callback_url,
    )
    return await insert_job(job, conn=conn, doorbell=doorbell)


async def insert_job(
    job: queries.NewJob, *, conn: Conn | None = None, doorbell: Doorbell | None = None
) -> Job:
    """Insert a job `prepare_job` made (rings as `enqueue` says)."""
    ring_after = doorbell if conn is not None else _doorbell
    async with _connection(conn) as c:
        # A live duplicate can finish between our insert and our read; then insert again.
        for _ in range(5):
            inserted = await queries.job_insert(c, job, ring=ring_after is None)
            if inserted is not None:
                if ring_after is not None and inserted.state is JobState.QUEUED:
                    ring_after.ring(inserted.queue)
                return inserted
            assert job.dedup_key is not None
            existing = await queries.job_get_live_by_dedup_key(
                c, task=job.task, dedup_key=job.dedup_key
            )
            if existing is not None:
                return existing
    raise JobStateConflict(f"dedup key {job.dedup_key!r} kept changing hands; try again")


async def enqueue_many(
    task_name: str,
    args_list: Iterable[Mapping[str, Any]],
    *,
    conn: Conn | None = None,
    delay: timedelta | float | None = None,
    run_at: datetime | None = None,
    priority: int | None = None,
    queue: str | None = None,
    max_attempts: int | None = None,
    timeout: timedelta | float | None = None,
    owner: str | None = None,
) -> list[UUID]:
    """Validate and insert many jobs of one task in one transaction; returns their ids, in
    the order of `args_list` (which is also the order they are claimed in, other things
    equal). The options are `enqueue`'s, shared by every job; no dedup keys or callbacks."""
    task = get_task(task_name)
    args = task.validate_many([a if type(a) is dict else dict(a) for a in args_list])
    _check_start(task.name, delay, run_at)
    if not args:
        return []
    jobs = queries.NewJobs(
        queue=queue or task.queue,
        task=task.name,
        args=args,
        priority=task.priority if priority is None else priority,
        max_attempts=max_attempts or task.max_attempts,
        run_at=run_at,
        delay_seconds=_seconds(delay),
        timeout=_timeout(timeout, task.timeout),
        owner=owner,
    )
    async with _connection(conn) as c:
        return await queries.job_insert_many(c, jobs)


async def get_job(
    job_id: UUID, *, conn: Conn | None = None, user: str | None = None, admin: bool = True
) -> Job:
    """One job; with `user` and not `admin`, only if that user owns it."""
    async with _connection(conn) as c:
        job = await queries.job_get_visible(c, job_id, user=user, admin=admin)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def cancel_job(
    job_id: UUID, *, conn: Conn | None = None, user: str | None = None, admin: bool = True
) -> Job:
    """Cancel at once if waiting; a running job's worker is asked to stop its handler."""
    async with _connection(conn) as c:
        job = await queries.job_cancel(c, job_id, user=user, admin=admin)
        if job is None:
            current = await get_job(job_id, conn=c, user=user, admin=admin)
            raise JobStateConflict(f"job {job_id} is already {current.state}")
    return job


async def retry_job(
    job_id: UUID, *, conn: Conn | None = None, user: str | None = None, admin: bool = True
) -> Job:
    """Put a failed or cancelled job back in the queue."""
    async with _connection(conn) as c:
        job = await queries.job_retry(c, job_id, user=user, admin=admin)
        if job is None:
            current = await get_job(job_id, conn=c, user=user, admin=admin)
            raise JobStateConflict(
                f"job {job_id} is {current.state}; only failed or cancelled jobs can be retried"
            )
    return job


# ----- reads for the API and the dashboard ---------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished job as the jobrunner.history view shows it."""

    id: UUID
    queue: str
    task: str
    state: JobState
    attempt: int
    max_attempts: int
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime
    run_duration: timedelta | None
    total_duration: timedelta
    result: Any
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> HistoryEntry:
        values = {name: row[name] for name in cls.__slots__}
        values["state"] = JobState(row["state"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs of one queue per state; a count equal to `cap` means "at least"."""

    queue: str
    states: dict[str, int]
    cap: int


async def list_jobs(
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    where: queries.JobFilter | None = None,
    before: UUID | None = None,
    limit: int = 50,
) -> list[Job]:
    """Jobs newest first, older than `before` (keyset: stable while jobs are inserted)."""
    async with _connection(conn) as c:
        return await queries.job_list(
            c,
            owner=None if admin else user,
            before=before,
            where=where or queries.JobFilter(),
            limit=limit,
        )


async def list_history(
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    where: queries.JobFilter | None = None,
    after: tuple[datetime, UUID] | None = None,
    limit: int = 50,
) -> list[HistoryEntry]:
    """Finished jobs newest first, after the (finished_at, id) of the previous page's last."""
    async with _connection(conn) as c:
        rows = await queries.history_list(
            c,
            owner=None if admin else user,
            after=after,
            where=where or queries.JobFilter(),
            limit=limit,
        )
    return [HistoryEntry.from_row(row) for row in rows]


async def get_jobs(ids: Iterable[UUID], *, conn: Conn | None = None) -> list[Job]:
    """Several jobs in one round trip (no visibility check: callers check it first)."""
    async with _connection(conn) as c:
        return await queries.job_get_many(c, list(ids))


async def count_jobs(*, conn: Conn | None = None, cap: int = 100_000) -> list[QueueCounts]:
    """Jobs per queue and state, each state counted up to `cap` along its own index."""
    async with _connection(conn) as c:
        rows = await queries.job_count_by_state(c, cap=cap)
    by_queue: dict[str, dict[str, int]] = {}
    for queue, state, count in rows:
        by_queue.setdefault(queue, {s.value: 0 for s in JobState})[state] = count
    return [QueueCounts(queue, states, cap) for queue, states in sorted(by_queue.items())]


async def throughput(*, conn: Conn | None = None, minutes: int = 15) -> list[dict[str, Any]]:
    """Outcomes per minute and queue over the last `minutes` (rows: minute, queue, counts)."""
    async with _connection(conn) as c:
        return await queries.throughput_recent(c, minutes=minutes)
