"""SIGTERM: short jobs finish and the worker exits 0; long ones are handed back to the queue at
once (not after their lease) for another worker; a second SIGTERM skips the drain."""

from __future__ import annotations

import asyncio
import signal
import time

from jobrunner.models import JobState
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

JOBS = 10


async def test_sigterm_drains_short_jobs_and_exits_0(
    db: Db, procs: Processes, figures: Figures
) -> None:
    worker = procs.start_worker("draining", WorkerOptions(concurrency=JOBS, drain_timeout=10))
    tokens = [f"s{i}" for i in range(JOBS)]
    ids = await db.enqueue_many(
        "fault.sleeps_first_run", [{"token": t, "seconds": 0.5} for t in tokens]
    )
    await wait_for(lambda: equals(db.runs(), JOBS), timeout=30, what="every job running")

    worker.send(signal.SIGTERM)
    signalled = time.monotonic()
    assert await worker.wait_exit(15) == 0
    exited = time.monotonic() - signalled

    jobs = await assert_nothing_lost(db, ids)
    assert {r["attempt"] for r in jobs.values()} == {1}
    assert all(f":{worker.pid}:" in r["worker_id"] for r in jobs.values())
    assert await db.runs() == JOBS  # finished where they started; none ran twice
    figures(jobs=JOBS, job_seconds=0.5, sigterm_to_exit_seconds=exited)


async def test_sigterm_releases_long_jobs_at_once_to_another_worker(
    db: Db, procs: Processes, figures: Figures
) -> None:
    lease = 30.0  # far longer than the test: only a release can free these jobs in time
    options = WorkerOptions(concurrency=JOBS, lease_seconds=lease, drain_timeout=0.3)
    leaving = procs.start_worker("leaving", options)
    tokens = [f"l{i}" for i in range(JOBS)]
    ids = await db.enqueue_many(
        "fault.sleeps_first_run", [{"token": t, "seconds": 120.0} for t in tokens]
    )
    await wait_for(lambda: equals(db.runs(), JOBS), timeout=30, what="every job running")
    staying = procs.start_worker("staying", options)
    await wait_for(lambda: _listeners(db, 2), timeout=30, what="second worker listening")
    leases_end = await db.fetchval(
        "SELECT min(lease_expires_at) FROM jobrunner.jobs WHERE id = any($1::uuid[])", ids
    )

    leaving.send(signal.SIGTERM)
    signalled = time.monotonic()
    assert await leaving.wait_exit(15) == 0
    exited = time.monotonic() - signalled
    await wait_for(lambda: db.all_done(ids), timeout=30, what="the other worker finishes them")
    done = time.monotonic() - signalled

    jobs = await assert_nothing_lost(db, ids)
    for row in jobs.values():
        assert f":{staying.pid}:" in row["worker_id"]
        assert row["attempt"] == 1 and row["errors"] == []  # a release is not an attempt
        assert row["finished_at"] < leases_end  # long before the lease would have freed it
    figures(jobs=JOBS, lease_seconds=lease, drain_timeout=0.3,
            sigterm_to_exit_seconds=exited, sigterm_to_done_elsewhere_seconds=done)  # fmt: skip


async def test_second_sigterm_skips_the_drain(db: Db, procs: Processes, figures: Figures) -> None:
    drain = 60.0
    options = WorkerOptions(concurrency=JOBS, lease_seconds=30.0, drain_timeout=drain)
    worker = procs.start_worker("impatient", options)
    tokens = [f"d{i}" for i in range(JOBS)]
    ids = await db.enqueue_many(
        "fault.sleeps_first_run", [{"token": t, "seconds": 120.0} for t in tokens]
    )
    await wait_for(lambda: equals(db.runs(), JOBS), timeout=30, what="every job running")

    worker.send(signal.SIGTERM)
    signalled = time.monotonic()
    await asyncio.sleep(0.2)  # the fault window: the worker is now draining
    worker.send(signal.SIGTERM)
    assert await worker.wait_exit(15) == 0  # far sooner than the 60 s drain
    exited = time.monotonic() - signalled
    assert "second stop request" in worker.log()

    jobs = await db.jobs(ids)
    assert len(jobs) == JOBS
    assert {(r["state"], r["attempt"], r["worker_id"]) for r in jobs.values()} == {
        (JobState.QUEUED.value, 0, None)
    }
    figures(jobs=JOBS, drain_timeout=drain, second_sigterm_to_exit_seconds=exited)


async def _listeners(db: Db, count: int) -> bool:
    return len(await db.backends("jobrunner-listener")) >= count
