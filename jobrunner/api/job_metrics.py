"""The database's half of /metrics: gauges read from PostgreSQL, cached, as a collector.

    jobrunner_queue_depth{queue,state}            jobs per queue and state (each state
                                                  counted up to COUNT_CAP, as /stats does)
    jobrunner_queue_oldest_queued_seconds{queue}  the oldest queued job's wait since run_at
    jobrunner_oldest_snapshot_seconds             the oldest snapshot on the server
                                                  (jobrunner.horizon: it slows every claim)
    jobrunner_archive_lag_seconds                 since the oldest finished job still in
                                                  jobrunner.jobs finished (the archiver moves
                                                  it JOBRUNNER_ARCHIVE_AFTER after; doctor)

The counters and histograms of jobs (jobrunner.metrics) are counted where things happen, in
the workers and the insert core; these are the figures only the database knows.

Scrapes are cheap for the database whatever their number: the figures are read at most once
per `ttl` seconds, and scrapes that arrive while a read runs wait for that one (single
flight) instead of starting their own. Queue names are chosen by users, so they are bounded
as labels: the `max_queues` busiest queues (by jobs counted) keep their name and the rest
are summed under `queue="other"` (their oldest job is not looked for).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobrunner import client, horizon
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.models import QueueCounts

COUNT_CAP = 100_000
THROUGHPUT_MINUTES = 15  # /stats
OLDEST_MAX_LANES = 1000  # lanes (priority, owner) walked per queue for its oldest job
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


@dataclass(frozen=True, slots=True)
class Figures:
    """One read of the database, labels already bounded."""

    depth: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, state) -> jobs
    oldest: dict[str, float] = field(default_factory=dict)  # queue -> seconds
    snapshot_seconds: float = 0.0
    archive_lag_seconds: float = 0.0  # 0 when no finished job waits in jobs


class JobMetrics(Collector):
    """`refresh` (async: reads the database, or the cache) before each exposition; `collect`
    (what prometheus_client calls) gives the figures of the last refresh."""

    def __init__(self, pool: Pool, *, ttl: float, max_queues: int, snapshot_warn: float) -> None:
        self.pool, self.max_queues, self.snapshot_warn = pool, max_queues, snapshot_warn
        self.cached: SingleFlight[Figures] = SingleFlight(self._compute, ttl)
        self._figures = Figures()

    async def refresh(self) -> None:
        self._figures = await self.cached.get()

    async def _compute(self) -> Figures:
        async with self.pool.acquire() as conn:
            return await read_figures(conn, self.max_queues, self.snapshot_warn)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self._figures
        depth = GaugeMetricFamily(
            "jobrunner_queue_depth",
            f"Jobs by queue and state (each state counted up to {COUNT_CAP}).",
            labels=("queue", "state"),
        )
        for (queue, state), jobs in sorted(figures.depth.items()):
            depth.add_metric((queue, state), jobs)
        oldest = GaugeMetricFamily(
            "jobrunner_queue_oldest_queued_seconds",
            "Seconds the oldest queued job of a queue has waited since its run_at.",
            labels=("queue",),
        )
        for queue, seconds in sorted(figures.oldest.items()):
            oldest.add_metric((queue,), seconds)
        snapshot = GaugeMetricFamily(
            "jobrunner_oldest_snapshot_seconds",
            "Seconds the oldest snapshot on the server has been held (it holds back the "
            "cleanup of dead rows and slows every claim; README 'Long transactions').",
            value=figures.snapshot_seconds,
        )
        archive = GaugeMetricFamily(
            "jobrunner_archive_lag_seconds",
            "Seconds since the oldest finished job still in jobrunner.jobs finished (parents "
            "kept for an unfinished child aside). The archiver moves jobs "
            "JOBRUNNER_ARCHIVE_AFTER after they finish: well past that, it is behind.",
            value=figures.archive_lag_seconds,
        )
        yield from (depth, oldest, snapshot, archive)


async def read_figures(conn: Conn, max_queues: int, snapshot_warn: float) -> Figures:
    counts = await client.count_jobs(conn=conn, cap=COUNT_CAP)
    busiest = sorted(counts, key=lambda c: (-sum(c.states.values()), c.queue))[:max_queues]
    kept = {c.queue for c in busiest}
    waiting = [c.queue for c in busiest if c.states.get("queued")]
    oldest = await queries.job_queue_oldest_queued(conn, waiting, max_lanes=OLDEST_MAX_LANES)
    held = await horizon.read(conn, warn_after=snapshot_warn)
    # one probe at the low end of jobs_finished_idx: cheap beside the counts above
    archive_lag = await queries.job_archive_oldest(conn) or 0.0
    return Figures(_depth(counts, kept), oldest, held.held_seconds, archive_lag)


def _depth(counts: list[QueueCounts], kept: set[str]) -> dict[tuple[str, str], int]:
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for c in counts:
        queue = c.queue if c.queue in kept else OTHER
        for state, n in c.states.items():
            totals[(queue, state)] += n
    return dict(totals)
