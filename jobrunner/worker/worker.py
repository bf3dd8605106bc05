"""The worker: claims jobs in batches, runs them as asyncio tasks, records outcomes in batches.

Pieces, each on its own task or thread:
- the fetch loop (here) claims up to the free slots in one statement (SKIP LOCKED), woken by
  the listener's doorbell, by a freed slot when more work is waiting, or by a jittered poll;
- the attempt book (attempts.py) holds one record per claimed job and runs each attempt as
  its own asyncio task (executor.run_attempt decides every outcome);
- the outcome writer (outcomes.py) writes finished outcomes, batching whatever piled up
  during the last write;
- the progress writer (progress.py) writes what handlers report, about once a second;
- the heartbeat thread renews leases of every attempt held (running, or finished but not yet
  written), and reports lost leases and cancel requests back;
- maintenance, under an advisory lock, promotes due jobs, rescues leases, prunes and fires
  due schedules (periodic.py, which also syncs this process's code schedules at start);
- presence.py keeps this worker's row in the registry (jobrunner.workers);
- companions.py starts and stops the pieces that run beside the fetch loop;
- shutdown.py drains and hands back what is left.

An attempt is held from its claim until its outcome is written. A worker that dies holding
attempts loses nothing: their leases expire and maintenance queues them again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import structlog

from jobrunner import dependencies, metrics
from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Pool, create_pool, wait_for_database
from jobrunner.models import ClaimedJob
from jobrunner.progress import ProgressBoard
from jobrunner.settings import Settings
from jobrunner.webhooks import delivery_rows
from jobrunner.worker.attempts import Attempt, AttemptBook
from jobrunner.worker.claimer import Claimer
from jobrunner.worker.companions import Companions, Doorbell
from jobrunner.worker.outcomes import HeldConnection, OutcomeWriter
from jobrunner.worker.pacing import Prefetch, Wakeup, back_off
from jobrunner.worker.periodic import sync_at_start
from jobrunner.worker.presence import Presence
from jobrunner.worker.progress import ProgressWriter
from jobrunner.worker.shutdown import drain, release_unfinished, stuck_handlers

log = structlog.get_logger("jobrunner.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class WorkerStats:
    claimed: int = 0
    recorded: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        dsn: str,
        pool: Pool | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        worker_id: str | None = None,
        maintenance: bool = True,
        heartbeat: bool = True,
    ) -> None:
        self.settings = settings
        self.dsn = dsn
        self.queues = list(queues or settings.queues)
        self.concurrency = concurrency or settings.concurrency
        self.worker_id = worker_id or new_worker_id()
        self.stats = WorkerStats()
        self._pool = pool
        self._owns_pool = pool is None
        self._with_maintenance = maintenance
        self._with_heartbeat = heartbeat
        self._thread_prefix = f"jobrunner-sync-{secrets.token_hex(3)}"
        self._threads = ThreadPoolExecutor(
            max_workers=min(self.concurrency, 64), thread_name_prefix=self._thread_prefix
        )
        # Claimed a little ahead of the free slots, so the next claim's round trip overlaps
        # the running attempts; each starts the moment a slot frees. Held, so leased.
        self.progress = ProgressWriter(ProgressBoard(), worker_id=self.worker_id)
        self._book = AttemptBook(
            settings,
            self._threads,
            concurrency=self.concurrency,
            report=self._report,
            on_slot_freed=self._on_slot_freed,
            progress=self.progress.board,
        )
        self._writer = OutcomeWriter(
            worker_id=self.worker_id,
            policy=queries.OutcomePolicy(
                backoff_base=settings.backoff_base,
                backoff_cap=settings.backoff_cap,
                max_deferrals=settings.unknown_task_max_deferrals,
                delivery=delivery_rows(),
            ),
            recorded=self.stats.recorded,
            written=self._book.written,
            after_write=self._after_write,
            max_back_off=settings.reconnect_max_delay,
        )
        self._prefetch = Prefetch(self.concurrency, settings.claim_batch)
        self._claimer = Claimer(
            self.queues, worker_id=self.worker_id, lease_seconds=settings.lease_seconds
        )
        self._wakeup = Wakeup(self.queues)
        self._stopping = asyncio.Event()
        self._skip_drain = asyncio.Event()
        self._claim_conn: HeldConnection | None = None
        self.presence = Presence(self.worker_id, self.queues, self.concurrency, settings)
        self._companions = Companions(
            settings,
            dsn=dsn,
            worker_id=self.worker_id,
            book=self._book,
            writer=self._writer,
            progress=self.progress,
            presence=self.presence,
            lanes=self._claimer.lanes,
        )

    # ----- public surface -------------------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop claiming and drain. Second call: skip the drain."""
        if self._stopping.is_set():
            log.warning("second stop request: releasing running jobs now")
            self._skip_drain.set()
        else:
            log.info(
                "stopping: no new claims, draining running jobs",
                drain_timeout=self.settings.drain_timeout,
                running=self._book.running_count,
            )
            self._stopping.set()
            self._book.paused = True  # claimed jobs that never started: shutdown releases them
        self._wakeup.ring()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self, *, burst: bool = False) -> WorkerStats:
        """Work until asked to stop (or, with burst, until no job is left to claim)."""
        pool = await self._open_pool()
        if pool is None:  # asked to stop while waiting for the database
            return self.stats
        metrics.configure(max_queues=self.settings.metrics_max_queues, known_queues=self.queues)
        self._claim_conn = HeldConnection(pool, setup=queries.session_claim_plans)
        self._writer.conn = HeldConnection(pool, setup=queries.session_outcome_plans)
        self._writer.progress = self.progress
        self.progress.pool = pool
        log.info(
            "worker started",
            worker_id=self.worker_id,
            queues=self.queues,
            concurrency=self.concurrency,
            burst=burst,
        )
        await self.presence.register(pool)
        await sync_at_start(pool, self.worker_id)
        self._companions.start(
            pool,
            Doorbell(on_jobs=self._wakeup.on_doorbell, on_connected=self._wakeup.on_connected),
            listen=self.settings.listen and not burst,
            maintenance=self._with_maintenance and not burst,
            heartbeat=self._with_heartbeat,
        )
        fetch = asyncio.create_task(self._fetch_loop(burst), name="jobrunner-fetch")
        try:
            await fetch
            await drain(self._book, self._skip_drain, self.settings.drain_timeout)
            await release_unfinished(self._book, pool, self.worker_id)
            await self._writer.flush_all(max(self.settings.drain_timeout, 5.0))
        finally:
            await self._close(fetch)
        log.info(
            "worker stopped",
            worker_id=self.worker_id,
            claimed=self.stats.claimed,
            **self.stats.recorded,
        )
        return self.stats

    # ----- start and stop -------------------------------------------------------------

    @property
    def stop_requested(self) -> asyncio.Event:
        return self._stopping

    async def stuck_handlers(self, grace: float = 0.5) -> int:
        """After `run()`: handlers still running though told to stop (see shutdown.py)."""
        return await stuck_handlers(self._book, self._thread_prefix, grace)

    def _running_handlers(self) -> int:
        return self._book.running_count + len(self._book.abandoned)

    async def _open_pool(self) -> Pool | None:
        if self._pool is None:
            self._pool = await wait_for_database(
                lambda: create_pool(
                    self.dsn,
                    role="worker",
                    min_size=2,
                    max_size=max(4, self.settings.pool_max_size),
                    worker_plans=True,
                ),
                wait=self.settings.startup_wait,
                stop=self._stopping,
            )
        return self._pool

    async def _close(self, fetch: asyncio.Task[None]) -> None:
        await self._companions.stop(fetch)
        for held in (self._claim_conn, self._writer.conn):
            if held is not None:
                await held.drop()
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._owns_pool and self._pool is not None:
            if self._running_handlers():  # a stuck handler may hold a connection
                self._pool.terminate()
            else:
                await self._pool.close()

    # ----- claiming -------------------------------------------------------------------

    async def _fetch_loop(self, burst: bool) -> None:
        failures = 0
        while not self._stopping.is_set():
            room = self._room()
            if room >= self._prefetch.min_claim and not self._backlogged():
                try:
                    claimed = await self._claim(min(room, self.settings.claim_batch))
                    failures = 0
                except DB_ERRORS as exc:
                    failures += 1
                    assert self._claim_conn is not None
                    await self._claim_conn.drop()
                    await back_off(
                        failures,
                        exc,
                        max_delay=self.settings.reconnect_max_delay,
                        stop=self._stopping,
                    )
                    continue
                if burst and not claimed and not self._book.held:
                    return
            if self._stopping.is_set():
                return
            if (
                self._room() < self._prefetch.min_claim
                or not self._wakeup.more_waiting
                or self._backlogged()
            ):
                await self._wait_for_wake(burst)

    def _room(self) -> int:
        book = self._book
        return self.concurrency + self._prefetch.ahead - book.running_count - book.ready_count

    def _on_slot_freed(self, seconds: float) -> None:
        self._prefetch.learn(seconds)
        # Under a concurrency limit a finished job may be what lets the next one start.
        more = self._wakeup.more_waiting or self._claimer.has_limits
        if more and self._room() >= self._prefetch.min_claim:
            self._wakeup.ring()

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        assert self._claim_conn is not None
        conn = await self._claim_conn.get()
        claimed = await dependencies.with_parents(conn, await self._claimer.claim(conn, limit))
        # A claim that took anything may have left more: a batch comes back short when one
        # owner's lane runs dry while others still hold jobs (each lane gets its share), or
        # a limit cut it. Only an empty claim says the queues have nothing for us now.
        self._wakeup.more_waiting = bool(claimed)
        self.stats.claimed += len(claimed)
        metrics.started(claimed)  # grouped by series: a few counter bumps a batch
        self._book.add(claimed)
        return claimed

    def _backlogged(self) -> bool:
        # Outcomes waiting for the database: don't pile up more while it is slow.
        return len(self._writer.pending) > 4 * self.concurrency + self.settings.claim_batch

    async def _wait_for_wake(self, burst: bool) -> None:
        await self._wakeup.wait(0.05 if burst else self.settings.poll_interval)

    # ----- news about held attempts ---------------------------------------------------

    def _report(self, attempt: Attempt) -> None:
        self._writer.add(attempt)

    def _after_write(self) -> None:
        self._book.publish()
        if self._wakeup.more_waiting:
            self._wakeup.ring()  # the fetch loop may have paused while outcomes piled up
