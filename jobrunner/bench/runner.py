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
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from jobrunner.bench import queries as bench_queries
from jobrunner.bench.command import GROUPS, ON_REQUEST
from jobrunner.bench.controls import controls_figures, controls_round
from jobrunner.bench.e2e import e2e_figures, e2e_round, start_figures, start_round
from jobrunner.bench.enqueue import chunk_figures, chunk_round, one_caller_figures, one_caller_round
from jobrunner.bench.fairness import fairness_figures, fairness_round
from jobrunner.bench.graph import graph_figures, graph_round
from jobrunner.bench.horizon import format_windows, horizon_figures, horizon_round
from jobrunner.bench.rounds import (
    BACKLOG_QUEUE,
    CPU_CHECK_STEPS,
    QUEUE,
    QUICK,
    Figure,
    Options,
    enqueue_many_round,
    enqueue_round,
    fill,
    percentile,
    pickup_round,
    process_round,
    scratch_database,
)
from jobrunner.bench.tasks import PROGRESS, PROGRESS_REPORTS
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool, connect, create_pool
from jobrunner.options import JobOptions
from jobrunner.settings import Settings

# ----- the run --------------------------------------------------------------------------------

Round = Callable[[], Awaitable[list[float]]]


class Bench:
    """Runs each group's rounds in the scratch database and collects the figures."""

    def __init__(self, dsn: str, conn: Conn, pool: Pool, opts: Options) -> None:
        self.dsn, self.conn, self.pool, self.opts = dsn, conn, pool, opts
        self.figures: list[Figure] = []
        self.windows: dict[str, list[dict[str, Any]]] = {}

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
        await self.measure(one_caller_figures(), lambda: one_caller_round(self.pool, o))
        await self.measure(
            [Figure(f"enqueue_many ({o.batch} per call)", "jobs/s", 100_000)],
            lambda: _one(enqueue_many_round(self.pool, o)),
        )
        await self.measure(chunk_figures(), lambda: chunk_round(self.pool, o))

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
        # Handlers that report progress (jobrunner.progress): the cost of the reports and
        # of writing them, against the first figure.
        await self.measure(
            [
                Figure(
                    f"process with progress, 1 worker x {o.concurrency} "
                    f"({PROGRESS_REPORTS} reports a job)",
                    "jobs/s",
                )
            ],
            lambda: self._process(processes=1, concurrency=o.concurrency, task=PROGRESS),
        )
        # Jobs with tags and args, which the search indexes hold (the others they leave out).
        await self.measure(
            [Figure(f"process tagged jobs with args, 1 worker x {o.concurrency}", "jobs/s")],
            lambda: self._process(processes=1, concurrency=o.concurrency, tagged=True),
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
        self,
        *,
        processes: int,
        concurrency: int,
        with_rss: bool = False,
        task: str = "noop",
        tagged: bool = False,
    ) -> list[float]:
        await bench_queries.bench_jobs_truncate(self.conn)
        rate, rss = await process_round(
            self.dsn,
            self.conn,
            self.opts,
            processes=processes,
            concurrency=concurrency,
            task=task,
            tagged=tagged,
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

    async def controls(self) -> None:
        await self.measure(controls_figures(self.opts), lambda: controls_round(self))

    async def fairness(self) -> None:
        await self.measure(fairness_figures(self.opts), lambda: fairness_round(self))

    async def graph(self) -> None:
        await self.measure(graph_figures(self.opts), lambda: graph_round(self))

    async def e2e(self) -> None:
        await self.measure(e2e_figures(self.opts), lambda: e2e_round(self))

    async def horizon(self) -> None:
        """One round whatever --rounds says: it runs for minutes, and its figures are the
        worst windows of that round."""
        figures = horizon_figures(self.opts)
        self.figures += figures
        values, self.windows = await horizon_round(self)
        for figure, value in zip(figures, values, strict=True):
            figure.values.append(round(value, 3))

    async def start(self) -> None:
        await self.measure(start_figures(), lambda: start_round(self))

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
            Figure("  baseline: bare ASGI app, one INSERT a request", "jobs/s"),
            Figure("  baseline p99", "ms"),
            Figure("  POST /jobs as share of the baseline", "%"),
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
        await bench_queries.bench_jobs_truncate(self.conn)
        floor, floor_latencies = await http_round(self.dsn, self.opts.http, baseline=True)
        return [
            rate,
            percentile(latencies, 50),
            percentile(latencies, 99),
            floor,
            percentile(floor_latencies, 99),
            rate / floor * 100,
        ]


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
            machine: dict[str, Any] = {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "postgresql": await bench_queries.bench_server_version(conn),
                "platform": platform.platform(),
                "cpu_check_before_s": cpu_check(),
            }
            machine["load_before"] = os.getloadavg()
            for group in GROUPS + ON_REQUEST:
                if group in opts.groups:
                    await getattr(bench, group)()
            machine["cpu_check_after_s"] = cpu_check()
            machine["load_after"] = os.getloadavg()
        finally:
            await pool.close()
            await conn.close()
    return {
        "machine": machine,
        "options": opts.__dict__,
        "figures": [f.as_dict() for f in bench.figures],
        "windows": bench.windows,
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
        f"{m.get('cpu_check_after_s', '-')} s after; load average (1, 5, 15 min) "
        f"{_load(m.get('load_before'))} before, {_load(m.get('load_after'))} after",
        f"{'figure':<46}{'median':>11}{'min':>11}{'max':>11}  {'unit':<7}target",
    ]
    for f in report["figures"]:
        if f["skipped"]:
            lines.append(f"{f['name']:<46}  skipped: {f['skipped']}")
            continue
        unit = f["unit"]
        target = ""
        if f["target"] is not None:
            sign = "<=" if f.get("target_is_max", unit in ("ms", "MB")) else ">="
            target = f"{sign} {_number(f['target'], unit)}  {'met' if f['met'] else 'MISSED'}"
        lines.append(
            f"{f['name']:<46}{_number(f['median'], unit):>11}"
            f"{_number(f['min'], unit):>11}{_number(f['max'], unit):>11}  "
            f"{unit:<7}{target}"
        )
    if report.get("windows"):
        lines.append(format_windows(report["windows"]))
    return "\n".join(lines)


def _load(load: list[float] | None) -> str:
    return " ".join(f"{x:.2f}" for x in load) if load else "-"


def options_from(args: argparse.Namespace) -> Options:
    base = QUICK if args.quick else Options()
    given = {
        k: v for k, v in vars(args).items() if k in Options.__dataclass_fields__ and v is not None
    }
    if args.only:
        unknown = set(args.only.split(",")) - set(GROUPS + ON_REQUEST)
        if unknown:
            raise SystemExit(f"jobrunner bench: unknown --only groups {sorted(unknown)}")
        given["groups"] = tuple(g for g in GROUPS + ON_REQUEST if g in args.only.split(","))
    return replace(base, **given)


def cmd_bench(args: argparse.Namespace) -> int:
    from jobrunner.cli.common import database_url
    from jobrunner.task_modules import load_task_modules

    load_task_modules(["jobrunner.bench.tasks"])
    opts = options_from(args)
    report = asyncio.run(run(database_url(Settings()), opts))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
