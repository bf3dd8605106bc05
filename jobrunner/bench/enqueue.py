"""The `enqueue` group's figures beside a hand-written asyncpg baseline, in the same round.

Each pair runs back to back on the same pool and table (truncated before each side), so a
figure is read as a share of what bare asyncpg does on the machine of the moment:

- one caller awaiting `Task.enqueue(x=i)`, one job per call and per transaction, against a
  single `INSERT ... RETURNING id` per job on a connection taken from the pool per call;
- `Task.enqueue_many` in chunks of 1,000 jobs, against one `INSERT ... SELECT FROM unnest`
  per chunk.

The baseline sends what a hand-written queue must and nothing more: no validation, the
table's defaults, the id back. Its JSON is encoded inside the timed loop, as ours is.
"""

from __future__ import annotations

import time

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import QUEUE, Figure, Options
from jobrunner.bench.tasks import ADD, bench_add
from jobrunner.db.pool import Pool, dump_json

CHUNK = 1_000  # jobs per enqueue_many call in the chunked pair


def one_caller_figures() -> list[Figure]:
    return [
        Figure("enqueue, one per call (1 caller)", "jobs/s"),
        Figure("  baseline: hand-written INSERT, 1 caller", "jobs/s"),
        Figure("  1 caller as share of the baseline", "%", 90.0),
    ]


def chunk_figures() -> list[Figure]:
    return [
        Figure(f"enqueue_many ({CHUNK:,} per call)", "jobs/s"),
        Figure("  baseline: INSERT ... SELECT unnest", "jobs/s"),
        Figure(f"  {CHUNK:,} per call as share of the baseline", "%", 80.0),
    ]


async def one_caller_round(pool: Pool, o: Options) -> list[float]:
    """Jobs per second of `count` one-at-a-time enqueues, ours then the baseline's."""
    count = o.enqueue // 2
    await client.configure(pool)
    await _truncate(pool)
    started = time.perf_counter()
    for i in range(count):
        await bench_add.enqueue(x=i)
    ours = count / (time.perf_counter() - started)
    await _truncate(pool)
    started = time.perf_counter()
    for i in range(count):
        async with pool.acquire() as conn:
            await bench_queries.bench_baseline_insert(
                conn, queue=QUEUE, task=ADD, args_json=dump_json({"x": i})
            )
    baseline = count / (time.perf_counter() - started)
    return [ours, baseline, ours / baseline * 100]


async def chunk_round(pool: Pool, o: Options) -> list[float]:
    """Jobs per second of `enqueue_many` jobs in chunks of CHUNK, ours then the baseline's."""
    chunks = max(1, o.enqueue_many // CHUNK)
    args = [{"x": i} for i in range(CHUNK)]
    async with pool.acquire() as conn:
        await bench_queries.bench_jobs_truncate(conn)
        started = time.perf_counter()
        for _ in range(chunks):
            await bench_add.enqueue_many(args, conn=conn)
        ours = chunks * CHUNK / (time.perf_counter() - started)
        await bench_queries.bench_jobs_truncate(conn)
        started = time.perf_counter()
        for _ in range(chunks):
            await bench_queries.bench_baseline_insert_many(
                conn, queue=QUEUE, task=ADD, args_json=[dump_json(a) for a in args]
            )
        baseline = chunks * CHUNK / (time.perf_counter() - started)
    return [ours, baseline, ours / baseline * 100]


async def _truncate(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await bench_queries.bench_jobs_truncate(conn)
