"""The `fairness` group of `jobrunner bench` (issue 13's figures), each round back to back:

- a hand-written asyncpg baseline: one connection claiming the oldest 250 queued jobs with
  `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)` and marking them done, no
  handler, no fairness, no lease renewal: the floor of what any PostgreSQL queue pays;
- throughput with one fairness key, then with 10 and with `owners` keys taking turns (the
  claim walks a lane per key), each as a share of the first, and the first as a share of
  the baseline, all in the same round;
- a small owner's wait: one owner has `big_backlog` no-op jobs queued and a worker (1 x
  concurrency) draining them; a second owner then enqueues `small_jobs`, one every 5 ms.
  Each wait is the handler's wall clock at its start minus the enqueuer's just before the
  enqueue call (one machine, one clock): what the submitter waits, the insert included.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from uuid import UUID

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import (
    QUEUE,
    BenchError,
    Figure,
    Options,
    Workers,
    fill,
    percentile,
    process_round,
)
from jobrunner.bench.tasks import PICKUP
from jobrunner.db import queries
from jobrunner.options import JobOptions

if TYPE_CHECKING:  # the runner imports this module
    from jobrunner.bench.runner import Bench

SMALL_EVERY = 0.005  # seconds between the small owner's enqueues
FEW_OWNERS = 10


def fairness_figures(o: Options) -> list[Figure]:
    return [
        Figure("baseline: hand-written asyncpg claim + finish", "jobs/s"),
        Figure(f"process, one owner (1 x {o.concurrency})", "jobs/s"),
        Figure("  one owner as share of the baseline", "%"),
        Figure(f"process, {FEW_OWNERS} owners taking turns", "jobs/s"),
        Figure(f"  {FEW_OWNERS} owners as share of one", "%", 90.0),
        Figure(f"process, {o.owners:,} owners taking turns", "jobs/s"),
        Figure("  many owners as share of one", "%", 80.0),
        Figure(f"small owner's wait p50, beside {o.big_backlog:,} queued", "ms"),
        Figure("small owner's wait p99", "ms", 100.0),
    ]


async def fairness_round(bench: Bench) -> list[float]:
    o, conn = bench.opts, bench.conn
    rates = []
    for owners in (1, FEW_OWNERS, o.owners):
        await bench_queries.bench_jobs_truncate(conn)
        rate, _ = await process_round(
            bench.dsn, conn, o, processes=1, concurrency=o.concurrency, owners=owners
        )
        rates.append(rate)
    waits = await small_owner_waits(bench)
    baseline = await baseline_rate(bench)
    return [
        baseline,
        rates[0],
        rates[0] / baseline * 100,
        rates[1],
        rates[1] / rates[0] * 100,
        rates[2],
        rates[2] / rates[0] * 100,
        percentile(waits, 50),
        percentile(waits, 99),
    ]


async def baseline_rate(bench: Bench) -> float:
    """Jobs per second of the hand-written loop over the same 20,000 no-op jobs, filled the
    same way, timed like the worker rounds (first start to last finish, database time)."""
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    await fill(conn, o.jobs, JobOptions(queue=QUEUE))
    while ids := await bench_queries.bench_baseline_claim(conn, limit=250, queue=QUEUE):
        await bench_queries.bench_baseline_finish(conn, ids)
    succeeded, _, seconds = await bench_queries.bench_jobs_span(conn, queue=QUEUE)
    if succeeded != o.jobs:
        raise BenchError(f"the baseline finished {succeeded} of {o.jobs} jobs")
    return o.jobs / seconds


async def small_owner_waits(bench: Bench) -> list[float]:
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    await client.configure(bench.pool)
    workers = Workers(bench.dsn, 1, concurrency=o.concurrency)
    committed: dict[UUID, float] = {}
    try:
        await workers.ready(conn)
        async with conn.transaction():
            await fill(conn, o.big_backlog, JobOptions(queue=QUEUE, fairness_key="big"))
            await queries.doorbell_ring(conn, [QUEUE])
        await asyncio.sleep(0.2)  # the worker is well into the big backlog
        start = time.monotonic()
        for i in range(o.small_jobs):
            await asyncio.sleep(max(0.0, start + i * SMALL_EVERY - time.monotonic()))
            sent = time.time()
            job = await client.enqueue(PICKUP, conn=conn, fairness_key="small")
            committed[job.id] = sent
        deadline = time.monotonic() + 60
        while len(started := await bench_queries.bench_jobs_results(conn, task=PICKUP)) < len(
            committed
        ):
            if time.monotonic() > deadline:
                raise BenchError("the small owner's jobs did not finish within 60 s")
            await asyncio.sleep(0.02)
        if not await bench_queries.bench_jobs_unfinished(conn, queue=QUEUE):
            raise BenchError("the big backlog drained first: raise --big-backlog")
    finally:
        await workers.stop()
    return [(started[job_id] - at) * 1000 for job_id, at in committed.items()]
