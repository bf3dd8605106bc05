"""The database half of /metrics: jobs by queue and state, recent outcomes and latencies.

Scrapes are cheap for the database whatever their number: the lines are computed at most
once per `ttl` seconds, and scrapes that arrive while a computation runs wait for that one
(single flight) instead of starting their own. Queue names are chosen by users, so they are
bounded as labels: the `max_queues` busiest queues (by jobs counted) keep their name and
the rest are summed under `queue="other"`.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from jobrunner import client
from jobrunner.api.metrics import JOB_BUCKETS, Histogram, escape
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.models import QueueCounts, ThroughputMinute

COUNT_CAP = 100_000
THROUGHPUT_MINUTES = 15
LATENCY_WINDOW_SECONDS = 300.0
LATENCY_SAMPLE = 2000
OTHER = "other"


T = TypeVar("T")


class SingleFlight(Generic[T]):
    """A value computed at most once per `ttl` seconds, by one caller at a time."""

    def __init__(self, compute: Callable[[], Awaitable[T]], ttl: float) -> None:
        self.compute, self.ttl = compute, ttl
        self._value: T | None = None
        self._at = 0.0
        self._running: asyncio.Future[T] | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self.ttl:
            return self._value
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh())
        # shield: a scraper that hangs up must not cancel the computation the others await
        return await asyncio.shield(self._running)

    async def _refresh(self) -> T:
        try:
            value = await self.compute()
            self._value, self._at = value, time.monotonic()
            return value
        finally:
            self._running = None


class JobMetrics:
    def __init__(self, pool: Pool, *, ttl: float, max_queues: int) -> None:
        self.pool, self.max_queues = pool, max_queues
        self.cached: SingleFlight[list[str]] = SingleFlight(self._compute, ttl)

    async def lines(self) -> list[str]:
        return await self.cached.get()

    async def _compute(self) -> list[str]:
        async with self.pool.acquire() as conn:
            return await job_lines(conn, self.max_queues)


async def job_lines(conn: Conn, max_queues: int) -> list[str]:
    counts = await client.count_jobs(conn=conn, cap=COUNT_CAP)
    rows = await client.throughput(conn=conn, minutes=THROUGHPUT_MINUTES)
    latencies = await queries.job_latency_recent(
        conn, seconds=LATENCY_WINDOW_SECONDS, limit=LATENCY_SAMPLE
    )
    busiest = sorted(counts, key=lambda c: (-sum(c.states.values()), c.queue))[:max_queues]
    kept = {c.queue for c in busiest}

    def label(queue: str) -> str:
        return escape(queue if queue in kept else OTHER)

    counted, outcomes = _count_lines(counts, label), _outcome_lines(rows, label)
    return [*counted, *outcomes, *_latency_lines(latencies, label)]


def _count_lines(counts: list[QueueCounts], label: Callable[[str], str]) -> list[str]:
    lines = [
        f"# HELP jobrunner_jobs Jobs by queue and state (each state counted up to {COUNT_CAP}).",
        "# TYPE jobrunner_jobs gauge",
    ]
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for c in counts:
        for state, n in c.states.items():
            totals[(label(c.queue), state)] += n
    lines += [
        f'jobrunner_jobs{{queue="{q}",state="{s}"}} {n}' for (q, s), n in sorted(totals.items())
    ]
    return lines


def _outcome_lines(rows: list[ThroughputMinute], label: Callable[[str], str]) -> list[str]:
    name = "jobrunner_job_outcomes_recent"
    lines = [
        f"# HELP {name} Attempt outcomes over the last {THROUGHPUT_MINUTES} minutes.",
        f"# TYPE {name} gauge",
    ]
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        queue = label(row.queue)
        totals[(queue, "succeeded")] += row.succeeded
        totals[(queue, "failed")] += row.failed
        totals[(queue, "retried")] += row.retried
        totals[(queue, "cancelled")] += row.cancelled
    lines += [f'{name}{{queue="{q}",outcome="{o}"}} {n}' for (q, o), n in sorted(totals.items())]
    return lines


def _latency_lines(
    samples: list[tuple[str, float, float]], label: Callable[[str], str]
) -> list[str]:
    lines: list[str] = []
    for kind, index in (("pickup", 1), ("run", 2)):
        name = f"jobrunner_job_{kind}_seconds"
        lines += [
            f"# HELP {name} {kind} latency of jobs finished in the last "
            f"{LATENCY_WINDOW_SECONDS:g}s (up to {LATENCY_SAMPLE} most recent).",
            f"# TYPE {name} histogram",
        ]
        by_queue: dict[str, Histogram] = defaultdict(lambda: Histogram(JOB_BUCKETS))
        for sample in samples:
            by_queue[label(sample[0])].observe(max(0.0, float(sample[index])))
        for queue, histogram in sorted(by_queue.items()):
            lines += histogram.lines(name, f'queue="{queue}"')
    return lines
