"""What the benchmark's groups are made of: its options and figures, the scratch database,
worker processes, and the rounds that fill a queue and time it. runner.py runs the groups."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.command import GROUPS
from jobrunner.bench.tasks import ADD
from jobrunner.db import queries
from jobrunner.db.migrate import migrate
from jobrunner.db.pool import Conn, Pool, connect
from jobrunner.job_rows import insert_copy, insert_each, make_rows
from jobrunner.options import JobOptions

SCRATCH_DB = "jobrunner_bench"
QUEUE = "default"
TAGS = ("bench", "tagged")  # the tagged figure's jobs carry these (and args)
BACKLOG_QUEUE = "bench_backlog"
CPU_CHECK_STEPS = 10_000_000


class BenchError(Exception):
    """A round did not do what it should (jobs lost, a worker died): no figure for it."""


@dataclass(frozen=True)
class Options:
    rounds: int = 3
    jobs: int = 50_000
    concurrency: int = 20
    processes: int = 2
    enqueue: int = 6_000
    enqueue_callers: int = 8
    enqueue_many: int = 200_000
    batch: int = 10_000
    trickle: int = 500
    rate: float = 50.0
    poll_interval: float = 1.0
    backlog: int = 1_000_000
    http: int = 10_000
    owners: int = 10_000
    big_backlog: int = 100_000
    small_jobs: int = 100
    rate_seconds: float = 60.0
    graph_jobs: int = 10_000
    e2e_jobs: int = 200
    e2e_every: float = 0.02
    horizon_rate: float = 2000.0
    horizon_minutes: float = 10.0
    horizon_warmup: float = 60.0
    horizon_after: float = 60.0
    horizon_window: float = 30.0
    horizon_baseline: bool = True
    history_rows: int = 0  # archived jobs the horizon run works beside (bench/history.py)
    groups: tuple[str, ...] = GROUPS


QUICK = Options(
    rounds=1,
    jobs=2_000,
    enqueue=400,
    enqueue_many=5_000,
    batch=1_000,
    trickle=25,
    poll_interval=0.2,
    backlog=10_000,
    http=200,
    owners=500,
    big_backlog=30_000,
    small_jobs=20,
    rate_seconds=3.0,
    graph_jobs=1_000,
    e2e_jobs=25,
)


@dataclass
class Figure:
    name: str
    unit: str
    target: float | None = None  # jobs/s and %: at least; ms, MB and jobs: at most
    values: list[float] = field(default_factory=list)
    skipped: str = ""
    at_most: bool | None = None  # says which way the target points, when the unit does not

    @property
    def lower_is_better(self) -> bool:
        return self.at_most if self.at_most is not None else self.unit in ("ms", "MB", "jobs")

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.median is None:
            return None
        if self.lower_is_better:
            return self.median <= self.target
        return self.median >= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values, default=None),
            "max": max(self.values, default=None),
            "values": self.values,
            "target": self.target,
            "target_is_max": self.lower_is_better,
            "met": self.met,
            "skipped": self.skipped or None,
        }


# ----- the scratch database and worker processes --------------------------------------------


def _dsn_for(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """Create and migrate `jobrunner_bench` beside `admin_dsn`'s database; drop it after.
    A bench already running on the server is waited for (bench_server_lock)."""
    admin = await connect(admin_dsn, role="bench")
    try:
        await bench_queries.bench_server_lock(admin)
        await bench_queries.bench_database_drop(admin)
        await bench_queries.bench_database_create(admin)
        dsn = _dsn_for(admin_dsn, SCRATCH_DB)
        conn = await connect(dsn, role="bench")
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield dsn
    finally:
        await bench_queries.bench_database_drop(admin)
        await admin.close()


class Workers:
    """`python -m jobrunner worker` subprocesses, logging at warning to a scratch file."""

    def __init__(
        self,
        dsn: str,
        count: int,
        *,
        concurrency: int,
        listen: bool = True,
        poll_interval: float | None = None,
        queues: str | None = None,
    ) -> None:
        self.count = count
        self.listen = listen
        argv = [sys.executable, "-m", "jobrunner", "worker", "--concurrency", str(concurrency)]
        if queues is not None:
            argv += ["--queues", queues]
        if not listen:
            argv.append("--no-listen")
        if poll_interval is not None:
            argv += ["--poll-interval", str(poll_interval)]
        env = {
            **os.environ,
            "JOBRUNNER_DATABASE_URL": dsn,
            "JOBRUNNER_LOG_LEVEL": "warning",
            "JOBRUNNER_LOG_FORMAT": "json",
            "JOBRUNNER_TASKS": "jobrunner.bench.tasks",
        }
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self._log)  # noqa: S603 - our own argv
            for _ in range(count)
        ]

    async def ready(self, conn: Conn, timeout: float = 30.0) -> None:
        """Wait until every worker has its pool open (and, with LISTEN, its listener)."""
        role, per_worker = ("jobrunner-listener", 1) if self.listen else ("jobrunner-worker", 2)
        deadline = time.monotonic() + timeout
        while await bench_queries.bench_connections_count(conn, application_name=role) < (
            self.count * per_worker
        ):
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchError("workers did not start in time")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # let the first (empty) claim pass

    def check_alive(self) -> None:
        for proc in self._procs:
            if proc.poll() is not None:
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace")[-2000:]
                raise BenchError(f"a worker exited with {proc.returncode}:\n{tail}")

    def peak_rss_mb(self) -> float:
        """The highest resident set size any worker reached so far (Linux VmHWM)."""
        peak = 0.0
        for proc in self._procs:
            status = Path(f"/proc/{proc.pid}/status")
            for line in status.read_text().splitlines() if status.exists() else []:
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        return peak

    async def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self._log.close()


async def wait_finished(conn: Conn, workers: Workers, queue: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await bench_queries.bench_jobs_unfinished(conn, queue=queue):
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"jobs of queue {queue!r} still unfinished after {timeout:.0f}s")
        await asyncio.sleep(0.02)


# ----- rounds ---------------------------------------------------------------------------------


async def fill(
    conn: Conn,
    count: int,
    options: JobOptions,
    chunk: int = 100_000,
    *,
    task: str = "noop",
    args: dict[str, Any] | None = None,
) -> None:
    """`count` jobs (no-ops unless told), written as enqueue_many writes them (the insert
    core's COPY form)."""
    for start in range(0, count, chunk):
        rows = make_rows(task, [args or {}] * min(chunk, count - start), options)
        await insert_copy(conn, rows)


async def enqueue_round(pool: Pool, opts: Options) -> float:
    """One job per call and per transaction, from `enqueue_callers` concurrent callers, as
    application code calls it: `await client.enqueue(...)` on the configured pool."""
    per_caller = opts.enqueue // opts.enqueue_callers
    await client.configure(pool)

    async def caller() -> None:
        for _ in range(per_caller):
            await client.enqueue("noop")

    async with pool.acquire() as conn:
        await bench_queries.bench_jobs_truncate(conn)
    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(opts.enqueue_callers)))
    return per_caller * opts.enqueue_callers / (time.perf_counter() - started)


async def enqueue_many_round(pool: Pool, opts: Options) -> float:
    args: list[dict[str, Any]] = [{} for _ in range(opts.batch)]
    calls = max(1, opts.enqueue_many // opts.batch)
    async with pool.acquire() as conn:
        await bench_queries.bench_jobs_truncate(conn)
        started = time.perf_counter()
        for _ in range(calls):
            await client.enqueue_many("noop", args, conn=conn)
        return calls * opts.batch / (time.perf_counter() - started)


async def fill_owners(conn: Conn, count: int, owners: int, chunk: int = 5_000) -> None:
    """`count` no-op jobs of `owners` fairness keys, taking turns in the order written (so
    every key has jobs at every age), through the insert core's one-statement form."""
    for start in range(0, count, chunk):
        batch = [
            make_rows("noop", [{}], JobOptions(queue=QUEUE, fairness_key=f"owner-{i % owners}"))
            for i in range(start, min(count, start + chunk))
        ]
        await insert_each(conn, batch, ring=False)


async def process_round(
    dsn: str,
    conn: Conn,
    opts: Options,
    *,
    processes: int,
    concurrency: int,
    owners: int = 1,
    task: str = "noop",
    tagged: bool = False,
) -> tuple[float, float]:
    """Fill the queue with no-op jobs (of one fairness key, or `owners`), ring once, time
    them to the last finish.

    Returns (jobs per second, peak worker RSS in MB).
    """
    workers = Workers(dsn, processes, concurrency=concurrency)
    try:
        await workers.ready(conn)
        async with conn.transaction():
            if tagged:  # what the search indexes hold: tags and args (migration 0019)
                options = JobOptions(queue=QUEUE, tags=TAGS)
                await fill(conn, opts.jobs, options, task=ADD, args={"x": 1})
            elif owners == 1:
                await fill(conn, opts.jobs, JobOptions(queue=QUEUE), task=task)
            else:
                await fill_owners(conn, opts.jobs, owners)
            await queries.doorbell_ring(conn, [QUEUE])
        await wait_finished(conn, workers, QUEUE, timeout=60 + opts.jobs / 200)
        peak = workers.peak_rss_mb()
    finally:
        await workers.stop()
    succeeded, finished, seconds = await bench_queries.bench_jobs_span(conn, queue=QUEUE)
    if succeeded != opts.jobs or finished != opts.jobs:
        raise BenchError(f"{opts.jobs} jobs queued, {succeeded} succeeded, {finished} finished")
    return opts.jobs / seconds, peak


async def pickup_round(dsn: str, conn: Conn, opts: Options, *, listen: bool) -> list[float]:
    """Latencies (ms) from an enqueue's commit to its handler's start, at `rate` jobs/s."""
    from jobrunner.bench.tasks import PICKUP

    await bench_queries.bench_jobs_truncate(conn)
    workers = Workers(
        dsn, 1, concurrency=opts.concurrency, listen=listen, poll_interval=opts.poll_interval
    )
    committed: dict[UUID, float] = {}
    try:
        await workers.ready(conn)
        start = time.monotonic()
        for i in range(opts.trickle):
            await asyncio.sleep(max(0.0, start + i / opts.rate - time.monotonic()))
            job = await client.enqueue(PICKUP, conn=conn)
            committed[job.id] = time.time()
        await wait_finished(conn, workers, QUEUE, timeout=30 + opts.poll_interval * 2)
    finally:
        await workers.stop()
    started = await bench_queries.bench_jobs_results(conn, task=PICKUP)
    if len(started) != len(committed):
        raise BenchError(f"{len(committed)} pickup jobs enqueued, {len(started)} succeeded")
    return [(started[job_id] - at) * 1000 for job_id, at in committed.items()]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
