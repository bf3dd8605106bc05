"""Tasks the fault suite runs in real worker processes (`JOBRUNNER_TASKS` names this module).

Handlers that touch the database use the worker's client pool (`client.default_pool()`), set
up by `jobrunner worker` at start. The tables they write are created per test by
`tests.faults.conftest` (`FAULT_TABLES`).

A handler is not told its job id or attempt, so the ones that need them find their own row:
the running job whose args carry their token and whose worker id names this process.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import asyncpg

from jobrunner import client, parent_results, task

FAULT_TABLES = """
CREATE TABLE fault_effects (n integer PRIMARY KEY, pid integer NOT NULL);
CREATE TABLE fault_violations (n integer NOT NULL, pid integer NOT NULL);
CREATE TABLE fault_fenced (
    job_id uuid NOT NULL, attempt integer NOT NULL, pid integer NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE fault_tries (
    token text NOT NULL, attempt integer NOT NULL, pid integer NOT NULL,
    accepted boolean NOT NULL, cancelled boolean NOT NULL, at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE fault_runs (token text NOT NULL, pid integer NOT NULL, attempt integer NOT NULL);
CREATE TABLE fault_spans (
    n integer NOT NULL, key text NOT NULL, pid integer NOT NULL,
    started double precision NOT NULL, finished double precision
);
"""

_MY_ATTEMPT = """
SELECT id, attempt, worker_id FROM jobrunner.jobs
WHERE args->>'token' = $1 AND state = 'running' AND worker_id LIKE '%:' || $2 || ':%'
"""

# Written only while this attempt still holds the job: the row lock (FOR SHARE) keeps the
# outcome write of a rescuer from slipping between the check and the insert.
_FENCED_INSERT = """
WITH holder AS (
    SELECT id FROM jobrunner.jobs
    WHERE id = $1 AND attempt = $2 AND worker_id = $3 AND state = 'running'
    FOR SHARE
)
INSERT INTO fault_fenced (job_id, attempt, pid) SELECT id, $2, $4 FROM holder
RETURNING job_id
"""


async def _my_attempt(token: str) -> asyncpg.Record:
    async with client.default_pool().acquire() as conn:
        row = await conn.fetchrow(_MY_ATTEMPT, token, str(os.getpid()))
    assert row is not None, f"no running job with token {token!r} on pid {os.getpid()}"
    return row


@task(name="fault.record", max_attempts=5)
async def record(n: int) -> int:
    """Write row n under a unique constraint; a second write of n is counted, not raised."""
    async with client.default_pool().acquire() as conn:
        try:
            await conn.execute("INSERT INTO fault_effects (n, pid) VALUES ($1, $2)", n, os.getpid())
        except asyncpg.UniqueViolationError:
            await conn.execute(
                "INSERT INTO fault_violations (n, pid) VALUES ($1, $2)", n, os.getpid()
            )
    return n


@task(name="fault.gather", max_attempts=5)
async def gather(n: int) -> dict[str, Any]:
    """`fault.record` for a child: write row n, and return what its parents left."""
    await record(n)
    parents = parent_results()
    return {"n": n, "results": [p.result for p in parents], "states": [p.state for p in parents]}


async def _fenced_write(token: str, me: asyncpg.Record, cancelled: bool) -> bool:
    async with client.default_pool().acquire() as conn:
        written = await conn.fetchval(
            _FENCED_INSERT, me["id"], me["attempt"], me["worker_id"], os.getpid()
        )
        await conn.execute(
            "INSERT INTO fault_tries (token, attempt, pid, accepted, cancelled)"
            " VALUES ($1, $2, $3, $4, $5)",
            token,
            me["attempt"],
            os.getpid(),
            written is not None,
            cancelled,
        )
    return written is not None


@task(name="fault.fenced_write", max_attempts=5)
async def fenced_write(token: str, hold: float) -> dict[str, Any]:
    """Hold the first attempt for `hold` seconds, then write a side effect keyed by (job id,
    attempt) only if this attempt still holds the job. Ignores cancellation throughout: the
    worst case, where a late attempt always tries its write and returns a result."""
    me = await _my_attempt(token)
    async with client.default_pool().acquire() as conn:  # tells the test we are holding
        await conn.execute(
            "INSERT INTO fault_runs (token, pid, attempt) VALUES ($1, $2, $3)",
            token,
            os.getpid(),
            me["attempt"],
        )
    cancelled = False
    if me["attempt"] == 1:
        deadline = time.monotonic() + hold
        while (left := deadline - time.monotonic()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                cancelled = True  # the worst case: the late write is still attempted
    write = asyncio.ensure_future(_fenced_write(token, me, cancelled))
    while True:
        try:
            written = await asyncio.shield(write)
            break
        except asyncio.CancelledError:
            cancelled = True
    return {"pid": os.getpid(), "attempt": me["attempt"], "accepted": written}


async def _first_run(token: str) -> tuple[bool, int]:
    """Log this run as (token, pid, attempt); returns my attempt and whether I am the first."""
    me = await _my_attempt(token)
    async with client.default_pool().acquire() as conn:
        earlier = await conn.fetchval(
            "WITH logged AS (INSERT INTO fault_runs (token, pid, attempt) VALUES ($1, $2, $3))"
            " SELECT count(*) FROM fault_runs WHERE token = $1",
            token,
            os.getpid(),
            me["attempt"],
        )
    return earlier == 0, me["attempt"]


@task(name="fault.sleeps_first_run", max_attempts=5)
async def sleeps_first_run(token: str, seconds: float) -> dict[str, int]:
    """Sleep `seconds` on the first run of this token only (a release does not count an
    attempt, so the attempt number cannot tell)."""
    first, attempt = await _first_run(token)
    if first:
        await asyncio.sleep(seconds)
    return {"pid": os.getpid(), "attempt": attempt}


@task(name="fault.blocks_first_run", max_attempts=5)
async def blocks_first_run(token: str, seconds: float) -> dict[str, int]:
    """Block the event loop (a sync sleep in an async handler) on the first run only."""
    first, attempt = await _first_run(token)
    if first:
        time.sleep(seconds)  # noqa: ASYNC251 - deliberately blocks the event loop
    return {"pid": os.getpid(), "attempt": attempt}


@task(name="fault.blocks_first_run_until", max_attempts=5)
async def blocks_first_run_until(token: str, flag: str, limit: float) -> dict[str, int]:
    """Block the event loop on the first run until the file `flag` exists (at most `limit`
    seconds): the test decides how long, not the machine's speed."""
    first, attempt = await _first_run(token)
    deadline = time.monotonic() + limit
    while first and not os.path.exists(flag) and time.monotonic() < deadline:  # noqa: ASYNC240 - blocks on purpose
        time.sleep(0.02)  # noqa: ASYNC251 - deliberately blocks the event loop
    return {"pid": os.getpid(), "attempt": attempt}


async def _run_ignoring_cancel(seconds: float) -> dict[str, int]:
    swallowed = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            swallowed += 1
    return {"pid": os.getpid(), "swallowed": swallowed}


@task(name="fault.ignore_cancel", max_attempts=2)
async def ignore_cancel(seconds: float) -> dict[str, int]:
    """Run for `seconds` whatever happens, counting the cancellations it swallowed."""
    return await _run_ignoring_cancel(seconds)


@task(name="fault.ignore_cancel_timeout", max_attempts=2, timeout=0.2)
async def ignore_cancel_timeout(seconds: float) -> dict[str, int]:
    """The same, with a 0.2 s timeout that it ignores too."""
    return await _run_ignoring_cancel(seconds)


@task(name="fault.pid")
async def pid() -> int:
    """Which process ran me."""
    return os.getpid()


@task(name="fault.sleep", max_attempts=5)
async def sleep(seconds: float) -> int:
    await asyncio.sleep(seconds)
    return os.getpid()


@task(name="fault.sync_sleep", max_attempts=2)
def sync_sleep(seconds: float) -> int:
    """A sync handler: it runs on a thread, which nothing can cancel."""
    time.sleep(seconds)
    return os.getpid()


_SPAN_START = """
INSERT INTO fault_spans (n, key, pid, started)
VALUES ($1, $2, $3, extract(epoch FROM clock_timestamp()))
"""
_SPAN_FINISH = """
UPDATE fault_spans SET finished = extract(epoch FROM clock_timestamp())
WHERE n = $1 AND pid = $2 AND finished IS NULL
"""


@task(name="fault.span", max_attempts=1)
async def span(n: int, key: str = "", seconds: float = 0.0) -> int:
    """Record when this handler started and finished (database clock), for the tests of
    queue controls: how many ran at once, how fast they started, one key's share."""
    pool = client.default_pool()
    await pool.execute(_SPAN_START, n, key, os.getpid())
    await asyncio.sleep(seconds)
    await pool.execute(_SPAN_FINISH, n, os.getpid())
    return n
