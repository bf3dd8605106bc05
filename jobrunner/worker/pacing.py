"""How fast the worker claims, and how it waits when the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable

import structlog

log = structlog.get_logger("jobrunner.worker")

# Claim ahead of the free slots only as many jobs as the slots are expected to finish within
# this many seconds: short jobs are claimed in big batches (few round trips), long ones are
# never hoarded away from idle workers.
PREFETCH_HORIZON = 0.005


class Wakeup:
    """When the fetch loop claims next: at once while more work may wait, else when woken
    (a queue's doorbell, the listener reconnecting, a freed slot) or at the jittered poll.
    `more_waiting`: the last claim, a doorbell or the poll says the queues may hold more."""

    def __init__(self, queues: Iterable[str]) -> None:
        self._queues = frozenset(queues)
        self._event = asyncio.Event()
        self.more_waiting = True

    def ring(self) -> None:
        self._event.set()

    def on_doorbell(self, queue: str) -> None:
        if queue in self._queues:
            self.more_waiting = True
            self._event.set()

    def on_connected(self) -> None:
        """The listener (re)connected: a notice may have been missed meanwhile."""
        self.more_waiting = True
        self._event.set()

    async def wait(self, interval: float) -> None:
        try:
            # Jitter below the interval, never above it: a job waits at most one interval.
            timeout = interval * random.uniform(0.8, 1.0)
            await asyncio.wait_for(self._event.wait(), timeout=timeout)
        except TimeoutError:
            self.more_waiting = True  # the poll: look again whatever we were told
        self._event.clear()


class Prefetch:
    """How many jobs to claim beyond the free slots, learnt from how long attempts take."""

    def __init__(self, concurrency: int, claim_batch: int) -> None:
        self._concurrency = concurrency
        self._claim_batch = claim_batch
        self._avg_duration = PREFETCH_HORIZON  # seconds per attempt, moving average
        self.ahead = concurrency
        self.min_claim = max(1, concurrency // 2)

    def learn(self, seconds: float) -> None:
        self._avg_duration += (seconds - self._avg_duration) * 0.01
        expected = self._concurrency * PREFETCH_HORIZON / max(self._avg_duration, 1e-6)
        self.ahead = min(self._claim_batch, int(expected))
        # Without prefetch, claim for any free slot; with it, wait for a decent batch.
        self.min_claim = max(1, self.ahead // 2)


async def back_off(
    failures: int, exc: BaseException, *, max_delay: float, stop: asyncio.Event | None
) -> None:
    """Wait before the next try after `failures` database errors in a row (`stop` cuts the
    wait short)."""
    delay = min(max_delay, 0.05 * 2 ** min(failures, 10))
    log.warning(
        "database unavailable; retrying",
        error=str(exc) or type(exc).__name__,
        retry_in=round(delay, 3),
    )
    if stop is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)
