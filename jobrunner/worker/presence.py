"""The worker's row in the registry (jobrunner.workers): who it is, what it serves, that it runs.

Written at start, touched every JOBRUNNER_WORKER_SEEN_INTERVAL, marked stopped on a graceful
stop; a worker that dies simply stops being seen. The API reads these rows to refuse
submissions to queues nobody serves; doctor, the dashboard and `jobrunner up` to warn of them.

Touched from the worker's own event loop, not the heartbeat thread: a worker whose loop is
blocked claims nothing, so it should not count as serving its queues.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Sequence

import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Pool
from jobrunner.registry import registered_tasks
from jobrunner.settings import Settings

log = structlog.get_logger("jobrunner.worker.presence")

# No write here may hold the worker up: a frozen database must not keep it from starting or
# stopping (the row ages out by itself), nor stall the touches after it thaws.
WRITE_TIMEOUT = 5.0


class Presence:
    def __init__(
        self, worker_id: str, queues: Sequence[str], concurrency: int, settings: Settings
    ) -> None:
        self.worker_id = worker_id
        self._queues = list(queues)
        self._concurrency = concurrency
        self._interval = settings.worker_seen_interval
        self._pool: Pool | None = None
        self.registered = asyncio.Event()  # set once the row is first written

    async def register(self, pool: Pool) -> None:
        """Write the row as the worker starts, before it claims anything. A database error is
        only logged: keep_seen writes the row once the database answers."""
        self._pool = pool
        try:
            async with asyncio.timeout(WRITE_TIMEOUT), pool.acquire() as conn:
                await queries.worker_register(conn, self._row())
        except DB_ERRORS as exc:
            log.warning("could not record this worker in the registry", error=str(exc))
            return
        self.registered.set()

    async def keep_seen(self) -> None:
        """Touch the row every interval (writing it again if it is missing) until cancelled."""
        assert self._pool is not None, "register first"
        failing = False
        while True:
            await asyncio.sleep(self._interval)
            try:
                async with asyncio.timeout(WRITE_TIMEOUT), self._pool.acquire() as conn:
                    if not await queries.worker_touch(conn, self.worker_id):
                        await queries.worker_register(conn, self._row())
                self.registered.set()
                failing = False
            except DB_ERRORS as exc:
                if not failing:  # once per outage, not once per interval
                    log.warning("could not record this worker in the registry", error=str(exc))
                failing = True

    async def stop(self) -> None:
        """Mark the row stopped (after keep_seen was cancelled); errors are only logged."""
        if self._pool is None:
            return
        try:
            async with asyncio.timeout(WRITE_TIMEOUT), self._pool.acquire() as conn:
                await queries.worker_stop(conn, self.worker_id)
        except DB_ERRORS as exc:
            log.warning("could not mark this worker stopped in the registry", error=str(exc))

    def _row(self) -> queries.WorkerRow:
        # The tasks registered now: task modules are imported before a worker starts.
        return queries.WorkerRow(
            id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=self._queues,
            tasks=[t.name for t in registered_tasks()],
            concurrency=self._concurrency,
        )
