"""Load: many jobs through 4 worker processes, each writing one row under a unique
constraint; and pruning cycles that must keep the jobs table near its steady size.

The CI-sized runs are unmarked; the full-sized ones are `slow` (`make soak`).
"""

from __future__ import annotations

import functools
import time

import pytest

from jobrunner import client
from jobrunner.db.pool import Conn
from jobrunner.db.queries import QUERIES
from tests.faults.checks import Db
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

CHUNK = 5000
LOAD_OPTIONS = WorkerOptions(concurrency=32, lease_seconds=30.0, heartbeat_interval=1.0)


async def _enqueue_records(db: Db, start: int, count: int) -> None:
    for offset in range(start, start + count, CHUNK):
        numbers = range(offset, min(offset + CHUNK, start + count))
        await db.enqueue_many("fault.record", [{"n": n} for n in numbers])


async def _succeeded(db: Db, count: int) -> bool:
    done: int = await db.fetchval(
        "SELECT count(*) FROM jobrunner.all_jobs WHERE state = 'succeeded'"
    )
    return done == count


async def _run_load(db: Db, procs: Processes, figures: Figures, jobs: int) -> None:
    await _enqueue_records(db, 0, jobs)
    started = time.monotonic()
    workers = [procs.start_worker(f"load{i}", LOAD_OPTIONS) for i in range(4)]
    await wait_for(lambda: _succeeded(db, jobs), timeout=60 + jobs / 100, what="all jobs succeed")
    took = time.monotonic() - started

    assert all(w.alive() for w in workers)
    rows = await db.fetch("SELECT state::text, count(*) FROM jobrunner.all_jobs GROUP BY 1")
    states = {r[0]: r[1] for r in rows}
    assert states == {"succeeded": jobs}, states  # none lost, none stuck, none failed
    # Each job ran exactly once: one attempt each, one row each, no second write refused.
    assert await db.fetchval("SELECT max(attempt) FROM jobrunner.all_jobs") == 1
    assert await db.fetchval("SELECT count(DISTINCT n) FROM fault_effects") == jobs
    assert await db.fetchval("SELECT count(*) FROM fault_violations") == 0
    per_worker = [r[0] for r in await db.fetch("SELECT count(*) FROM fault_effects GROUP BY pid")]
    figures(jobs=jobs, workers=4, concurrency=LOAD_OPTIONS.concurrency, seconds=took,
            jobs_per_second=jobs / took, min_per_worker=min(per_worker),
            max_per_worker=max(per_worker))  # fmt: skip


async def test_load_ci_sized(db: Db, procs: Processes, figures: Figures) -> None:
    await _run_load(db, procs, figures, 5_000)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_load_100k(db: Db, procs: Processes, figures: Figures) -> None:
    await _run_load(db, procs, figures, 100_000)


# ----- pruning ----------------------------------------------------------------------------

SIZE_SQL = "SELECT pg_total_relation_size('jobrunner.jobs')"


async def _vacuumed(db: Db, since: float) -> bool:
    """Autovacuum has caught up with the jobs table: it finished a pass after `since` (epoch
    seconds) and left no more dead rows than would start another. A pass that ended after
    `since` may have begun before the last rows were pruned and left them (once a claim
    then walked their index entries: 221 buffers against 96), and it runs again only above
    autovacuum_vacuum_threshold dead rows."""
    done: bool = await db.fetchval(
        "SELECT coalesce(extract(epoch FROM last_autovacuum) > $1, false)"
        "       AND n_dead_tup <= current_setting('autovacuum_vacuum_threshold')::int"
        " FROM pg_stat_user_tables WHERE schemaname = 'jobrunner' AND relname = 'jobs'",
        since,
    )
    return done


async def _claim_buffers(conn: Conn) -> int:
    """Buffers one claim touches: dead index entries and bloat left by earlier cycles would
    show as a count that grows from cycle to cycle. Run in a savepoint rolled back, so the
    probe claims nothing."""
    probe = conn.transaction()
    await probe.start()
    try:
        plan = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["job_claim"],
            ["default"], "buffers-probe", 10, 30.0, [""], False,
        )  # fmt: skip
    finally:
        await probe.rollback()
    root = plan[0]["Plan"]
    touched: int = root["Shared Hit Blocks"] + root["Shared Read Blocks"]
    return touched


async def _enqueue_cycle(db: Db, start: int, count: int) -> int:
    """Enqueue a cycle's jobs; measure the claim over them before any worker can see them."""
    conn = await db.conn()
    first = min(CHUNK, count)
    async with conn.transaction():
        await client.enqueue_many("fault.record", [{"n": n} for n in range(start, start + first)],
                                  conn=conn)  # fmt: skip
        touched = await _claim_buffers(conn)
    await _enqueue_records(db, start + first, count - first)
    return touched


async def _prune_cycles(
    db: Db, procs: Processes, figures: Figures, jobs: int, *, baseline: int, slack: int = 0
) -> None:
    """Three cycles of `jobs` jobs with pruning on (retention ~0): after each cycle is done,
    pruned and autovacuumed, the jobs table and its indexes must not creep: the last cycle
    within 1.2x of their size after cycle `baseline` + 1 (plus `slack` bytes), and no cycle
    above 3x. A middle cycle may peak: how many row versions the heap holds at once depends
    on when autovacuum passes during the cycle, and it gives the freed tail back only when it
    gets the table's lock between the workers' statements (seen once in `make soak` on a slow
    spell: 9.7, 22.7, 9.7 MB)."""
    options = WorkerOptions(
        concurrency=32, lease_seconds=30.0, heartbeat_interval=1.0, maintenance_interval=0.2,
        env={"JOBRUNNER_RETENTION_SUCCEEDED": "0.001"},
    )  # fmt: skip
    for i in range(2):
        procs.start_worker(f"prune{i}", options)
    sizes, claim_buffers = [], []
    for cycle in range(3):
        claim_buffers.append(await _enqueue_cycle(db, cycle * jobs, jobs))
        await wait_for(lambda: equals(db.fetchval("SELECT count(*) FROM jobrunner.jobs"), 0),
                       timeout=60 + jobs / 100, what=f"cycle {cycle} done and pruned")  # fmt: skip
        await wait_for(functools.partial(_vacuumed, db, time.time()), timeout=180,
                       what="autovacuum caught up")  # fmt: skip
        sizes.append(await db.fetchval(SIZE_SQL))
    assert await db.fetchval("SELECT count(*) FROM fault_effects") == 3 * jobs
    assert sizes[-1] <= 1.2 * sizes[baseline] + slack, sizes
    assert max(sizes[baseline + 1 :]) <= 3 * sizes[baseline] + slack, sizes
    # The claim's cost does not creep up: over a full queue it touches about as many pages in
    # the third cycle as in the first (slack for where the index's pages happen to split).
    assert claim_buffers[-1] <= 1.5 * claim_buffers[0] + 8, claim_buffers
    figures(jobs_per_cycle=jobs, table_and_index_bytes_per_cycle=sizes,
            growth_vs_first=max(sizes[1:]) / sizes[0],
            growth_vs_second=sizes[2] / sizes[1],
            claim_buffers_per_cycle=claim_buffers)  # fmt: skip


async def test_prune_cycles_ci_sized(db: Db, procs: Processes, figures: Figures) -> None:
    # At this size the first cycle is no baseline: the table never held a whole cycle (it was
    # pruned as it ran), and btree pages freed by one vacuum are reused only after the next,
    # so cycle 2 settles ~1.2-1.35x above cycle 1 and then stays flat. Checked: the plateau.
    # That recycling lag is some pages per index whatever the table's size: on a busy machine
    # it reached ~400 kB here (1.6 -> 2.0 MB), a quarter of a table this small. Hence the
    # slack; the 100k run (`make soak`) holds the bare 1.2x. With the indexes of issues 13-17
    # (13 on jobs) the lag is per index: in full `make test` runs (the other xdist worker
    # busy) cycle 3 came 0.6-1.7 MB above 1.2x cycle 2, alone 0.1-0.3 MB. 2 MiB still fails a
    # table that does not reuse what pruning freed: that grows a whole cycle (~2.7 MB) a time.
    await _prune_cycles(db, procs, figures, 10_000, baseline=1, slack=2 * 1024 * 1024)


@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_prune_cycles_100k(db: Db, procs: Processes, figures: Figures) -> None:
    await _prune_cycles(db, procs, figures, 100_000, baseline=0)
