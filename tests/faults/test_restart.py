"""PostgreSQL restarted under load (fast, and an immediate stop then start) while jobs keep
being submitted: the same worker processes resume by themselves and no accepted job is lost."""

from __future__ import annotations

import asyncio
import time

import pytest

from jobrunner.cli.embedded import EmbeddedPostgres
from tests.faults.checks import Db, Producer, assert_nothing_lost, assert_repeats_explained
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for


async def _effects(db: Db) -> int:
    try:
        value: int = await db.fetchval("SELECT count(*) FROM fault_effects")
    except Exception:  # the database may be away: that is the point
        return -1
    return value


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart_under_load_loses_nothing(
    mode: str, fault_server: EmbeddedPostgres, db: Db, procs: Processes, figures: Figures
) -> None:
    # A lease longer than the outage: no lease is lost, so a job runs twice only where its
    # own attempt failed (its write committed, the answer was lost with the connection).
    options = WorkerOptions(concurrency=8, lease_seconds=10.0, heartbeat_interval=0.5)
    workers = [procs.start_worker(f"w{i}", options) for i in range(2)]
    producer = Producer(Db(db.dsn))  # its own connection: the test polls on db meanwhile
    producing = asyncio.create_task(producer.run())
    try:
        await wait_for(lambda: _at_least(db, 200), timeout=60, what="jobs flowing")
        stopping = time.monotonic()
        await asyncio.to_thread(fault_server.stop, mode)
        await asyncio.sleep(1.0)  # the fault window: the database is away
        await asyncio.to_thread(fault_server.start)
        started = time.monotonic()
        before = await _wait_for_answer(db)
        answered = time.monotonic()
        await wait_for(lambda: _at_least(db, before + 50), timeout=60, what="work resumes")
        resumed = time.monotonic() - answered
        accepted_at_restart = len(producer.accepted)
        await wait_for(lambda: len(producer.accepted) >= accepted_at_restart + 200, timeout=60,
                       what="submissions resume")  # fmt: skip
    finally:
        producer.stop.set()
        await producing
        await producer.db.close()
    ids = list(producer.accepted)
    await wait_for(lambda: db.all_done(ids), timeout=120, what="every accepted job done")
    done = time.monotonic() - started
    # Even jobs whose submission we never heard back about (the commit landed, the answer
    # did not) must finish.
    await wait_for(lambda: equals(db.unfinished(), 0), timeout=60, what="nothing left unfinished")

    assert all(w.alive() for w in workers), "a worker died instead of reconnecting"
    await assert_nothing_lost(db, ids)
    written = {r["n"] for r in await db.fetch("SELECT n FROM fault_effects")}
    assert set(producer.accepted.values()) <= written
    repeats = await assert_repeats_explained(db)
    figures(
        mode=mode,
        jobs_accepted=len(ids),
        batches_refused_while_down=producer.refused_batches,
        jobs_retried_after_lost_answer=repeats,
        outage_seconds=started - stopping,
        work_resumed_after_start_seconds=resumed,
        all_done_after_start_seconds=done,
    )


async def _at_least(db: Db, count: int) -> bool:
    return await _effects(db) >= count


async def _wait_for_answer(db: Db) -> int:
    seen = -1

    async def answered() -> bool:
        nonlocal seen
        seen = await _effects(db)
        return seen >= 0

    await wait_for(answered, timeout=30, what="database answers again")
    return seen
