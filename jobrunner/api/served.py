"""Which queues some worker serves, as this API process knows them: a user's submission to a
queue no worker serves is refused (422) instead of waiting for ever.

The set is read from the worker registry every second in the background, so a submission
checks it without a round trip. A queue missing from it is read once more before refusing,
so a worker that started a moment ago is not refused; only a refusal costs round trips (that
read, and one to learn whether the caller is an admin: admins may submit anywhere, and
doctor, the dashboard and `jobrunner up` warn them of unserved queues instead).

A queue counts as served while a worker serving it was seen within
JOBRUNNER_SERVED_QUEUE_WINDOW (seconds; 300 by default), stopped or not, rather than only
while a worker is live: in a rolling restart the old workers stop before the new ones
register, and users' submissions in that gap must go through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import structlog

from jobrunner import accounts
from jobrunner.api.problems import ApiProblem
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool

if TYPE_CHECKING:  # types only: jobrunner.api.submit imports this module
    from jobrunner.api.submit import Submitter

log = structlog.get_logger("jobrunner.api.served")

REFRESH_INTERVAL = 1.0


class QueueUnserved(ApiProblem):
    """A user's submission to a queue no worker serves."""

    def __init__(self, queue: str) -> None:
        super().__init__(422, f"no running worker serves queue {queue!r}; nothing would run it")
        self.queue = queue


class ServedQueues:
    def __init__(self, pool: Pool, *, window: float) -> None:
        self._pool = pool
        self._window = window
        self._queues: frozenset[str] = frozenset()
        self._lock = asyncio.Lock()
        self._reads = 0  # reads started so far

    def __contains__(self, queue: str) -> bool:
        return queue in self._queues

    async def require(self, queue: str, me: Submitter, conn: Conn | None = None) -> None:
        """Raise QueueUnserved unless a worker serves `queue` or `me` is an admin. A miss
        reads on `conn` when given (a caller holding one must not wait for a second)."""
        if queue in self._queues:
            return
        async with self._connection(conn) as c:
            await self.refresh(c)
            if queue in self._queues:
                return
            # Also refuses a session that has ended, as the submission itself would.
            principal = await accounts.live_session(
                c, username=me.username, session_id=me.session_id
            )
        if not principal.is_admin:
            raise QueueUnserved(queue)

    async def refresh(self, conn: Conn | None = None) -> None:
        """Read the served queues, unless a read that started after this call has finished
        meanwhile: concurrent misses share one read, and none uses a read older than itself."""
        wanted = self._reads + 1
        async with self._lock:
            if self._reads >= wanted:
                return
            self._reads += 1
            async with self._connection(conn) as c:
                self._queues = await queries.worker_served_queues(c, window=self._window)

    @contextlib.asynccontextmanager
    async def _connection(self, conn: Conn | None) -> AsyncIterator[Conn]:
        if conn is not None:
            yield conn
        else:
            async with self._pool.acquire() as acquired:
                yield acquired

    async def run(self) -> None:
        """Refresh every REFRESH_INTERVAL until cancelled."""
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except Exception as exc:  # the database away, or not migrated yet: next time
                if not failing:
                    log.warning("could not read the served queues", error=str(exc))
                failing = True
            await asyncio.sleep(REFRESH_INTERVAL)
