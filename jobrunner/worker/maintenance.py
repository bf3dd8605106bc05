"""Housekeeping, done each tick by whichever worker holds the maintenance lock.

Due scheduled/retrying jobs become queued, expired leases are rescued, finished jobs are
archived (moved from jobs to the partitioned job_history, JOBRUNNER_ARCHIVE_AFTER after they
finish) and dropped a partition at a time once past retention, the registry's rows of workers
long gone are deleted in batches, and due schedules
(code and runtime: jobrunner.worker.periodic) get their job for each tick. Every step is a
statement in queries.sql driven by the database's clock.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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
PARTITION_LOCK_WAIT = 1.0  # seconds: a partition's DDL waits no longer for a long read
# The archiver walks jobs_finished_idx from where its last move reached, less ARCHIVE_SLACK
# (an outcome is dated by its transaction's start, and commits a little out of that order),
# and from the index's start once every ARCHIVE_FULL_PASS seconds for anything older: a job
# locked when the walk passed it, a parent kept while its child ran, a very late commit.
# Behind a long transaction elsewhere the entries of moved jobs stay in the index, dead but
# not removable, and a walk from its start steps over all of them at every tick: moving
# 2,000 jobs a tick behind a held snapshot (private PostgreSQL 15), a tick took 36.5 ms at
# first and 44.6 ms once 280,000 had moved, growing with every job moved while it is held;
# walking on, 15.5 ms throughout.
ARCHIVE_SLACK = timedelta(seconds=5)
ARCHIVE_FULL_PASS = 60.0


@dataclass
class MaintenanceResult:
    promoted: int = 0
    rescued: int = 0
    pruned: int = 0
    periodic: int = 0
    workers_pruned: int = 0
    archived: int = 0
    history_pruned: int = 0
    partitions_made: int = 0
    partitions_dropped: int = 0

    def touched_anything(self) -> bool:
        return any(vars(self).values())


@dataclass
class Maintenance:
    pool: Pool
    settings: Settings
    batch: int = 1000
    max_batches_per_step: int = 20
    retention: dict[JobState, float] = field(init=False)
    _delivery: JobRows = field(init=False, repr=False, default_factory=delivery_rows)
    _partitions_due: float = field(init=False, repr=False, default=0.0)  # time.monotonic()
    _archive_from: datetime | None = field(init=False, repr=False, default=None)
    _archive_full_due: float = field(init=False, repr=False, default=0.0)  # time.monotonic()

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
        if time.monotonic() >= self._partitions_due:
            # Before the first archive: the rows it moves find their day's partition.
            made, dropped = await self.keep_partitions(conn)
            result.partitions_made, result.partitions_dropped = made, dropped
            self._partitions_due = time.monotonic() + self.settings.history_partition_interval
        if time.monotonic() >= self._archive_full_due:
            self._archive_from = None
            self._archive_full_due = time.monotonic() + ARCHIVE_FULL_PASS
        result.archived = await self._repeat(
            lambda: self._archive(conn), batch=self.settings.archive_batch
        )
        result.history_pruned = await self._prune_history(conn)
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

    async def keep_partitions(self, conn: Conn, now: datetime | None = None) -> tuple[int, int]:
        """Make job_history's partitions from the longest retention back to
        history_partitions_ahead ahead, and drop those past it; (made, dropped). `now`: a
        test's clock (the database's otherwise)."""
        longest = max(self.retention.values())
        width = self.settings.history_partition_hours * 3600.0
        made = await queries.job_history_partitions_make(
            conn,
            behind=longest,
            ahead=width * self.settings.history_partitions_ahead,
            width=width,
            wait=PARTITION_LOCK_WAIT,
            now=now,
        )
        dropped = await queries.job_history_partitions_drop(
            conn, older_than=longest, wait=PARTITION_LOCK_WAIT, now=now
        )
        return made, dropped

    async def _prune_history(self, conn: Conn) -> int:
        """A state kept as long as the longest retention goes with its partitions; one kept
        shorter is deleted in batches, as are rows of the default partition."""
        longest = max(self.retention.values())
        pruned = 0
        for state, older_than in self.retention.items():
            prune = functools.partial(
                queries.job_history_prune,
                conn,
                state=state,
                older_than=older_than,
                limit=self.settings.prune_batch,
                default_only=older_than >= longest,
            )
            pruned += await self._repeat(prune, batch=self.settings.prune_batch)
        return pruned

    async def _archive(self, conn: Conn) -> int:
        """One batch of the archiver, from where the last reached (ARCHIVE_SLACK)."""
        moved, newest = await queries.job_archive(
            conn,
            older_than=self.settings.archive_after,
            limit=self.settings.archive_batch,
            since=self._archive_from,
        )
        if newest is not None:
            reached = newest - ARCHIVE_SLACK
            self._archive_from = max(reached, self._archive_from or reached)
        return moved

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
