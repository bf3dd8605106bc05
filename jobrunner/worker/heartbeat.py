"""Lease renewal on its own thread, event loop and connection.

A handler that hogs the worker's event loop (CPU work in an async function, a blocking call)
cannot starve the heartbeat, so a busy job keeps its lease, and no second worker is handed a
job that is still running here. The worker's loop publishes what it holds after each claim and
each outcome batch; the heartbeat thread reads only that snapshot (one reference, swapped
whole), so it never walks the loop's structures while they change. While the loop is blocked the
snapshot stands still, and each attempt is renewed up to the limit set when it started (its
timeout plus grace, or JOBRUNNER_BLOCKED_LOOP_RENEW_CAP), then left to expire and be rescued
elsewhere, as if this process had died.

With JOBRUNNER_LIVENESS_FILE set, each beat also touches that file, so a process supervisor
without HTTP to ask (a Kubernetes exec probe) can tell a hung worker by the file's age.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from uuid import UUID

import asyncpg
import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import connect
from jobrunner.worker.attempts import Attempt, AttemptState

log = structlog.get_logger("jobrunner.heartbeat")

# (attempts still held, with whether a cancel was asked) and (attempts lost: id -> attempt;
# the snapshot may be a tick old, so the attempt number tells a lost one from its successor)
ResultCallback = Callable[[dict[UUID, bool], dict[UUID, int]], None]
BLOCKED_HINT = "an async handler is blocking the event loop; a plain `def` handler runs in a thread"


class Heartbeat:
    def __init__(
        self,
        dsn: str,
        *,
        worker_id: str,
        interval: float,
        lease_seconds: float,
        held: Callable[[], Mapping[UUID, Attempt]],
        on_result: ResultCallback,
        liveness_file: Path | None = None,
    ) -> None:
        self._dsn = dsn
        self._worker_id = worker_id
        self._interval = interval
        self._lease = lease_seconds
        self._held = held
        self._on_result = on_result
        self._liveness_file = liveness_file
        self._main_loop = asyncio.get_running_loop()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobrunner-heartbeat", daemon=True)
        self._tick = min(interval, 0.5)
        # The loop counts as blocked once it has not run for a whole lease: without this
        # thread its jobs would have been lost by now. Shorter stalls are not reported.
        self._blocked_after = lease_seconds
        self._warned = False
        self._given_up: set[UUID] = set()
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
            await asyncio.sleep(self._tick)

    def _run(self) -> None:
        asyncio.run(self._beat_forever())

    def _to_renew(self) -> Mapping[UUID, Attempt]:
        held = self._held()  # the loop's last published snapshot, read whole
        now = time.monotonic()
        blocked_for = now - self.loop_alive_at
        if blocked_for <= self._blocked_after:
            self._warned = False
            self._given_up.clear()
            return held
        if not self._warned:
            self._warned = True
            running = {a.job.task for a in held.values() if a.state is AttemptState.RUNNING}
            log.warning(
                "worker event loop blocked for longer than a lease; still renewing leases",
                blocked_seconds=round(blocked_for, 1),
                tasks=sorted(running),
                hint=BLOCKED_HINT,
            )
        renew = {i: a for i, a in held.items() if a.renew_until > now}
        for job_id in held.keys() - renew.keys() - self._given_up:
            self._given_up.add(job_id)
            log.error(
                "event loop blocked past the attempt's limit; no longer renewing its lease",
                job_id=str(job_id),
                task=held[job_id].job.task,
                blocked_seconds=round(blocked_for, 1),
            )
        return renew

    def _touch(self) -> None:
        """Say the heartbeat still beats: a liveness probe reads the file's age. It is
        touched whether or not the database answers (a restart would not bring it back), and
        stops being touched if this thread hangs or dies."""
        if self._liveness_file is None:
            return
        try:
            self._liveness_file.parent.mkdir(parents=True, exist_ok=True)
            self._liveness_file.touch()
        except OSError as exc:
            log.warning(
                "cannot touch the liveness file", path=str(self._liveness_file), error=str(exc)
            )

    async def _beat_forever(self) -> None:
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        self._touch()
        while not self._stopping.wait(self._interval):
            self._touch()
            held = self._to_renew()
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
            lost = {i: a.job.attempt for i, a in held.items() if i not in still_held}
            self._main_loop.call_soon_threadsafe(self._on_result, still_held, lost)
        if conn is not None:
            await conn.close()
