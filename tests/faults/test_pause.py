"""A worker frozen (SIGSTOP) past its lease: another finishes the job, and when the frozen one
resumes (SIGCONT) its late result and its side effects are refused."""

from __future__ import annotations

import asyncio
import signal
import time

from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

REFUSED = "outcome refused: the attempt was taken over"


async def test_paused_worker_late_result_and_side_effect_refused(
    db: Db, procs: Processes, figures: Figures
) -> None:
    # The frozen worker does no maintenance, so it cannot be frozen holding the maintenance
    # lock (test_frozen_maintenance_holder_does_not_stop_rescue covers that case).
    paused = procs.start_worker("paused", WorkerOptions(maintenance_interval=3600))
    [job_id] = await db.enqueue_many("fault.fenced_write", [{"token": "t", "hold": 1.5}])
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the handler holds the job")

    paused.send(signal.SIGSTOP)
    stopped_at = time.monotonic()
    rescuer = procs.start_worker("rescuer")
    await wait_for(lambda: db.all_done([job_id]), timeout=30, what="rescuer finishes the job")
    taken_over = time.monotonic() - stopped_at
    before = (await db.jobs([job_id]))[job_id]

    paused.send(signal.SIGCONT)
    await wait_for(lambda: REFUSED in paused.log(), timeout=30, what="late outcome refused")

    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert dict(row) == dict(before)  # the late result changed nothing
    assert row["attempt"] == 2 and f":{rescuer.pid}:" in row["worker_id"]
    assert row["result"] == {"pid": rescuer.pid, "attempt": 2, "accepted": True}
    assert [e["error"] for e in row["errors"]] == ["worker lost: lease expired"]
    tries = await db.fetch("SELECT attempt, pid, accepted FROM fault_tries ORDER BY at")
    # The rescuer wrote its effect; the paused worker tried after it, and was refused.
    assert [tuple(t) for t in tries] == [(2, rescuer.pid, True), (1, paused.pid, False)]
    effects = await db.fetch("SELECT attempt, pid FROM fault_fenced")
    assert [tuple(e) for e in effects] == [(2, rescuer.pid)]
    figures(lease_seconds=1.0, stopped_to_done_elsewhere_seconds=taken_over)


async def test_frozen_maintenance_holder_does_not_stop_rescue(
    db: Db, procs: Processes, figures: Figures
) -> None:
    """A worker frozen while it holds the maintenance lock must not stop every other worker
    from rescuing expired leases (or promoting due jobs) for as long as it stays frozen."""
    frozen = procs.start_worker("frozen", WorkerOptions(maintenance_interval=0.01))
    [job_id] = await db.enqueue_many("fault.sleeps_first_run", [{"token": "m", "seconds": 60.0}])
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the handler holds the job")
    await _freeze_holding_maintenance_lock(db, frozen.send)

    stopped_at = time.monotonic()
    procs.start_worker("rescuer")
    await wait_for(
        lambda: db.all_done([job_id]), timeout=30, what="rescued despite a frozen holder"
    )
    figures(lease_seconds=1.0, frozen_holder_to_done_seconds=time.monotonic() - stopped_at)
    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert row["attempt"] == 2


async def _freeze_holding_maintenance_lock(db: Db, send: object) -> None:
    """SIGSTOP the worker at a moment its backend holds the maintenance advisory lock."""
    assert callable(send)
    for _ in range(500):
        send(signal.SIGSTOP)
        if await _maintenance_lock_held(db):
            return
        send(signal.SIGCONT)
        await asyncio.sleep(0.003)  # let it run a little; the next freeze lands elsewhere
    raise AssertionError("never caught the worker holding the maintenance lock")


async def _maintenance_lock_held(db: Db) -> bool:
    held: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database())"
    )
    return held
