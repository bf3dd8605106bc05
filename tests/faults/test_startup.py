"""A worker started while PostgreSQL is away waits for it (compose, a reboot, a failover)
instead of dying on the race, and gives up with one clear line once its startup wait is over."""

from __future__ import annotations

import asyncio
import time

from jobrunner.cli.embedded import EmbeddedPostgres
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import wait_for

JOBS = 30
RETRYING = "database unavailable at start; retrying"


async def test_worker_started_while_database_down_waits_then_works(
    fault_server: EmbeddedPostgres, db: Db, procs: Processes, figures: Figures
) -> None:
    await db.close()
    await asyncio.to_thread(fault_server.stop, "fast")
    worker = procs.start_worker("early", WorkerOptions(concurrency=JOBS))
    await wait_for(lambda: RETRYING in worker.log(), timeout=60, what="worker retrying its connect")
    assert worker.alive()

    await asyncio.to_thread(fault_server.start)
    started = time.monotonic()
    ids = await db.enqueue_many("fault.record", [{"n": i} for i in range(JOBS)])
    await wait_for(lambda: db.all_done(ids), timeout=60, what="jobs done by the early worker")
    done = time.monotonic() - started

    assert worker.alive(), "the worker died instead of waiting for the database"
    await assert_nothing_lost(db, ids)
    figures(jobs=JOBS, all_done_after_database_start_seconds=done)


async def test_worker_gives_up_with_one_clear_line_after_startup_wait(
    fault_server: EmbeddedPostgres, procs: Processes
) -> None:
    await asyncio.to_thread(fault_server.stop, "fast")
    worker = procs.start_worker("hopeless", WorkerOptions(env={"JOBRUNNER_STARTUP_WAIT": "0.5"}))
    code = await worker.wait_exit(60)

    assert code == 2
    assert "database unreachable after 0.5s" in worker.log()
    assert "Traceback" not in worker.log()
