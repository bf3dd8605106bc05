"""The `controls` group of `jobrunner bench`: queue controls held by four worker processes
(issue 13's figures). Read from the jobs' own claim and outcome times (database clock):

- a start-rate limit over `rate_seconds` (a minute by default): jobs started in that
  stretch as a share of what the limit allows (the limit times the stretch);
- a global concurrency limit: the most of the queue's jobs running at once (claimed and not
  yet written) against `max_running`;
- pause: from the pause's commit to the last start the workers made after it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jobrunner import queues
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import BenchError, Figure, Options, Workers, fill
from jobrunner.db import queries
from jobrunner.models import QueueChanges, Rate
from jobrunner.options import JobOptions

if TYPE_CHECKING:  # the runner imports this module
    from jobrunner.bench.runner import Bench

QUEUE = "bench_controls"
WORKERS = 4
RATE = 50  # starts per second
MAX_RUNNING = 5
BY = "bench"


def controls_figures(o: Options) -> list[Figure]:
    return [
        Figure(
            f"start-rate limit {RATE}/s over {o.rate_seconds:g} s, % of allowed",
            "%",
            110.0,
            at_most=True,
        ),
        Figure(f"most running at once, max_running {MAX_RUNNING}", "jobs", MAX_RUNNING),
        Figure("pause: last start after it", "ms", 1000.0),
    ]


async def controls_round(bench: Bench) -> list[float]:
    return [await _rate_share(bench), await _most_running(bench), await _pause_holds(bench)]


async def _rate_share(bench: Bench) -> float:
    o, conn = bench.opts, bench.conn
    await _reset(bench, QueueChanges(rate=Rate(RATE, "second")))
    jobs = int(RATE * (o.rate_seconds + 5))  # more than can start in the stretch
    async with _workers(bench) as workers:
        async with conn.transaction():
            await fill(conn, jobs, JobOptions(queue=QUEUE))
            await queries.doorbell_ring(conn, [QUEUE])
        await asyncio.sleep(o.rate_seconds + 1.0)
        await queues.pause(conn, QUEUE, by=BY)
        workers.check_alive()
    starts = sorted(s for s, _ in await bench_queries.bench_jobs_run_spans(conn, queue=QUEUE))
    started = [s for s in starts if s <= starts[0] + o.rate_seconds]
    return len(started) / (RATE * o.rate_seconds) * 100


async def _most_running(bench: Bench) -> float:
    conn = bench.conn
    await _reset(bench, QueueChanges(max_running=MAX_RUNNING))
    async with _workers(bench) as workers:
        async with conn.transaction():
            await fill(conn, 200, JobOptions(queue=QUEUE), task="sleep", args={"seconds": 0.01})
            await queries.doorbell_ring(conn, [QUEUE])
        await _wait_done(bench, workers, 200)
    spans = await bench_queries.bench_jobs_run_spans(conn, queue=QUEUE)
    edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return float(most)


async def _pause_holds(bench: Bench) -> float:
    conn = bench.conn
    await _reset(bench, QueueChanges())
    async with _workers(bench) as workers:
        async with conn.transaction():
            await fill(conn, 2_000, JobOptions(queue=QUEUE), task="sleep", args={"seconds": 0.05})
            await queries.doorbell_ring(conn, [QUEUE])
        await asyncio.sleep(1.0)
        await queues.pause(conn, QUEUE, by=BY)
        paused_at = await bench_queries.bench_clock(conn)
        await asyncio.sleep(2.0)
        workers.check_alive()
    starts = [s for s, _ in await bench_queries.bench_jobs_run_spans(conn, queue=QUEUE)]
    if len(starts) >= 2_000:
        raise BenchError("every job started before the pause: make them longer")
    return max(0.0, max(starts) - paused_at) * 1000


async def _reset(bench: Bench, changes: QueueChanges) -> None:
    await bench_queries.bench_jobs_truncate(bench.conn)
    cleared = QueueChanges(paused=False, max_running=None, max_running_per_owner=None, rate=None)
    await queues.change(bench.conn, QUEUE, cleared, by=BY)
    await queues.change(bench.conn, QUEUE, changes, by=BY)


async def _wait_done(bench: Bench, workers: Workers, count: int, timeout: float = 120) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(await bench_queries.bench_jobs_run_spans(bench.conn, queue=QUEUE)) < count:
        workers.check_alive()
        if loop.time() > deadline:
            raise BenchError(f"{count} jobs of {QUEUE} not done in {timeout:.0f} s")
        await asyncio.sleep(0.05)


class _workers:
    """Four worker processes on the controls queue, ready before the round starts."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.workers = Workers(bench.dsn, WORKERS, concurrency=bench.opts.concurrency, queues=QUEUE)

    async def __aenter__(self) -> Workers:
        await self.workers.ready(self.bench.conn)
        return self.workers

    async def __aexit__(self, *exc: object) -> None:
        await self.workers.stop()
