"""The `horizon` group of `jobrunner bench`: a busy queue behind a long transaction (the
issue "the queue behind a long transaction"; README "Long transactions").

A producer enqueues `horizon_rate` no-op jobs a second (enqueue_many of rate/20 every 50 ms)
into one worker process (1 x concurrency). After `horizon_warmup` seconds another
connection opens `BEGIN ISOLATION LEVEL REPEATABLE READ` and holds its snapshot for
`horizon_minutes`; the producer goes on for `horizon_after` seconds after it ends. Then the
same again with the hand-written queue of jobrunner.bench.baseline_queue (LISTEN, claim 250
with FOR UPDATE SKIP LOCKED + UPDATE, finish) in place of the worker.

Per `horizon_window` (30 s): arrivals (committed), completions (finished), backlog at its end
(committed less started), pickup p50/p99 (handler start minus its batch's commit, wall
clock), a claim-shaped probe's median time (the head of the queue from the claim index's
start, every PROBE_EVERY seconds) and, when the server preloads pg_stat_statements, the claim
statement's own mean time. Run it on a server with autovacuum on: the figures after the
snapshot ends depend on it.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jobrunner import client
from jobrunner.bench import queries as bench_queries
from jobrunner.bench.e2e import READY
from jobrunner.bench.history import fill_history
from jobrunner.bench.rounds import QUEUE, BenchError, Figure, Options, Workers
from jobrunner.bench.tasks import HORIZON
from jobrunner.db.pool import Conn, connect

if TYPE_CHECKING:  # the runner imports this module
    from jobrunner.bench.runner import Bench

TICK = 0.05  # seconds between the producer's batches
PROBE_EVERY = 5.0  # seconds: behind a held snapshot a probe costs what a claim on main did


@dataclass
class Run:
    """One run's timeline (wall clock) and what was sampled during it."""

    per_batch: int = 0
    window: float = 30.0  # seconds per reported window
    start: float = 0.0
    held_from: float = 0.0
    held_until: float = 0.0
    end: float = 0.0  # the producer stops
    committed: list[float] = field(default_factory=list)  # per batch, after its commit
    probes: list[tuple[float, float]] = field(default_factory=list)  # (at, ms)
    claims: list[tuple[float, int, float]] = field(default_factory=list)  # (at, calls, ms)

    def phase(self, window: int) -> str:
        begin = self.start + window * self.window
        if begin + self.window <= self.held_from:
            return "before"
        if begin >= self.held_until:
            return "after"
        if begin >= self.held_from and begin + self.window <= self.held_until:
            return "held"
        return "edge"  # straddles the snapshot's start or end


def horizon_figures(o: Options) -> list[Figure]:
    rate = f"{o.horizon_rate:,.0f} jobs/s"
    figures = []
    runs = [("ours", f"horizon ({rate}, {o.horizon_minutes:g} min held)")]
    if o.horizon_baseline:
        runs.append(("base", "  baseline: hand-written claim loop"))
    for who, label in runs:
        ours = who == "ours"
        figures += [
            Figure(f"{label}: claim before", "ms"),
            Figure(f"  {who} claim, worst held window", "ms"),
            Figure(f"  {who} claim held / before", "x", 3.0 if ours else None, at_most=True),
            Figure(f"  {who} probe before", "ms"),
            Figure(f"  {who} probe, worst held window", "ms"),
            Figure(f"  {who} pickup p99 before", "ms"),
            Figure(f"  {who} pickup p99, worst held window", "ms", 100.0 if ours else None),
            Figure(f"  {who} completions / arrivals, worst held", "%", 95.0 if ours else None),
            Figure(
                f"  {who} backlog, most at a window's end", "jobs", o.horizon_rate if ours else None
            ),
            Figure(f"  {who} pickup p99, second window after", "ms", 100.0 if ours else None),
        ]
    return figures


async def horizon_round(bench: Bench) -> tuple[list[float], dict[str, list[dict[str, Any]]]]:
    ours = await _run(bench, _worker_consumer)
    if not bench.opts.horizon_baseline:
        return _summary(ours), {"ours": ours}
    base = await _run(bench, _baseline_consumer)
    return _summary(ours) + _summary(base), {"ours": ours, "baseline": base}


Consumer = Callable[["Bench"], Awaitable[Callable[[], Awaitable[None]]]]


async def _worker_consumer(bench: Bench) -> Callable[[], Awaitable[None]]:
    workers = Workers(bench.dsn, 1, concurrency=bench.opts.concurrency)
    await workers.ready(bench.conn)
    return workers.stop


async def _baseline_consumer(bench: Bench) -> Callable[[], Awaitable[None]]:
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jobrunner.bench.baseline_queue", bench.dsn, QUEUE,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert consumer.stdout is not None
    if await asyncio.wait_for(consumer.stdout.readline(), timeout=30) != READY:
        raise BenchError("the baseline queue did not start")

    async def stop() -> None:
        consumer.terminate()
        await consumer.wait()

    return stop


async def _run(bench: Bench, consumer: Consumer) -> list[dict[str, Any]]:
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    await bench_queries.bench_jobs_vacuum(conn)
    if o.history_rows:
        kept, jobs_bytes, history_bytes = await fill_history(conn, o.history_rows)
        print(f"history: {kept:,} archived jobs, {history_bytes / 2**30:.2f} GiB "
              f"(jobs: {jobs_bytes / 2**20:.1f} MiB)", file=sys.stderr)  # fmt: skip
    stats = await bench_queries.bench_horizon_stat_statements(conn)
    baseline = consumer is _baseline_consumer
    stop = await consumer(bench)
    run = Run(per_batch=max(1, round(o.horizon_rate * TICK)), window=o.horizon_window)
    holder = await connect(bench.dsn, role="bench-horizon-holder")
    producer_conn = await connect(bench.dsn, role="bench-horizon-producer")
    try:
        run.start = time.time()
        run.held_from = run.start + o.horizon_warmup
        run.held_until = run.held_from + o.horizon_minutes * 60
        run.end = run.held_until + o.horizon_after
        producing = asyncio.create_task(_produce(producer_conn, run, baseline))
        sampling = asyncio.create_task(_sample(conn, run, stats))
        await asyncio.sleep(max(0.0, run.held_from - time.time()))
        async with holder.transaction(isolation="repeatable_read"):
            await bench_queries.bench_horizon_hold(holder)
            await asyncio.sleep(max(0.0, run.held_until - time.time()))
        await producing
        await sampling
        await _drained(conn)
    finally:
        await stop()
        await holder.close()
        await producer_conn.close()
    return await _windows(conn, run)


async def _produce(conn: Conn, run: Run, baseline: bool) -> None:
    per_tick = run.per_batch
    tick = 0
    while (due := run.start + tick * TICK) < run.end:
        await asyncio.sleep(max(0.0, due - time.time()))
        batch = len(run.committed) + 1  # 1-based: the ordinality the SQL joins on
        if baseline:
            await bench_queries.bench_horizon_enqueue_baseline(
                conn, queue=QUEUE, task=HORIZON, count=per_tick, batch=batch
            )
        else:
            await client.enqueue_many(HORIZON, [{"batch": batch}] * per_tick, conn=conn)
        run.committed.append(time.time())
        tick += 1


async def _sample(conn: Conn, run: Run, stats: bool) -> None:
    next_claims = run.start
    while (now := time.time()) < run.end:
        if stats and now >= next_claims:
            run.claims.append((now, *await bench_queries.bench_horizon_claim_totals(conn)))
            next_claims += run.window
        began = time.perf_counter()
        await bench_queries.bench_horizon_probe(conn, queue=QUEUE)
        run.probes.append((now, (time.perf_counter() - began) * 1000))
        await asyncio.sleep(PROBE_EVERY)
    if stats:
        run.claims.append((time.time(), *await bench_queries.bench_horizon_claim_totals(conn)))


async def _drained(conn: Conn, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while await bench_queries.bench_jobs_unfinished(conn, queue=QUEUE):
        if time.monotonic() > deadline:
            raise BenchError(f"the horizon queue did not drain within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def _windows(conn: Conn, run: Run) -> list[dict[str, Any]]:
    started = await bench_queries.bench_horizon_started(
        conn, committed=run.committed, start=run.start, window=run.window, task=HORIZON
    )
    finished = await bench_queries.bench_horizon_finished(
        conn, start=run.start, window=run.window, task=HORIZON
    )
    count = int((run.end - run.start) // run.window)
    windows, arrived, taken = [], 0, 0
    for w in range(count):
        lo, hi = run.start + w * run.window, run.start + (w + 1) * run.window
        arrivals = sum(1 for at in run.committed if lo <= at < hi) * run.per_batch
        arrived += arrivals
        jobs, p50, p99 = started.get(w, (0, float("nan"), float("nan")))
        taken += jobs
        probes = [ms for at, ms in run.probes if lo <= at < hi]
        windows.append(
            {
                "t": round(w * run.window),
                "phase": run.phase(w),
                "arrivals": arrivals,
                "completions": finished.get(w, 0),
                "backlog": max(0, arrived - taken),
                "pickup_p50_ms": p50,
                "pickup_p99_ms": p99,
                "probe_ms": statistics.median(probes) if probes else float("nan"),
                "claim_ms": _claim_ms(run, lo, hi),
            }
        )
    return windows


def _claim_ms(run: Run, lo: float, hi: float) -> float:
    """The claim statement's mean time between the samples nearest the window's bounds (a
    sample comes late when the probe before it was slow)."""
    if len(run.claims) < 2:
        return float("nan")
    first = min(run.claims, key=lambda c: abs(c[0] - lo))
    last = min(run.claims, key=lambda c: abs(c[0] - hi))
    (_, calls0, ms0), (_, calls1, ms1) = first, last
    return (ms1 - ms0) / (calls1 - calls0) if calls1 > calls0 else float("nan")


def _summary(windows: list[dict[str, Any]]) -> list[float]:
    def of(phase: str, key: str) -> list[float]:
        values = [w[key] for w in windows if w["phase"] == phase]
        return [v for v in values if v == v]  # not NaN

    before_claim = _last(of("before", "claim_ms"))
    held_claim = max(of("held", "claim_ms"), default=float("nan"))
    after = [w for w in windows if w["phase"] == "after"]
    return [
        before_claim,
        held_claim,
        held_claim / before_claim if before_claim else float("nan"),
        _last(of("before", "probe_ms")),
        max(of("held", "probe_ms"), default=float("nan")),
        _last(of("before", "pickup_p99_ms")),
        max(of("held", "pickup_p99_ms"), default=float("nan")),
        min(_kept_up(windows), default=float("nan")),
        max((w["backlog"] for w in windows if w["phase"] in ("held", "edge")), default=0),
        after[1]["pickup_p99_ms"] if len(after) > 1 else float("nan"),
    ]


def _kept_up(windows: list[dict[str, Any]]) -> list[float]:
    """Completions as a share of arrivals, per window with the snapshot held."""
    held = [w for w in windows if w["phase"] == "held" and w["arrivals"]]
    return [w["completions"] / w["arrivals"] * 100 for w in held]


def _last(values: list[float]) -> float:
    return values[-1] if values else float("nan")


def format_windows(windows: dict[str, list[dict[str, Any]]]) -> str:
    lines = []
    for who, rows in windows.items():
        lines.append(f"horizon windows, {who} (t: seconds from the producer's start)")
        lines.append(
            f"{'t':>5} {'phase':<7}{'arrivals':>9}{'complete':>9}{'backlog':>9}"
            f"{'p50 ms':>9}{'p99 ms':>9}{'probe ms':>9}{'claim ms':>9}"
        )
        for w in rows:
            lines.append(
                f"{w['t']:>5} {w['phase']:<7}{w['arrivals']:>9,}{w['completions']:>9,}"
                f"{w['backlog']:>9,}{w['pickup_p50_ms']:>9.1f}{w['pickup_p99_ms']:>9.1f}"
                f"{w['probe_ms']:>9.2f}{w['claim_ms']:>9.2f}"
            )
    return "\n".join(lines)
