"""The `e2e` and `start` groups of `jobrunner bench` (issue 17, items 2 and 3).

e2e: `e2e_jobs` jobs, one every `e2e_every` seconds, each timed from just before the enqueue
call to its handler's first line (the handler returns its wall clock; one machine, one
clock): what a caller waits for its job to start, the insert included. Ours enqueue with
`client.enqueue` on the default pool and a `python -m jobrunner worker` process runs them;
then, in the same round, the same through the hand-written LISTEN/NOTIFY queue of
jobrunner.bench.baseline_queue, a process of its own too.

start: a worker process started beside one queued job, timed from just before the process
is spawned to the job's handler: imports, pool, listener, registration, first claim.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from uuid import UUID

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import QUEUE, BenchError, Figure, Options, Workers, percentile
from jobrunner.bench.tasks import PICKUP
from jobrunner.db.pool import Conn

if TYPE_CHECKING:  # the runner imports this module
    from jobrunner.bench.runner import Bench

# What the baseline queue's process writes once it listens. Here, not in that module: the
# bench imports this one, and a module run with -m must not be imported before it runs.
READY = b"ready\n"


def e2e_figures(o: Options) -> list[Figure]:
    every = f"{o.e2e_jobs} jobs {o.e2e_every * 1000:g} ms apart"
    return [
        Figure(f"end to end p50 ({every})", "ms"),
        Figure("end to end p99", "ms", 5.0),
        Figure("  baseline: hand-written LISTEN/NOTIFY, p50", "ms"),
        Figure("  baseline p99", "ms"),
        Figure("  p50 over the baseline's", "ms", 0.5),
    ]


def start_figures() -> list[Figure]:
    return [Figure("worker start to first job", "s", 0.2, at_most=True)]


async def e2e_round(bench: Bench) -> list[float]:
    ours = await _ours(bench)
    baseline = await _baseline(bench)
    p50 = percentile(ours, 50)
    base50 = percentile(baseline, 50)
    return [p50, percentile(ours, 99), base50, percentile(baseline, 99), p50 - base50]


async def _ours(bench: Bench) -> list[float]:
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    await client.configure(bench.pool)
    workers = Workers(bench.dsn, 1, concurrency=o.concurrency)
    sent: dict[UUID, float] = {}
    try:
        await workers.ready(conn)
        start = time.monotonic()
        for i in range(o.e2e_jobs):
            await asyncio.sleep(max(0.0, start + i * o.e2e_every - time.monotonic()))
            before = time.time()
            job = await client.enqueue(PICKUP)
            sent[job.id] = before
        started = await _results(conn, len(sent), workers.check_alive)
    finally:
        await workers.stop()
    return [(started[job_id] - at) * 1000 for job_id, at in sent.items()]


async def _baseline(bench: Bench) -> list[float]:
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobrunner.bench.baseline_queue", bench.dsn, QUEUE,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    sent: dict[UUID, float] = {}
    try:
        assert consumer.stdout is not None
        if await asyncio.wait_for(consumer.stdout.readline(), timeout=30) != READY:
            raise BenchError("the baseline queue did not start")
        start = time.monotonic()
        for i in range(o.e2e_jobs):
            await asyncio.sleep(max(0.0, start + i * o.e2e_every - time.monotonic()))
            before = time.time()
            async with bench.pool.acquire() as c:
                job_id = await bench_queries.bench_baseline_enqueue(c, queue=QUEUE, task=PICKUP)
            sent[job_id] = before
        started = await _results(conn, len(sent), lambda: None)
    finally:
        consumer.terminate()
        await consumer.wait()
    return [(started[job_id] - at) * 1000 for job_id, at in sent.items()]


async def start_round(bench: Bench) -> list[float]:
    conn = bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    job = await client.enqueue(PICKUP, conn=conn)
    spawned = time.time()
    workers = Workers(bench.dsn, 1, concurrency=bench.opts.concurrency)
    try:
        started = await _results(conn, 1, workers.check_alive)
    finally:
        await workers.stop()
    return [started[job.id] - spawned]


async def _results(conn: Conn, count: int, check: Callable[[], None]) -> dict[UUID, float]:
    """The handlers' start times once `count` PICKUP jobs have succeeded."""
    deadline = time.monotonic() + 60
    while len(started := await bench_queries.bench_jobs_results(conn, task=PICKUP)) < count:
        check()
        if time.monotonic() > deadline:
            raise BenchError(f"{count} jobs enqueued, {len(started)} started within 60 s")
        await asyncio.sleep(0.01)
    return started
