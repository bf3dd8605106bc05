"""Tasks only `jobrunner bench` enqueues; its worker processes load this module."""

from __future__ import annotations

import time

from jobrunner.context import JobContext
from jobrunner.tasks import task

PICKUP = "jobrunner.bench_pickup"
PROGRESS = "jobrunner.bench_progress"
PROGRESS_REPORTS = 10


@task(name=PICKUP, max_attempts=1)
async def bench_pickup() -> float:
    """Return the wall clock at the handler's start, for the pickup latency figure."""
    return time.time()


ADD = "jobrunner.bench_add"


@task(name=ADD, max_attempts=1)
async def bench_add(x: int) -> int:
    """One argument to validate and store: what the enqueue figures send, one job at a time
    and in chunks (a no-op takes none, and would leave validation out of the figure)."""
    return x


@task(name=PROGRESS, max_attempts=1)
async def bench_progress(job: JobContext) -> None:
    """A no-op that reports its progress PROGRESS_REPORTS times, as a handler's loop would."""
    for step in range(1, PROGRESS_REPORTS + 1):
        job.progress(step / PROGRESS_REPORTS, f"step {step} of {PROGRESS_REPORTS}")


HORIZON = "jobrunner.bench_horizon"


@task(name=HORIZON, max_attempts=1)
async def bench_horizon(batch: int) -> float:
    """The horizon group's job: the wall clock at the handler's start; `batch` names the
    producer's batch, whose commit time the bench kept (pickup = start - commit)."""
    return time.time()
