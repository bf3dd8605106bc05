"""Lease renewal on its own thread, event loop and connection.

A handler that hogs the worker's event loop (CPU work in an async function, a blocking call)
cannot starve the heartbeat, so a busy job keeps its lease. A loop blocked for longer than a
whole lease is treated as a hung worker: renewal stops, the lease runs out and the job is
rescued elsewhere, exactly as if the process had died.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from uuid import UUID

import asyncpg
import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import connect
from jobrunner.worker.attempts import Attempt

log = structlog.get_logger("jobrunner.heartbeat")

# (attempts still held, with whether a cancel was asked) and (attempts lost)
ResultCallback = Callable[[dict[UUID, bool], set[UUID]], None]


class Heartbeat:
    def __init__(
        self,
        dsn: str,
        *,
        worker_id: str,
        interval: float,
        lease_seconds: float,
        held: Callable[[], dict[UUID, Attempt]],
        on_result: ResultCallback,
    ) -> None:
        self._dsn = dsn
        self._worker_id = worker_id
        self._interval = interval
        self._lease = lease_seconds
        self._held = held
        self._on_result = on_result
        self._main_loop = asyncio.get_running_loop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobrunner-heartbeat", daemon=True)
        self.loop_alive_at = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=self._interval + 5)

    async def keep_alive(self) -> None:
        """Runs on the worker's loop: proves the loop still gets to run."""
        while True:
            self.loop_alive_at = time.monotonic()
            await asyncio.sleep(min(self._interval, 0.5))

    def _run(self) -> None:
        asyncio.run(self._beat_forever())

    async def _beat_forever(self) -> None:
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        while not self._stopping.wait(self._interval):
            if time.monotonic() - self.loop_alive_at > self._lease:
                log.error("worker event loop blocked for longer than a lease; not renewing")
                continue
            held = self._held()
            if not held:
                continue
            try:
                if conn is None or conn.is_closed():
                    conn = await connect(self._dsn, role="heartbeat", worker_plans=True)
                pairs = [(i, a.job.attempt) for i, a in held.items()]
                still_held = await asyncio.wait_for(
                    queries.job_heartbeat(
                        conn, pairs, worker_id=self._worker_id, lease_seconds=self._lease
                    ),
                    timeout=self._interval * 2,
                )
            except DB_ERRORS as exc:
                log.warning("heartbeat failed; will retry", error=str(exc))
                if conn is not None:
                    conn.terminate()
                conn = None
                continue
            lost = set(held) - set(still_held)
            self._main_loop.call_soon_threadsafe(self._on_result, still_held, lost)
        if conn is not None:
            await conn.close()
