"""Helpers for tests of code that uses jobrunner; jobrunner's own suite uses them too.

- `await drain(pool)` runs every ready job in-process (a burst worker) and returns counts.
- `await assert_enqueued(conn, task="emails.send", args={...})` checks a job is waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobrunner.db.pool import Conn, Pool
from jobrunner.models import Job
from jobrunner.settings import Settings
from jobrunner.worker.worker import Worker, WorkerStats


async def drain(
    pool: Pool,
    *,
    dsn: str = "",
    queues: Sequence[str] = ("default",),
    concurrency: int = 10,
    settings: Settings | None = None,
) -> WorkerStats:
    """Run queued jobs in this process until none is left to claim.

    Scheduled and retrying jobs wait for their time as usual: drain does not run them early.
    """
    worker = Worker(
        settings or Settings(),
        dsn=dsn,
        pool=pool,
        queues=queues,
        concurrency=concurrency,
        maintenance=False,
        heartbeat=False,
    )
    return await worker.run(burst=True)


async def assert_enqueued(
    conn: Conn, *, task: str, args: Mapping[str, Any] | None = None, queue: str | None = None
) -> Job:
    """The waiting job of `task` whose args contain `args`; AssertionError if none."""
    from jobrunner.db.queries import QUERIES

    row = await conn.fetchrow(QUERIES["job_find_waiting"], task, dict(args or {}), queue)
    if row is None:
        raise AssertionError(f"no waiting job of task {task!r} with args {dict(args or {})}")
    return Job.from_record(row)
