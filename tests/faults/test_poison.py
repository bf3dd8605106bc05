"""A poison job that kills its worker every time (os.kill(getpid(), 9)): it ends `failed` after
its attempts with "worker lost" recorded each time, and other jobs keep flowing meanwhile."""

from __future__ import annotations

import asyncio
import time
from uuid import UUID

from jobrunner.models import JobState
from tests.faults.checks import Db, assert_nothing_lost
from tests.faults.conftest import Figures
from tests.support.processes import Processes, Supervisor, WorkerOptions, wait_until


async def test_poison_job_fails_after_its_attempts_and_others_flow(
    db: Db, procs: Processes, figures: Figures
) -> None:
    supervisor = Supervisor(procs, 2, WorkerOptions(concurrency=4, lease_seconds=1.0))
    supervising = asyncio.create_task(supervisor.run())
    try:
        started = time.monotonic()
        [poison] = await db.enqueue_many("test.suicide", [{}])  # max_attempts=3
        others: list[UUID] = []
        while not await db.all_done([poison]):  # keep other work coming the whole time
            others += await db.enqueue_many("fault.sleep", [{"seconds": 0.05}] * 5)
            await asyncio.sleep(0.2)
        failed_after = time.monotonic() - started
        await wait_until(lambda: db.all_done(others), 60, what="other jobs finish")
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
