"""Tasks only `jobrunner bench` enqueues; its worker processes load this module."""

from __future__ import annotations

import time

from jobrunner.tasks import task

PICKUP = "jobrunner.bench_pickup"


@task(name=PICKUP, max_attempts=1)
async def bench_pickup() -> float:
    """Return the wall clock at the handler's start, for the pickup latency figure."""
    return time.time()
