"""kill -9 a worker holding many jobs: a standby worker finishes them once their leases end."""

from __future__ import annotations

import time

from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

JOBS = 40


async def test_kill9_mid_flight_standby_finishes_after_lease(
    db: Db, procs: Processes, figures: Figures
) -> None:
    lease = 1.0
    victim = procs.start_worker("victim", WorkerOptions(concurrency=JOBS, lease_seconds=lease))
    tokens = [f"k{i}" for i in range(JOBS)]
    ids = await db.enqueue_many(
        "fault.sleeps_first_run", [{"token": t, "seconds": 60.0} for t in tokens]
    )
    await wait_for(lambda: equals(db.runs(), JOBS), timeout=30, what="victim runs every job")
    standby = procs.start_worker("standby", WorkerOptions(concurrency=JOBS, lease_seconds=lease))
    await wait_for(lambda: _listeners(db, 2), timeout=30, what="standby listening")

    victim.popen.kill()
    killed_at = time.monotonic()
    await victim.wait_exit(10)
    exited = time.monotonic()
    await wait_for(lambda: equals(db.running_on(victim.id_pattern), 0), timeout=30,
                   what="victim's jobs rescued")  # fmt: skip
    rescued = time.monotonic() - exited
    await wait_for(lambda: db.all_done(ids), timeout=30, what="standby finishes them")
    recovered = time.monotonic() - killed_at

    jobs = await assert_nothing_lost(db, ids)
    for row in jobs.values():
        assert row["attempt"] == 2
        assert row["result"] == {"pid": standby.pid, "attempt": 2}
        [lost] = row["errors"]
        assert lost["error"].startswith("worker lost")
        assert lost["attempt"] == 1 and f":{victim.pid}:" in lost["worker"]
    runs = await db.fetch("SELECT token, pid, attempt FROM fault_runs ORDER BY token, attempt")
    assert len(runs) == 2 * JOBS  # once on the victim, once on the standby: no third run
    figures(jobs=JOBS, lease_seconds=lease, rescued_after_kill_seconds=rescued,
            all_done_after_kill_seconds=recovered)  # fmt: skip


async def _listeners(db: Db, count: int) -> bool:
    return len(await db.backends("jobrunner-listener")) >= count
