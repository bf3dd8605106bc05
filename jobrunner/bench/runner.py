"""`jobrunner bench`: the performance benchmark (see the Performance issue).

It runs against JOBRUNNER_DATABASE_URL (or the embedded server when none is set) in a scratch
database, `jobrunner_bench`, that it creates, migrates and drops. Each figure is the median of
`--rounds` rounds, with min and max. Processing figures are read from the table (first start
to last finish, database time) and come from real `python -m jobrunner worker` processes
logging at warning. Pickup latency is the handler's wall clock minus the enqueuer's wall
clock right after its commit returned: one machine, one clock.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.db import queries
from jobrunner.db.migrate import migrate
from jobrunner.db.pool import Conn, Pool, connect, create_pool
from jobrunner.job_rows import insert_copy, make_rows
from jobrunner.options import JobOptions
from jobrunner.settings import Settings

SCRATCH_DB = "jobrunner_bench"
QUEUE = "default"
BACKLOG_QUEUE = "bench_backlog"
CPU_CHECK_STEPS = 10_000_000
GROUPS = ("enqueue", "process", "latency", "backlog", "memory", "http")


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
)


@dataclass
class Figure:
    name: str
    unit: str
    target: float | None = None  # jobs/s: at least; ms or MB: at most
    values: list[float] = field(default_factory=list)
    skipped: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.unit in ("ms", "MB")

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
            "met": self.met,
            "skipped": self.skipped or None,
        }


# ----- the scratch database and worker processes --------------------------------------------


def _dsn_for(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@asynccontextmanager
async def scratch_database(admin_dsn: str) -> AsyncIterator[str]:
    """Create and migrate `jobrunner_bench` beside `admin_dsn`'s database; drop it after."""
    admin = await connect(admin_dsn, role="bench")
    try:
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
    ) -> None:
        self.count = count
        self.listen = listen
        argv = [sys.executable, "-m", "jobrunner", "worker", "--concurrency", str(concurrency)]
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
            self._check_alive()
            if time.monotonic() > deadline:
                raise BenchError("workers did not start in time")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # let the first (empty) claim pass

    def _check_alive(self) -> None:
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


async def _wait_finished(conn: Conn, workers: Workers, queue: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await bench_queries.bench_jobs_unfinished(conn, queue=queue):
        workers._check_alive()
        if time.monotonic() > deadline:
            raise BenchError(f"jobs of queue {queue!r} still unfinished after {timeout:.0f}s")
        await asyncio.sleep(0.02)


# ----- rounds ---------------------------------------------------------------------------------


async def fill(conn: Conn, count: int, options: JobOptions, chunk: int = 100_000) -> None:
    """`count` no-op jobs, written as enqueue_many writes them (the insert core's COPY form)."""
    for start in range(0, count, chunk):
        rows = make_rows("noop", [{}] * min(chunk, count - start), options)
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


async def enqueue_one_caller_round(pool: Pool, opts: Options) -> float:
    return await enqueue_round(pool, replace(opts, enqueue_callers=1, enqueue=opts.enqueue // 2))


async def enqueue_many_round(pool: Pool, opts: Options) -> float:
    args: list[dict[str, Any]] = [{} for _ in range(opts.batch)]
    calls = max(1, opts.enqueue_many // opts.batch)
    async with pool.acquire() as conn:
        await bench_queries.bench_jobs_truncate(conn)
        started = time.perf_counter()
        for _ in range(calls):
            await client.enqueue_many("noop", args, conn=conn)
        return calls * opts.batch / (time.perf_counter() - started)


async def process_round(
    dsn: str, conn: Conn, opts: Options, *, processes: int, concurrency: int
) -> tuple[float, float]:
    """Fill the queue with no-op jobs, ring once, time them to the last finish.

    Returns (jobs per second, peak worker RSS in MB).
    """
    workers = Workers(dsn, processes, concurrency=concurrency)
    try:
        await workers.ready(conn)
        async with conn.transaction():
            await fill(conn, opts.jobs, JobOptions(queue=QUEUE))
            await queries.doorbell_ring(conn, [QUEUE])
        await _wait_finished(conn, workers, QUEUE, timeout=60 + opts.jobs / 200)
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
        await _wait_finished(conn, workers, QUEUE, timeout=30 + opts.poll_interval * 2)
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


# ----- the run --------------------------------------------------------------------------------

Round = Callable[[], Awaitable[list[float]]]


class Bench:
    """Runs each group's rounds in the scratch database and collects the figures."""

    def __init__(self, dsn: str, conn: Conn, pool: Pool, opts: Options) -> None:
        self.dsn, self.conn, self.pool, self.opts = dsn, conn, pool, opts
        self.figures: list[Figure] = []

    async def measure(self, figures: list[Figure], one_round: Round) -> None:
        """Run the rounds; a round returns one value per figure, in order."""
        self.figures += figures
        for _ in range(self.opts.rounds):
            for figure, value in zip(figures, await one_round(), strict=True):
                figure.values.append(round(value, 3))

    async def enqueue(self) -> None:
        o = self.opts
        await self.measure(
            [Figure(f"enqueue, one per call ({o.enqueue_callers} callers)", "jobs/s", 3000)],
            lambda: _one(enqueue_round(self.pool, o)),
        )
        await self.measure(
            [Figure("enqueue, one per call (1 caller)", "jobs/s")],
            lambda: _one(enqueue_one_caller_round(self.pool, o)),
        )
        await self.measure(
            [Figure(f"enqueue_many ({o.batch} per call)", "jobs/s", 100_000)],
            lambda: _one(enqueue_many_round(self.pool, o)),
        )

    async def process(self) -> None:
        o = self.opts
        await self.measure(
            [Figure(f"process, 1 worker x {o.concurrency}", "jobs/s", 20_000)],
            lambda: self._process(processes=1, concurrency=o.concurrency),
        )
        await self.measure(
            [Figure(f"process, {o.processes} workers x {o.concurrency}", "jobs/s")],
            lambda: self._process(processes=o.processes, concurrency=o.concurrency),
        )

    async def memory(self) -> None:
        await self.measure(
            [
                Figure("process, 1 worker x 200", "jobs/s"),
                Figure("worker peak RSS at concurrency 200", "MB", 150),
            ],
            lambda: self._process(processes=1, concurrency=200, with_rss=True),
        )

    async def _process(
        self, *, processes: int, concurrency: int, with_rss: bool = False
    ) -> list[float]:
        await bench_queries.bench_jobs_truncate(self.conn)
        rate, rss = await process_round(
            self.dsn, self.conn, self.opts, processes=processes, concurrency=concurrency
        )
        return [rate, rss] if with_rss else [rate]

    async def latency(self) -> None:
        poll = self.opts.poll_interval
        for listen, label, p99_target in (
            (True, "LISTEN", 5.0),
            (False, f"polling {poll:g}s", poll * 1000 + 10),
        ):
            figures = [
                Figure(f"pickup p50, {label}", "ms", 2.5 if listen else None),
                Figure(f"pickup p95, {label}", "ms"),
                Figure(f"pickup p99, {label}", "ms", p99_target),
            ]
            await self.measure(figures, functools.partial(self._pickup, listen))

    async def _pickup(self, listen: bool) -> list[float]:
        latencies = await pickup_round(self.dsn, self.conn, self.opts, listen=listen)
        return [percentile(latencies, p) for p in (50, 95, 99)]

    async def backlog(self) -> None:
        """Processing beside `backlog` queued rows (another queue) and as many scheduled, and
        its share of the empty-table figure. Each round is a pair, measured back to back: this
        machine's speed drifts within minutes, and a ratio of runs minutes apart measured the
        drift (60% to 133% between runs of the same code)."""
        o = self.opts
        await self.measure(
            [
                Figure(f"process beside {o.backlog:,} queued + scheduled", "jobs/s"),
                Figure("  empty table, right after", "jobs/s"),
                Figure("  beside as share of empty", "%", 90.0),
            ],
            self._backlog_round,
        )

    async def _backlog_round(self) -> list[float]:
        o = self.opts
        await bench_queries.bench_jobs_truncate(self.conn)
        await fill(self.conn, o.backlog, JobOptions(queue=BACKLOG_QUEUE))
        await fill(self.conn, o.backlog, JobOptions(queue=QUEUE, delay=86400.0))
        await bench_queries.bench_jobs_vacuum(self.conn)
        beside, _ = await process_round(
            self.dsn, self.conn, o, processes=1, concurrency=o.concurrency
        )
        await bench_queries.bench_jobs_truncate(self.conn)
        empty, _ = await process_round(
            self.dsn, self.conn, o, processes=1, concurrency=o.concurrency
        )
        return [beside, empty, beside / empty * 100]

    async def http(self) -> None:
        if importlib.util.find_spec("jobrunner.api.app") is None:
            self.figures.append(
                Figure(
                    "HTTP POST /jobs", "jobs/s", 2000, skipped="jobrunner.api.app is not there yet"
                )
            )
            return
        figures = [
            Figure("HTTP POST /jobs (32 connections)", "jobs/s", 2000),
            Figure("HTTP POST /jobs p50", "ms"),
            Figure("HTTP POST /jobs p99", "ms", 50),
        ]
        await self.measure(figures, self._http)

    async def _http(self) -> list[float]:
        from jobrunner.bench.http import http_round

        await bench_queries.bench_jobs_truncate(self.conn)
        # No worker runs here, and the API refuses users' submissions to a queue no worker
        # serves: a stand-in row in the registry says one serves `default`.
        stand_in = queries.WorkerRow("bench:http", "bench", os.getpid(), ["default"], ["noop"], 1)
        await queries.worker_register(self.conn, stand_in)
        rate, latencies = await http_round(self.dsn, self.opts.http)
        return [rate, percentile(latencies, 50), percentile(latencies, 99)]


async def _one(value: Awaitable[float]) -> list[float]:
    return [await value]


def cpu_check() -> float:
    """Seconds for a fixed pure-Python loop: a small VM's speed moves from hour to hour (the
    same loop took 0.97 s and 1.64 s within one session here), so a report says how fast the
    machine was around its figures."""
    started = time.perf_counter()
    total = 0
    for step in range(CPU_CHECK_STEPS):
        total += step
    return round(time.perf_counter() - started, 2)


async def run(admin_dsn: str, opts: Options) -> dict[str, Any]:
    async with scratch_database(admin_dsn) as dsn:
        conn = await connect(dsn, role="bench")
        pool = await create_pool(
            dsn, role="bench", min_size=1, max_size=max(2, opts.enqueue_callers), stateless=True
        )
        try:
            bench = Bench(dsn, conn, pool, opts)
            machine = {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "postgresql": await bench_queries.bench_server_version(conn),
                "platform": platform.platform(),
                "cpu_check_before_s": cpu_check(),
            }
            for group in GROUPS:
                if group in opts.groups:
                    await getattr(bench, group)()
            machine["cpu_check_after_s"] = cpu_check()
        finally:
            await pool.close()
            await conn.close()
    return {
        "machine": machine,
        "options": opts.__dict__,
        "figures": [f.as_dict() for f in bench.figures],
    }


# ----- output and command line ----------------------------------------------------------------


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if unit == "jobs/s" else f"{value:,.2f}"


def format_table(report: dict[str, Any]) -> str:
    m, o = report["machine"], report["options"]
    lines = [
        f"jobrunner bench: {m['cpus']} CPUs, Python {m['python']}, PostgreSQL "
        f"{m['postgresql']}; median of {o['rounds']} rounds [min, max]",
        f"CPU check ({CPU_CHECK_STEPS:,}-step Python loop): {m['cpu_check_before_s']} s before, "
        f"{m.get('cpu_check_after_s', '-')} s after",
        f"{'figure':<46}{'median':>11}{'min':>11}{'max':>11}  {'unit':<7}target",
    ]
    for f in report["figures"]:
        if f["skipped"]:
            lines.append(f"{f['name']:<46}  skipped: {f['skipped']}")
            continue
        unit = f["unit"]
        target = ""
        if f["target"] is not None:
            sign = "<=" if unit in ("ms", "MB") else ">="
            target = f"{sign} {_number(f['target'], unit)}  {'met' if f['met'] else 'MISSED'}"
        lines.append(
            f"{f['name']:<46}{_number(f['median'], unit):>11}"
            f"{_number(f['min'], unit):>11}{_number(f['max'], unit):>11}  "
            f"{unit:<7}{target}"
        )
    return "\n".join(lines)


def options_from(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else Options()
    given = {
        k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__ and v is not None
    }
    if args.only:
        unknown = set(args.only.split(",")) - set(GROUPS)
        if unknown:
            raise SystemExit(f"jobrunner bench: unknown --only groups {sorted(unknown)}")
        given["groups"] = tuple(g for g in GROUPS if g in args.only.split(","))
    return replace(base, **given)


def cmd_bench(args: argparse.Namespace) -> int:
    from jobrunner.cli.common import database_url
    from jobrunner.task_modules import load_task_modules

    load_task_modules(["jobrunner.bench.tasks"])
    opts = options_from(args)
    report = asyncio.run(run(database_url(Settings()), opts))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="measure enqueue, processing, latency and HTTP throughput")
    p.add_argument("--quick", action="store_true", help="small sizes and one round, for CI")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--only", help=f"comma-separated groups to run: {','.join(GROUPS)}")
    p.add_argument("--rounds", type=int, help="rounds per figure (default 3)")
    p.add_argument("--jobs", type=int, help="jobs per processing round (default 50000)")
    p.add_argument("--concurrency", type=int, help="worker concurrency (default 20)")
    p.add_argument("--processes", type=int, help="worker processes for the multi-process figure")
    p.add_argument("--enqueue", type=int, help="one-at-a-time enqueues per round")
    p.add_argument("--enqueue-callers", type=int, help="concurrent one-at-a-time enqueuers")
    p.add_argument("--enqueue-many", type=int, help="jobs per enqueue_many round")
    p.add_argument("--batch", type=int, help="jobs per enqueue_many call")
    p.add_argument("--trickle", type=int, help="jobs per pickup-latency round")
    p.add_argument("--rate", type=float, help="pickup-latency enqueue rate (jobs/s, default 50)")
    p.add_argument("--poll-interval", type=float, help="worker poll interval for the polling run")
    p.add_argument("--backlog", type=int, help="queued and scheduled rows for the backlog figure")
    p.add_argument("--http", type=int, help="HTTP submits per round")
    p.set_defaults(func=cmd_bench)
