"""Queue controls (jobrunner.queues) hold across worker processes: a global concurrency limit,
a per-owner limit, a start-rate limit, and pause. Each handler records its start and finish
in the database's clock (fault.span), and the tests read what ran at once from those."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

from tests.faults.checks import Db
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import wait_for

FOUR_WORKERS = WorkerOptions(concurrency=5, queues="limited,other")


async def _set_controls(db: Db, queue: str, **controls: Any) -> None:
    columns = ", ".join(controls)
    values = ", ".join(f"${i}" for i in range(2, len(controls) + 2))
    updates = ", ".join(f"{c} = excluded.{c}" for c in controls)
    await db.execute(
        f"INSERT INTO jobrunner.queues (name, {columns}) VALUES ($1, {values})"
        f" ON CONFLICT (name) DO UPDATE SET {updates}",
        queue,
        *controls.values(),
    )


async def _spans(db: Db) -> list[asyncpg.Record]:
    return await db.fetch("SELECT n, key, started, finished FROM fault_spans ORDER BY started")


def _most_at_once(spans: list[asyncpg.Record]) -> int:
    """The most spans open at one moment (a finish at the same instant as a start counts
    as before it)."""
    edges = sorted(
        [(s["started"], 1) for s in spans] + [(s["finished"], -1) for s in spans],
        key=lambda edge: (edge[0], edge[1]),
    )
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


async def _finished(db: Db, count: int) -> bool:
    done: int = await db.fetchval("SELECT count(*) FROM fault_spans WHERE finished IS NOT NULL")
    return done >= count


async def test_a_global_concurrency_limit_holds_across_four_workers(
    db: Db, procs: Processes, figures: Figures
) -> None:
    await _set_controls(db, "limited", max_running=3)
    for name in ("a", "b", "c", "d"):
        procs.start_worker(name, FOUR_WORKERS)
    args = [{"n": n, "seconds": 0.05} for n in range(60)]
    await db.enqueue_many("fault.span", args, queue="limited")
    await wait_for(lambda: _finished(db, 60), timeout=60, what="60 jobs under the limit")

    spans = await _spans(db)
    pids = await db.fetchval("SELECT count(DISTINCT pid) FROM fault_spans")
    most = _most_at_once(spans)
    assert most <= 3, f"{most} ran at once under max_running=3"
    assert most >= 2, "the limit should let more than one run"  # 20 free slots were there
    assert pids >= 2, "the work should spread over the workers"
    figures(max_running=3, most_at_once=most, workers_used=pids)


async def test_a_per_owner_limit_holds_while_other_owners_run(
    db: Db, procs: Processes, figures: Figures
) -> None:
    await _set_controls(db, "limited", max_running_per_owner=2)
    for name in ("a", "b", "c", "d"):
        procs.start_worker(name, FOUR_WORKERS)
    for key in ("alice", "bob", "carol"):
        args = [{"n": n, "key": key, "seconds": 0.05} for n in range(20)]
        await db.enqueue_many("fault.span", args, queue="limited", fairness_key=key)
    await wait_for(lambda: _finished(db, 60), timeout=60, what="60 jobs of three owners")

    spans = await _spans(db)
    per_key = {k: _most_at_once([s for s in spans if s["key"] == k]) for k in ("alice", "bob")}
    assert max(per_key.values()) <= 2, per_key
    assert _most_at_once(spans) >= 4, "owners under their limit should run side by side"
    figures(max_running_per_owner=2, most_at_once_per_owner=per_key)


async def test_a_start_rate_limit_holds_across_workers(
    db: Db, procs: Processes, figures: Figures
) -> None:
    """10 starts a second, so a burst of at most 10 (one second's worth) and then the rate:
    in any stretch of t seconds, at most 10 + 10 t jobs start."""
    await _set_controls(db, "limited", rate_limit=10, rate_period=timedelta(seconds=1))
    for name in ("a", "b", "c", "d"):
        procs.start_worker(name, FOUR_WORKERS)
    await db.enqueue_many("fault.span", [{"n": n} for n in range(40)], queue="limited")
    await wait_for(lambda: _finished(db, 40), timeout=60, what="40 rate-limited jobs")

    # A start is the claim's: started_at is the claim statement's time, the clock the rate
    # bucket is refilled by. (The handlers' own clocks ran late under load, a handler
    # starting a while after its claim, and once let two starts seem to share a second.)
    rows = await db.fetch(
        "SELECT extract(epoch FROM started_at)::float8 AS started FROM jobrunner.all_jobs"
        " WHERE queue = 'limited' ORDER BY started_at"
    )
    starts = [row["started"] for row in rows]
    assert len(starts) == 40
    worst = max(
        (j - i + 1) - (10 + 10 * (starts[j] - starts[i]))
        for i in range(len(starts))
        for j in range(i, len(starts))
    )
    assert worst <= 0.001, f"{worst:.1f} more starts than the rate allows in some stretch"
    figures(rate_per_second=10, seconds_for_40=starts[-1] - starts[0])


async def test_pause_holds_within_a_second_and_resume_releases(
    db: Db, procs: Processes, figures: Figures
) -> None:
    for name in ("a", "b"):
        procs.start_worker(name, FOUR_WORKERS)
    await db.enqueue_many(
        "fault.span", [{"n": n, "seconds": 0.02} for n in range(400)], queue="limited"
    )
    await wait_for(lambda: _finished(db, 20), timeout=60, what="the queue flowing")

    paused_at: float = await db.fetchval("SELECT extract(epoch FROM clock_timestamp())")
    await _set_controls(db, "limited", paused_at=None)  # a row first, then the pause itself
    await db.execute("UPDATE jobrunner.queues SET paused_at = now() WHERE name = 'limited'")
    # A job in the other queue, due after the second: once it has run, both workers have
    # claimed again since the pause could last have been missed.
    [marker] = await db.enqueue_many("fault.pid", [{}], queue="other", delay=1.2)
    await wait_for(lambda: db.all_done([marker]), timeout=30, what="the marker job")

    late = await db.fetchval("SELECT count(*) FROM fault_spans WHERE started > $1 + 1.0", paused_at)
    waiting = await db.fetchval(
        "SELECT count(*) FROM jobrunner.jobs WHERE queue = 'limited' AND state = 'queued'"
    )
    assert late == 0, f"{late} jobs started more than a second after the pause"
    assert waiting > 0, "the pause came too late to hold anything back; make the jobs longer"

    await db.execute("UPDATE jobrunner.queues SET paused_at = NULL WHERE name = 'limited'")
    await db.execute("SELECT pg_notify('jobrunner_jobs', 'limited')")  # as resume does
    await wait_for(lambda: _finished(db, 400), timeout=60, what="the rest after resume")
    figures(held_back_by_pause=waiting)
