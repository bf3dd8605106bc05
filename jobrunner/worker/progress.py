"""The progress writer: what handlers report reaches the database about once a second.

A handler's report replaces the attempt's previous one on its JobContext; its first puts the
attempt on the worker's ProgressBoard (jobrunner.progress). Every `interval` this writer
takes from the board the reports not written yet and writes them in one statement
(progress_write_many), fenced like a lease renewal: only rows the reporting attempt still
holds. A row locked at that moment (the heartbeat renewing it) is skipped and its report
put back for the next round, unless a newer one came meanwhile; an attempt whose row its
worker no longer holds leaves the board. A worker whose handlers never report writes
nothing: the board is empty and the round costs a wake-up.

An attempt's last report must land before its outcome, which ends the fence. The outcome
writer calls `write_before_outcomes` first; the lock makes it wait for a round in flight,
which may carry those very reports. It skips a locked row like the rounds do, so a report
may be lost only when the heartbeat holds that row in the millisecond before the outcome.
Only attempts a round has shown get that last write: one that ends before its first round
(most short jobs) drops its reports, rather than pay an UPDATE for a progress nobody saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from uuid import UUID

import asyncpg
import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS, TRANSIENT_ERRORS
from jobrunner.db.pool import Conn, Pool
from jobrunner.progress import ProgressBoard, ProgressReport

log = structlog.get_logger("jobrunner.worker")

WRITE_INTERVAL = 1.0  # seconds: at most one write per job this often


class ProgressWriter:
    def __init__(
        self, board: ProgressBoard, *, worker_id: str, interval: float = WRITE_INTERVAL
    ) -> None:
        self.board = board
        self.pool: Pool | None = None  # set once the worker has its pool
        self._worker_id = worker_id
        self._interval = interval
        self._lock = asyncio.Lock()
        # Attempts (job id, attempt) a round wrote: their last report is written before their
        # outcome, and they leave with it; one whose lease was lost stays (rare, and small).
        self._shown: set[tuple[UUID, int]] = set()
        self.writes = 0  # statements run: what tests and the bench count

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not self.board:
                continue
            assert self.pool is not None
            try:  # a connection for a moment a second, not held
                async with self.pool.acquire() as conn:
                    await self.write_round(conn)
            except DB_ERRORS as exc:
                log.warning("progress not written; will retry", error=str(exc))

    async def write_round(self, conn: Conn) -> None:
        """Write every waiting report; those skipped (locked) wait for the next round."""
        async with self._lock:
            reports = self.board.take()
            if reports:  # attempts on the board may have reported nothing new
                await self._write(conn, reports, retry_skipped=True)

    def busy(self) -> bool:
        """Reports wait, attempts were shown, or a round is being written: outcomes must
        pass here first. False all along for a worker whose handlers never report."""
        return bool(self.board) or bool(self._shown) or self._lock.locked()

    async def write_before_outcomes(
        self, conn: Conn, attempts: Collection[tuple[UUID, int]]
    ) -> None:
        """Write the waiting reports of these attempts (shown ones only), on the outcome
        writer's connection."""
        async with self._lock:
            shown = [a for a in attempts if a in self._shown] if self._shown else []
            if shown:  # most attempts never were: no report of theirs is even built
                taken = self.board.take([job_id for job_id, _ in shown])
                reports = [r for r in taken if (r.job_id, r.attempt) in self._shown]
                if reports:  # a transient error raises here: the outcome batch is tried again
                    await self._write(conn, reports, retry_skipped=False)
                self._shown.difference_update(shown)
            self.board.leave([job_id for job_id, _ in attempts])

    async def _write(
        self, conn: Conn, reports: list[ProgressReport], *, retry_skipped: bool
    ) -> None:
        try:
            answer = await queries.progress_write_many(conn, reports, worker_id=self._worker_id)
        except TRANSIENT_ERRORS:
            self.board.put_back(reports)  # the database is away: newer reports still win
            raise
        except asyncpg.PostgresError as exc:  # refused (a bug of ours): never retry the same
            log.error("progress refused by the database", error=str(exc), count=len(reports))
            return
        self.writes += 1
        if retry_skipped:
            self._shown.update((r.job_id, r.attempt) for r in reports if answer.get(r.job_id))
            skipped = [r for r in reports if answer.get(r.job_id) is False]
            if skipped:
                self.board.put_back(skipped)
            gone = [r.job_id for r in reports if r.job_id not in answer]
            if gone:  # lease lost, or ended without an outcome of this worker's
                self.board.leave(gone)
