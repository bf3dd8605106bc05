"""A poison job that kills its worker every time (os.kill(getpid(), 9)): it ends `failed` after
its attempts with "worker lost" recorded each time, and other jobs keep flowing meanwhile."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from jobrunner.models import JobState
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, Supervisor, WorkerOptions
from tests.support.waiting import wait_for


async def test_poison_job_fails_after_its_attempts_and_others_flow(
    db: Db, procs: Processes, figures: Figures
) -> None:
    supervisor = Supervisor(procs, 2, WorkerOptions(concurrency=4, lease_seconds=1.0))
    supervising = asyncio.create_task(supervisor.run())
    try:
        started = time.monotonic()
        [poison] = await db.enqueue_many("test.suicide", [{}])  # max_attempts=3
        others: list[UUID] = []

        async def poison_failed() -> bool:
            if await db.all_done([poison]):
                return True
            others.extend(await db.enqueue_many("fault.sleep", [{"seconds": 0.05}] * 5))
            return False  # more work comes every poll, the whole time the poison lives

        await wait_for(poison_failed, timeout=120, what="the poison job ends", interval=0.2)
        failed_after = time.monotonic() - started
        await wait_for(lambda: db.all_done(others), timeout=60, what="other jobs finish")
    finally:
        supervisor.stop.set()
        await supervising

    row = (await assert_nothing_lost(db, [poison], JobState.FAILED))[poison]
    assert row["attempt"] == 3
    assert [e["error"] for e in row["errors"]] == ["worker lost: lease expired"] * 3
    assert supervisor.restarts == 3  # one death per attempt, none more
    # Jobs that died with a worker were retried; none were lost and none failed.
    await assert_nothing_lost(db, others)
    figures(poison_failed_after_seconds=failed_after, worker_restarts=supervisor.restarts,
            other_jobs_done=len(others))  # fmt: skip
