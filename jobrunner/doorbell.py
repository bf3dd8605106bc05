"""Doorbells rung after the commit, coalesced: at most one NOTIFY in flight per process.

A transaction that sends NOTIFY holds PostgreSQL's notification queue lock from its commit
until the commit is flushed to disk, so concurrent transactions that each NOTIFY commit one
at a time: eight callers enqueueing one job each got about a third less throughput than the
same inserts without NOTIFY. A job inserted by its own single-statement transaction therefore
commits without ringing, and its queue is rung here just after; rings that arrive while one
is in flight go out together in the next. A transaction the caller controls still rings inside it,
so no worker hears of a job before that transaction commits, or of one rolled back.

A ring lost with a dying process costs at most a poll interval: the row is the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Pool

log = structlog.get_logger("jobrunner.doorbell")


class Doorbell:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._waiting: set[str] = set()
        self._ringing: asyncio.Task[None] | None = None
        self._inserting = 0  # inserts under way that may ring through this doorbell

    @contextmanager
    def inserting(self) -> Iterator[bool]:
        """Around one insert that commits on its own: yields True when the insert should ring
        in its own statement (nothing else of this doorbell's under way), False when it
        should call `ring` after its commit instead."""
        alone = self._inserting == 0 and self.idle()
        self._inserting += 1
        try:
            yield alone
        finally:
            self._inserting -= 1

    def ring(self, queue: str) -> None:
        self._waiting.add(queue)
        if self._ringing is None or self._ringing.done():
            self._ringing = asyncio.create_task(self._ring_waiting(), name="jobrunner-doorbell")

    async def _ring_waiting(self) -> None:
        while self._waiting:
            queues = sorted(self._waiting)
            self._waiting.clear()
            try:
                async with self._pool.acquire() as conn:
                    await queries.doorbell_ring(conn, queues)
            except DB_ERRORS as exc:  # workers will find the jobs at their next poll
                log.warning("could not ring doorbells", queues=queues, error=str(exc))

    def idle(self) -> bool:
        """Whether no ring is waiting or under way."""
        return not self._waiting and (self._ringing is None or self._ringing.done())

    async def flush(self) -> None:
        """Wait until every ring so far has gone out (tests, and before closing the pool)."""
        if self._ringing is not None:
            await asyncio.shield(self._ringing)
