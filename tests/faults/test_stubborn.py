"""Handlers that misbehave: one that swallows cancellation, one that blocks the event loop.

What happens, asserted so a change in it is noticed:
- a handler that swallows cancellation cannot be stopped by a cancel request, nor by its
  timeout within the grace (JOBRUNNER_TIMEOUT_GRACE): it runs until it returns, and what it
  returns is recorded (past the grace it is abandoned: tests/engine/test_attempt_limits.py);
- on SIGTERM such a handler's job, or a sync handler's (threads cannot be cancelled), is
  still handed back to the queue after the drain, and the worker exits without waiting for it;
- the heartbeat runs on its own thread, so a handler that blocks the loop keeps its lease,
  longer than a lease too (with a warning naming the task): no second worker runs it. Only
  past the attempt's limit (its timeout plus grace, or JOBRUNNER_BLOCKED_LOOP_RENEW_CAP) does
  renewal stop, and the job is rescued by another worker as if this one had died; the
  blocked worker's late result is refused;
- SIGTERM while the loop is blocked is handled as soon as the loop runs again: drain, exit 0.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from jobrunner import client
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

REFUSED = "outcome refused: the attempt was taken over"
BLOCKED = "worker event loop blocked for longer than a lease; still renewing leases"
GAVE_UP = "event loop blocked past the attempt's limit; no longer renewing its lease"


async def test_handler_swallowing_cancellation_outlives_its_timeout(
    db: Db, procs: Processes
) -> None:
    procs.start_worker("w")
    [job_id] = await db.enqueue_many("fault.ignore_cancel_timeout", [{"seconds": 0.6}])
    await wait_for(lambda: db.all_done([job_id]), timeout=30, what="job ends")
    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    # The 0.2 s timeout fired (one cancellation swallowed) and the handler ran on regardless.
    assert row["attempt"] == 1 and row["result"]["swallowed"] == 1
    assert row["errors"] == []


async def test_handler_swallowing_cancellation_ignores_a_cancel_request(
    db: Db, procs: Processes
) -> None:
    procs.start_worker("w")
    [job_id] = await db.enqueue_many("fault.ignore_cancel", [{"seconds": 1.0}])
    await wait_for(lambda: equals(db.count([job_id], "running"), 1), timeout=30, what="running")
    await client.cancel_job(job_id, conn=await db.conn())
    await wait_for(lambda: db.all_done([job_id]), timeout=30, what="job ends")
    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert row["result"]["swallowed"] >= 1 and row["cancel_requested_at"] is not None


async def test_sigterm_with_a_handler_swallowing_cancellation_releases_and_exits(
    db: Db, procs: Processes, figures: Figures
) -> None:
    options = WorkerOptions(lease_seconds=30.0, drain_timeout=0.3)
    stubborn = procs.start_worker("stubborn", options)
    [job_id] = await db.enqueue_many("fault.ignore_cancel", [{"seconds": 60.0}])
    await wait_for(
        lambda: equals(db.running_on(stubborn.id_pattern), 1), timeout=30, what="running"
    )

    stubborn.send(signal.SIGTERM)
    signalled = time.monotonic()
    await wait_for(lambda: equals(db.count([job_id], "queued"), 1), timeout=15, what="released")
    assert await stubborn.wait_exit(6) == 0  # drain 0.3 s + 1 s grace for stopping handlers
    figures(sigterm_to_exit_seconds=time.monotonic() - signalled)


async def test_sigterm_with_a_sync_handler_running_releases_and_exits(
    db: Db, procs: Processes
) -> None:
    worker = procs.start_worker("sync", WorkerOptions(lease_seconds=30.0, drain_timeout=0.3))
    [job_id] = await db.enqueue_many("fault.sync_sleep", [{"seconds": 60.0}])
    await wait_for(lambda: equals(db.running_on(worker.id_pattern), 1), timeout=30, what="running")

    worker.send(signal.SIGTERM)
    await wait_for(lambda: equals(db.count([job_id], "queued"), 1), timeout=15, what="released")
    assert await worker.wait_exit(6) == 0  # its thread is still sleeping: not waited for
    assert "handlers that ignore cancellation" in worker.log()


async def test_loop_blocked_past_the_lease_keeps_the_job_on_its_worker(
    db: Db, procs: Processes
) -> None:
    options = WorkerOptions(lease_seconds=2.0)
    busy = procs.start_worker("busy", options)
    [job_id] = await db.enqueue_many("fault.blocks_first_run", [{"token": "b", "seconds": 6.0}])
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the loop is blocked")
    other = procs.start_worker("other", options)
    await wait_for(lambda: db.all_done([job_id]), timeout=60, what="job ends")

    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert await db.runs() == 1  # never handed to the other worker while it ran here
    assert row["state"] == "succeeded" and row["errors"] == []
    assert row["result"] == {"pid": busy.pid, "attempt": 1}
    warning = next(line for line in busy.log().splitlines() if BLOCKED in line)
    assert "fault.blocks_first_run" in warning and "def" in warning
    assert GAVE_UP not in busy.log() and BLOCKED not in other.log()


async def test_loop_blocked_past_the_attempts_limit_is_rescued_elsewhere(
    db: Db, procs: Processes, figures: Figures, tmp_path: Path
) -> None:
    flag = tmp_path / "unblock"
    capped = WorkerOptions(lease_seconds=1.0, env={"JOBRUNNER_BLOCKED_LOOP_RENEW_CAP": "1"})
    blocked = procs.start_worker("blocked", capped)
    [job_id] = await db.enqueue_many(
        "fault.blocks_first_run_until", [{"token": "b", "flag": str(flag), "limit": 120.0}]
    )
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the loop is blocked")
    blocked_at = time.monotonic()
    rescuer = procs.start_worker("rescuer", WorkerOptions(lease_seconds=1.0))
    await wait_for(lambda: db.all_done([job_id]), timeout=60, what="rescued and done elsewhere")
    rescued = time.monotonic() - blocked_at
    flag.touch()  # the blocked loop runs again, only now: its result comes late for sure
    await wait_for(lambda: REFUSED in blocked.log(), timeout=30, what="the late result is refused")

    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert row["attempt"] == 2 and row["result"] == {"pid": rescuer.pid, "attempt": 2}
    assert [e["error"] for e in row["errors"]] == ["worker lost: lease expired"]
    assert BLOCKED in blocked.log() and GAVE_UP in blocked.log()
    figures(lease_seconds=1.0, renew_cap=1.0, done_elsewhere_after_block_seconds=rescued)


async def test_loop_blocked_shorter_than_the_lease_keeps_it(db: Db, procs: Processes) -> None:
    # A 2 s lease leaves a slow machine room between a 0.6 s block and the lease's end.
    worker = procs.start_worker("busy", WorkerOptions(lease_seconds=2.0))
    procs.start_worker("other", WorkerOptions(lease_seconds=2.0))
    tokens = [f"q{i}" for i in range(4)]
    # Four back-to-back blocks of 0.6 s: 2.4 s blocked in all, each shorter than the lease.
    ids = await db.enqueue_many(
        "fault.blocks_first_run", [{"token": t, "seconds": 0.6} for t in tokens]
    )
    await wait_for(lambda: db.all_done(ids), timeout=30, what="jobs done")
    jobs = await assert_nothing_lost(db, ids)
    assert all(r["attempt"] == 1 and r["errors"] == [] for r in jobs.values())
    assert BLOCKED not in worker.log()


@pytest.mark.parametrize("block", [1.5])
async def test_sigterm_while_the_loop_is_blocked_drains_and_exits_0(
    db: Db, procs: Processes, block: float
) -> None:
    worker = procs.start_worker("w", WorkerOptions(lease_seconds=10.0, drain_timeout=10.0))
    [job_id] = await db.enqueue_many("fault.blocks_first_run", [{"token": "t", "seconds": block}])
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the loop is blocked")
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(30) == 0
    row = (await assert_nothing_lost(db, [job_id]))[job_id]
    assert row["attempt"] == 1 and f":{worker.pid}:" in row["worker_id"]
