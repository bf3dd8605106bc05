"""Housekeeping, done each tick by whichever worker holds the maintenance lock.

Due scheduled/retrying jobs become queued, expired leases are rescued, old finished jobs are
deleted in batches, so are the registry's rows of workers long gone, and due schedules
(code and runtime: jobrunner.worker.periodic) get their job for each tick. Every step is a
statement in queries.sql driven by the database's clock.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from jobrunner import dependencies
from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn, Pool
from jobrunner.job_rows import JobRows
from jobrunner.models import JobState
from jobrunner.settings import Settings
from jobrunner.webhooks import delivery_rows
from jobrunner.worker.periodic import FIRE_BATCH, fire_due_schedules

log = structlog.get_logger("jobrunner.maintenance")

THROUGHPUT_RETENTION_SECONDS = 2 * 86400.0


@dataclass
class MaintenanceResult:
    promoted: int = 0
    rescued: int = 0
    pruned: int = 0
    periodic: int = 0
    workers_pruned: int = 0

    def touched_anything(self) -> bool:
        return any((self.promoted, self.rescued, self.pruned, self.periodic, self.workers_pruned))


@dataclass
class Maintenance:
    pool: Pool
    settings: Settings
    batch: int = 1000
    max_batches_per_step: int = 20
    retention: dict[JobState, float] = field(init=False)
    _delivery: JobRows = field(init=False, repr=False, default_factory=delivery_rows)

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_batches_per_step < 1:
            raise ValueError("batch and max_batches_per_step must be positive")
        self.retention = {
            JobState.SUCCEEDED: self.settings.retention_succeeded,
            JobState.FAILED: self.settings.retention_failed,
            JobState.CANCELLED: self.settings.retention_cancelled,
        }

    async def run_once(self) -> MaintenanceResult | None:
        """One tick; None when another process holds the maintenance lock."""
        async with self.pool.acquire() as conn:
            if not await queries.maintenance_try_lock(conn):
                return None
            try:
                return await self._tick(conn)
            finally:
                await queries.maintenance_unlock(conn)

    async def _tick(self, conn: Conn) -> MaintenanceResult:
        result = MaintenanceResult()
        result.promoted = await self._repeat(
            lambda: queries.job_promote_due(conn, limit=self.batch)
        )
        result.rescued = await self._repeat(lambda: self._rescue(conn))
        for state, older_than in self.retention.items():
            prune = functools.partial(
                queries.job_prune,
                conn,
                state=state,
                older_than=older_than,
                limit=self.settings.prune_batch,
            )
            result.pruned += await self._repeat(prune, batch=self.settings.prune_batch)
        await queries.throughput_prune(conn, older_than=THROUGHPUT_RETENTION_SECONDS)
        result.workers_pruned = await queries.worker_prune(
            conn, older_than=self.settings.worker_retention
        )
        result.periodic = await self._repeat(
            lambda: fire_due_schedules(conn, limit=FIRE_BATCH), batch=FIRE_BATCH
        )
        return result

    async def _repeat(self, step: Callable[[], Awaitable[int]], batch: int | None = None) -> int:
        """Run a batched step until it touches fewer rows than a batch (or the cap)."""
        size = batch or self.batch
        total = 0
        for _ in range(self.max_batches_per_step):
            touched = await step()
            total += touched
            if touched < size:
                break
        return total

    async def _rescue(self, conn: Conn) -> int:
        # A rescue that ends a job with children settles them in the same transaction.
        async with conn.transaction():
            rescued = await queries.job_rescue_expired(
                conn, limit=self.batch, delivery=self._delivery
            )
            ended = [r.id for r in rescued if r.has_children and r.state.is_terminal]
            if ended:
                await dependencies.settle(conn, ended)
        for job in rescued:
            log.warning("lease expired: worker lost", job_id=str(job.id), now=job.state.value)
        return len(rescued)

    async def run_forever(self) -> None:
        interval = self.settings.maintenance_interval
        while True:
            # Jitter keeps several workers from knocking on the lock in step.
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))
            try:
                result = await self.run_once()
            except DB_ERRORS as exc:
                log.warning("maintenance tick failed", error=str(exc))
                continue
            if result is not None and result.touched_anything():
                log.info("maintenance", **vars(result))
