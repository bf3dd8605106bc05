"""The library API over the queue: enqueue, read, cancel, retry.

The HTTP API, the CLI and users' code all call these, so none of them holds SQL. Every
function takes an optional `conn`: pass one to act inside your own transaction (a job enqueued
that way is rolled back with it, and no worker hears of it before it commits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Unpack
from uuid import UUID

from jobrunner import dependencies
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool, create_pool
from jobrunner.doorbell import Doorbell
from jobrunner.errors import JobNotFound, JobrunnerError, JobStateConflict
from jobrunner.job_rows import insert_copy, insert_one, make_rows
from jobrunner.models import (
    HistoryEntry,
    Job,
    JobLink,
    JobLinks,
    JobMotion,
    JobProgress,
    JobState,
    QueueCounts,
    ThroughputMinute,
    WebhookDelivery,
)
from jobrunner.options import EnqueueOptions, JobOptions

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


async def enqueue(
    task_name: str,
    args: Mapping[str, Any] | None = None,
    *,
    conn: Conn | None = None,
    doorbell: Doorbell | None = None,
    **options: Unpack[EnqueueOptions],
) -> Job:
    """Validate and insert one job; a live job with the same dedup key is returned instead.
    The options (queue, priority, max_attempts, timeout, backoff, delay or run_at, dedup_key,
    owner, fairness_key, callback_url) override the task's defaults; depends_on names jobs it
    waits for (and on_parent_failure what their failure does to it: jobrunner.dependencies).

    Without `conn`, the job commits on its own and its queue is rung just after, through the
    default pool's doorbell. With `conn` (any asyncpg connection, in your transaction or not),
    the ring goes out with the caller's transaction, unless `doorbell` is given: then the
    caller promises `conn` is in no transaction (each statement commits at once) and that the
    doorbell rings the same database.
    """
    rows = make_rows(task_name, [args or {}], JobOptions(**options))
    if conn is not None:
        return await insert_one(conn, rows, ring_after=doorbell)
    async with default_pool().acquire() as acquired:
        return await insert_one(acquired, rows, ring_after=_doorbell)


async def enqueue_many(
    task_name: str,
    args_list: Iterable[Mapping[str, Any]],
    *,
    conn: Conn | None = None,
    **options: Unpack[EnqueueOptions],
) -> list[UUID]:
    """Validate and insert many jobs of one task in one transaction; returns their ids, in
    the order of `args_list` (which is also the order they are claimed in, other things
    equal). The options are `enqueue`'s, shared by every job; no dedup keys or callbacks."""
    rows = make_rows(task_name, list(args_list), JobOptions(**options))
    async with _connection(conn) as c:
        return await insert_copy(c, rows)


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
    """Cancel at once if waiting; a running job's worker is asked to stop its handler. A job
    cancelled at once cancels its waiting children in the same transaction (or releases
    those that run anyway)."""
    async with _connection(conn) as c, c.transaction():
        job = await queries.job_cancel(c, job_id, user=user, admin=admin)
        if job is None:
            current = await get_job(job_id, conn=c, user=user, admin=admin)
            raise JobStateConflict(f"job {job_id} is already {current.state}")
        if job.state is JobState.CANCELLED and job.child_added_at is not None:
            await dependencies.settle(c, [job.id])
    return job


async def retry_job(
    job_id: UUID, *, conn: Conn | None = None, user: str | None = None, admin: bool = True
) -> Job:
    """Put a failed or cancelled job back in the queue."""
    async with _connection(conn) as c:
        job = await queries.job_retry(c, job_id, user=user, admin=admin)
        if job is None:
            job = await _retry_archived(c, job_id, user=user, admin=admin)
        if job is None:
            current = await get_job(job_id, conn=c, user=user, admin=admin)
            raise JobStateConflict(
                f"job {job_id} is {current.state}; only failed or cancelled jobs can be retried"
            )
    return job


async def _retry_archived(c: Conn, job_id: UUID, *, user: str | None, admin: bool) -> Job | None:
    """Retry a job already archived: back to jobs, then retried, in one transaction. Tried
    after the retry in jobs found nothing, so a job the archiver was moving meanwhile (its
    row locked, then gone) is found here in job_history."""
    async with c.transaction():
        states = (JobState.FAILED, JobState.CANCELLED)
        restored = await queries.job_history_restore(
            c, [job_id], user=user, admin=admin, states=states
        )
        if not restored:
            return None
        return await queries.job_retry(c, job_id, user=user, admin=admin)


# ----- reads for the API and the dashboard ---------------------------------------------


async def webhook_delivery(job: Job, *, conn: Conn | None = None) -> WebhookDelivery | None:
    """The latest delivery of a job's webhook (a job of jobrunner's own, owned by nobody),
    or None: no callback URL, or not finished yet. No visibility check: callers check it."""
    if job.callback_url is None:
        return None  # no read at all for the jobs without a callback
    async with _connection(conn) as c:
        return await queries.job_delivery_latest(c, job.id)


LINKS_SHOWN = 100  # parents and children a job's page lists (with how many there are)


async def job_links(
    job: Job, *, conn: Conn | None = None, user: str | None = None, admin: bool = True
) -> JobLinks:
    """A job's parents (in the order it named them) and its first children, those `user`
    may see; no read for a job that has neither."""
    if not job.parents and job.child_added_at is None:
        return JobLinks()
    async with _connection(conn) as c:
        shown = job.parents[:LINKS_SHOWN]
        parents = await queries.job_parents_list(c, shown, user=user, admin=admin)
        children: list[JobLink] = []
        total = 0
        if job.child_added_at is not None:
            children, total = await queries.job_children_list(
                c, job.id, user=user, admin=admin, limit=LINKS_SHOWN
            )
    return JobLinks(tuple(parents), len(job.parents), tuple(children), total)


LEAN = queries.Include()  # lists read neither args nor results unless asked


async def list_jobs(
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    where: queries.JobFilter | None = None,
    before: UUID | None = None,
    limit: int = 50,
    include: queries.Include = LEAN,
) -> list[Job]:
    """Jobs newest first, older than `before` (keyset: stable while jobs are inserted).
    Their args and result are None unless `include` asks for them."""
    page = queries.Page(limit, include)
    jobs, _ = await list_jobs_page(
        conn=conn, user=user, admin=admin, where=where, before=before, page=page
    )
    return jobs


async def find_by_id_prefix(
    prefix: str,
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    limit: int = 20,
) -> list[Job]:
    """Jobs whose id starts with `prefix` (hex digits, dashes ignored: a short id such as
    `01a2454d-2ee5`), newest first; [] when `prefix` is not one."""
    digits = prefix.replace("-", "").lower()
    if not 4 <= len(digits) <= 32 or any(c not in "0123456789abcdef" for c in digits):
        return []
    low, high = UUID(digits.ljust(32, "0")), UUID(digits.ljust(32, "f"))
    async with _connection(conn) as c:
        return await queries.job_list_id_range(c, low, high, user=user, admin=admin, limit=limit)


async def list_jobs_page(
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    where: queries.JobFilter | None = None,
    before: UUID | None = None,
    page: queries.Page,
) -> tuple[list[Job], bool]:
    """`list_jobs` under `page`'s byte cap: the jobs, and whether the cap cut them short."""
    async with _connection(conn) as c:
        return await queries.job_list(
            c,
            owner=None if admin else user,
            before=before,
            where=where or queries.JobFilter(),
            page=page,
        )


async def list_history(
    *,
    conn: Conn | None = None,
    user: str | None = None,
    admin: bool = True,
    where: queries.JobFilter | None = None,
    after: tuple[datetime, UUID] | None = None,
    page: queries.Page,
) -> tuple[list[HistoryEntry], bool]:
    """Finished jobs newest first, after the (finished_at, id) of the previous page's last;
    their results only if `page` includes them. Also whether the byte cap cut the page."""
    async with _connection(conn) as c:
        rows, cut = await queries.history_list(
            c,
            owner=None if admin else user,
            after=after,
            where=where or queries.JobFilter(),
            page=page,
        )
    return rows, cut


async def get_jobs(ids: Iterable[UUID], *, conn: Conn | None = None) -> list[Job]:
    """Several whole jobs in one round trip (no visibility check: callers check it first)."""
    async with _connection(conn) as c:
        return await queries.job_get_many(c, list(ids))


async def get_motion(ids: Iterable[UUID], *, conn: Conn | None = None) -> list[JobMotion]:
    """Where several jobs stand (state, attempt, start and finish), in one narrow read."""
    async with _connection(conn) as c:
        return await queries.job_motion_many(c, list(ids))


async def get_progress(
    ids: Iterable[UUID], *, conn: Conn | None = None, error_chars: int = 500
) -> list[JobProgress]:
    """The state and attempt history of several jobs in one round trip, without their args
    or results (no visibility check: callers check it first)."""
    async with _connection(conn) as c:
        return await queries.job_progress_many(c, list(ids), error_chars=error_chars)


async def unknown_tasks(*, conn: Conn | None = None) -> dict[str, int]:
    """Tasks with jobs waiting because the worker that claimed them did not know the task
    (deferred, attempt not spent), and how many: the code that registers them is missing
    from some worker (JOBRUNNER_TASKS), or a deploy is under way."""
    async with _connection(conn) as c:
        return await queries.job_tasks_unknown(c)


async def count_jobs(*, conn: Conn | None = None, cap: int = 100_000) -> list[QueueCounts]:
    """Jobs per queue and state, each state counted up to `cap` along its own index."""
    async with _connection(conn) as c:
        rows = await queries.job_count_by_state(c, cap=cap)
    counts = QueueCounts.of_rows(rows, cap, (s.value for s in JobState))
    return [counts[queue] for queue in sorted(counts)]


async def throughput(*, conn: Conn | None = None, minutes: int = 15) -> list[ThroughputMinute]:
    """Outcomes per minute and queue over the last `minutes`."""
    async with _connection(conn) as c:
        return await queries.throughput_recent(c, minutes=minutes)
