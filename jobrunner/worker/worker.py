"""The worker: claims jobs in batches, runs them as asyncio tasks, records outcomes in batches.

Pieces, each on its own task or thread:
- the fetch loop claims up to the free slots in one statement (SKIP LOCKED), woken by the
  listener's doorbell, by a freed slot when more work is waiting, or by a jittered poll;
- each attempt runs as its own asyncio task (executor.run_attempt);
- the flush loop writes finished outcomes, batching whatever piled up during the last write;
- the heartbeat thread renews leases of every attempt held (running, or finished but not yet
  written), and reports lost leases and cancel requests back;
- maintenance, under an advisory lock, promotes due jobs, rescues leases and prunes.

An attempt is held from its claim until its outcome is written. A worker that dies holding
attempts loses nothing: their leases expire and maintenance queues them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import secrets
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn, Pool, create_pool, wait_for_database
from jobrunner.db.queries import Outcome
from jobrunner.models import ClaimedJob, JobState
from jobrunner.settings import Settings
from jobrunner.webhooks import delivery_rows
from jobrunner.worker.executor import AttemptStopped, run_attempt
from jobrunner.worker.heartbeat import Heartbeat
from jobrunner.worker.listener import Listener
from jobrunner.worker.maintenance import Maintenance

log = structlog.get_logger("jobrunner.worker")

FLUSH_CHUNK = 2000
# Claim ahead of the free slots only as many jobs as the slots are expected to finish within
# this many seconds: short jobs are claimed in big batches (few round trips), long ones are
# never hoarded away from idle workers.
PREFETCH_HORIZON = 0.005
CANCELLED_ERROR = '{"error":"cancelled on request"}'


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _usable(conn: PoolConnectionProxy[asyncpg.Record]) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when the server closed it
        return False


class HeldConnection:
    """A pooled connection kept across calls, so a claim or a flush costs one round trip
    (no acquire and reset each time). After an error it goes back to the pool, and the next
    call gets a fresh one."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None

    async def get(self) -> Conn:
        if self._conn is None or not _usable(self._conn):
            self._conn = await self._pool.acquire()
        return self._conn

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self._pool.release(conn, timeout=1.0)


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
        self._active: dict[UUID, asyncio.Task[Outcome]] = {}
        # Claimed a little ahead of the free slots, so the next claim's round trip overlaps
        # the running attempts; each starts the moment a slot frees. Held, so leased.
        self._ready: deque[ClaimedJob] = deque()
        self._avg_duration = PREFETCH_HORIZON  # seconds per attempt, moving average
        self._prefetch = self.concurrency
        self._held: dict[UUID, int] = {}  # id -> attempt, from claim until outcome written
        self._stop_reason: dict[UUID, str] = {}  # "release" | "lost"
        self._cancel_requested: set[UUID] = set()
        self._pending: list[Outcome] = []
        self._reported: set[UUID] = set()
        self._outcomes_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._more_waiting = True
        self._stopping = asyncio.Event()
        self._skip_drain = asyncio.Event()
        self._flush_idle = asyncio.Event()
        self._flush_idle.set()
        self._background: list[asyncio.Task[Any]] = []
        self._heartbeat: Heartbeat | None = None
        self._claim_conn: HeldConnection | None = None
        self._flush_conn: HeldConnection | None = None
        self._outcome_policy = queries.OutcomePolicy(
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
            max_deferrals=settings.unknown_task_max_deferrals,
            delivery=delivery_rows(),
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
                running=len(self._active),
            )
            self._stopping.set()
        self._wake.set()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    async def run(self, *, burst: bool = False) -> WorkerStats:
        """Work until asked to stop (or, with burst, until no job is left to claim)."""
        pool = await self._open_pool()
        if pool is None:  # asked to stop while waiting for the database
            return self.stats
        self._claim_conn, self._flush_conn = HeldConnection(pool), HeldConnection(pool)
        log.info(
            "worker started",
            worker_id=self.worker_id,
            queues=self.queues,
            concurrency=self.concurrency,
            burst=burst,
        )
        self._start_background(pool, burst)
        fetch = asyncio.create_task(self._fetch_loop(pool, burst), name="jobrunner-fetch")
        try:
            await fetch
            await self._drain()
            await self._release_unfinished(pool)
            await self._final_flush()
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
        """After `run()`: handlers still running though told to stop. Coroutines that swallowed
        their cancellation, and sync functions, whose threads nothing can cancel. Their jobs
        were handed back already; the process should exit without waiting for them."""
        ours = [t for t in threading.enumerate() if t.name.startswith(self._thread_prefix)]
        deadline = time.monotonic() + grace

        def still_busy() -> int:  # idle pool threads exit at once on shutdown; busy ones don't
            for thread in ours:
                thread.join(max(0.0, deadline - time.monotonic()))
            return sum(t.is_alive() for t in ours)

        return len(self._active) + await asyncio.to_thread(still_busy)

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

    def _start_background(self, pool: Pool, burst: bool) -> None:
        spawn = self._background.append
        spawn(asyncio.create_task(self._flush_loop(pool), name="jobrunner-flush"))
        if self.settings.listen and not burst:
            listener = Listener(
                self.dsn,
                on_jobs=self._on_doorbell,
                on_cancel=self._on_cancel_notice,
                on_connected=self._on_listener_connected,
                check_interval=max(self.settings.poll_interval * 5, 1.0),
                max_backoff=self.settings.reconnect_max_delay,
            )
            spawn(asyncio.create_task(listener.run(), name="jobrunner-listener"))
        if self._with_maintenance and not burst:
            maintenance = Maintenance(pool, self.settings)
            spawn(asyncio.create_task(maintenance.run_forever(), name="jobrunner-maintenance"))
        if self._with_heartbeat:
            self._heartbeat = Heartbeat(
                self.dsn,
                worker_id=self.worker_id,
                interval=self.settings.heartbeat_interval,
                lease_seconds=self.settings.lease_seconds,
                held=self._held.copy,
                on_result=self._on_heartbeat,
            )
            spawn(asyncio.create_task(self._heartbeat.keep_alive(), name="jobrunner-alive"))
            self._heartbeat.start()

    async def _drain(self) -> None:
        """Let running attempts finish, up to the drain timeout or a second stop request."""
        if not self._active or self._skip_drain.is_set():
            return
        running: asyncio.Future[Any] = asyncio.gather(
            *self._active.values(), return_exceptions=True
        )
        skip: asyncio.Future[Any] = asyncio.create_task(self._skip_drain.wait())
        await asyncio.wait(
            {running, skip},
            timeout=self.settings.drain_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        skip.cancel()
        if not running.done():
            running.cancel()

    async def _release_unfinished(self, pool: Pool) -> None:
        """Stop what still runs and hand it back to the queue at once, not after its lease."""
        for job_id, attempt_task in list(self._active.items()):
            self._stop_reason.setdefault(job_id, "release")
            attempt_task.cancel()
        if self._active:
            # A handler that swallows cancellation cannot hold the shutdown hostage.
            await asyncio.wait(list(self._active.values()), timeout=1.0)
        unfinished = [(i, a) for i, a in self._held.items() if i not in self._reported]
        if not unfinished:
            return
        try:
            async with pool.acquire() as conn:
                released = await queries.job_release_many(
                    conn, unfinished, worker_id=self.worker_id
                )
        except DB_ERRORS as exc:
            log.warning("could not release jobs; their leases will expire", error=str(exc))
            return
        for job_id in released:
            self._held.pop(job_id, None)
        log.info("released unfinished jobs to the queue", count=len(released))

    async def _final_flush(self) -> None:
        self._outcomes_ready.set()
        deadline = asyncio.get_running_loop().time() + max(self.settings.drain_timeout, 5.0)
        while self._pending or not self._flush_idle.is_set():
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.01)
        if self._pending:
            log.warning(
                "outcomes not written; those jobs will run again after their lease",
                count=len(self._pending),
            )

    async def _close(self, fetch: asyncio.Task[None]) -> None:
        fetch.cancel()
        for task in self._background:
            task.cancel()
        await asyncio.gather(fetch, *self._background, return_exceptions=True)
        if self._heartbeat is not None:
            await asyncio.to_thread(self._heartbeat.stop)
        for held in (self._claim_conn, self._flush_conn):
            if held is not None:
                await held.drop()
        self._threads.shutdown(wait=False, cancel_futures=True)
        if self._owns_pool and self._pool is not None:
            if self._active:  # a stuck handler may hold a connection: close() would wait
                self._pool.terminate()
            else:
                await self._pool.close()

    # ----- claiming -------------------------------------------------------------------

    async def _fetch_loop(self, pool: Pool, burst: bool) -> None:
        failures = 0
        while not self._stopping.is_set():
            room = self._room()
            if room >= self._min_claim and not self._backlogged():
                try:
                    claimed = await self._claim(min(room, self.settings.claim_batch))
                    failures = 0
                except DB_ERRORS as exc:
                    failures += 1
                    assert self._claim_conn is not None
                    await self._claim_conn.drop()
                    await self._back_off(failures, exc)
                    continue
                if burst and not claimed and not (self._active or self._ready or self._pending):
                    return
            if self._stopping.is_set():
                return
            if self._room() < self._min_claim or not self._more_waiting or self._backlogged():
                await self._wait_for_wake(burst)

    def _room(self) -> int:
        return self.concurrency + self._prefetch - len(self._active) - len(self._ready)

    @property
    def _min_claim(self) -> int:
        # Without prefetch, claim for any free slot; with it, wait for a decent batch.
        return max(1, self._prefetch // 2)

    def _learn_duration(self, seconds: float) -> None:
        self._avg_duration += (seconds - self._avg_duration) * 0.01
        expected = self.concurrency * PREFETCH_HORIZON / max(self._avg_duration, 1e-6)
        self._prefetch = min(self.settings.claim_batch, int(expected))

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        assert self._claim_conn is not None
        claimed = await queries.job_claim(
            await self._claim_conn.get(),
            queues=self.queues,
            worker_id=self.worker_id,
            limit=limit,
            lease_seconds=self.settings.lease_seconds,
        )
        self._more_waiting = len(claimed) == limit
        self.stats.claimed += len(claimed)
        for job in claimed:
            self._held[job.id] = job.attempt
        self._ready.extend(claimed)
        self._start_ready()
        return claimed

    def _start_ready(self) -> None:
        # Once stopping, claimed jobs that never started stay held: shutdown releases them.
        while self._ready and len(self._active) < self.concurrency:
            if self._stopping.is_set():
                return
            self._start_attempt(self._ready.popleft())

    def _backlogged(self) -> bool:
        # Outcomes waiting for the database: don't pile up more while it is slow.
        return len(self._pending) > 4 * self.concurrency + self.settings.claim_batch

    async def _wait_for_wake(self, burst: bool) -> None:
        interval = 0.05 if burst else self.settings.poll_interval
        try:
            # Jitter below the interval, never above it: a job waits at most one interval.
            await asyncio.wait_for(self._wake.wait(), timeout=interval * random.uniform(0.8, 1.0))
        except TimeoutError:
            self._more_waiting = True  # the poll: look again whatever we were told
        self._wake.clear()

    async def _back_off(
        self, failures: int, exc: BaseException, *, interruptible: bool = True
    ) -> None:
        delay = min(self.settings.reconnect_max_delay, 0.05 * 2 ** min(failures, 10))
        log.warning(
            "database unavailable; retrying",
            error=str(exc) or type(exc).__name__,
            retry_in=round(delay, 3),
        )
        if not interruptible:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    def _on_doorbell(self, queue: str) -> None:
        if queue in self.queues:
            self._more_waiting = True
            self._wake.set()

    def _on_listener_connected(self) -> None:
        self._more_waiting = True
        self._wake.set()

    # ----- running attempts -----------------------------------------------------------

    def _start_attempt(self, job: ClaimedJob) -> None:
        attempt_task = asyncio.create_task(
            run_attempt(job, self.settings, self._threads, self._cancel_requested)
        )
        self._active[job.id] = attempt_task
        attempt_task.add_done_callback(
            functools.partial(self._on_attempt_done, job, asyncio.get_running_loop().time())
        )

    def _on_attempt_done(
        self, job: ClaimedJob, started: float, attempt_task: asyncio.Task[Outcome]
    ) -> None:
        self._active.pop(job.id, None)
        self._learn_duration(asyncio.get_running_loop().time() - started)
        self._start_ready()
        if self._more_waiting and self._room() >= self._min_claim:
            self._wake.set()
        cancel_requested = job.id in self._cancel_requested
        self._cancel_requested.discard(job.id)
        reason = self._stop_reason.pop(job.id, None)
        try:
            outcome = attempt_task.result()
        except (AttemptStopped, asyncio.CancelledError):
            if reason == "lost":
                self._held.pop(job.id, None)
                return
            if not cancel_requested:
                return  # "release": stays held, so shutdown hands it back to the queue
            # Cancelled before its handler even started.
            outcome = Outcome(job.id, job.attempt, "cancelled", error_json=CANCELLED_ERROR)
        except BaseException:  # a bug of ours, not the handler's: keep the job alive
            log.exception("attempt crashed inside the worker", job_id=str(job.id))
            outcome = Outcome(
                job.id,
                job.attempt,
                "retry",
                error_json='{"error":"worker error"}',
            )
        self._report(outcome)

    def _report(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._reported.add(outcome.id)
        self._outcomes_ready.set()

    def _stop_attempt(self, job_id: UUID, reason: str) -> None:
        attempt_task = self._active.get(job_id)
        if attempt_task is None:
            self._stop_waiting(job_id, reason)
            return
        if reason == "cancel":
            self._cancel_requested.add(job_id)
        else:
            self._stop_reason[job_id] = reason
        attempt_task.cancel()

    def _stop_waiting(self, job_id: UUID, reason: str) -> None:
        """Stop a claimed job that has not started: a cancel is recorded, a lost one dropped."""
        job = next((j for j in self._ready if j.id == job_id), None)
        if job is None:
            return
        self._ready.remove(job)
        if reason == "cancel":
            self._report(Outcome(job.id, job.attempt, "cancelled", error_json=CANCELLED_ERROR))
        elif reason == "lost":
            self._held.pop(job.id, None)

    def _on_cancel_notice(self, payload: str) -> None:
        try:
            job_id = UUID(payload)
        except ValueError:
            return
        if job_id in self._held and job_id not in self._reported:
            log.info("cancel requested", job_id=payload)
            self._stop_attempt(job_id, "cancel")

    def _on_heartbeat(self, still_held: dict[UUID, bool], lost: set[UUID]) -> None:
        for job_id, cancel_requested in still_held.items():
            if cancel_requested and job_id not in self._cancel_requested:
                self._stop_attempt(job_id, "cancel")
        for job_id in lost:
            if job_id in self._held and job_id not in self._reported:
                log.warning("lease lost; abandoning attempt", job_id=str(job_id))
                self._stop_attempt(job_id, "lost")

    # ----- recording outcomes ---------------------------------------------------------

    async def _flush_loop(self, pool: Pool) -> None:
        failures = 0
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            while self._pending:
                batch = self._pending[:FLUSH_CHUNK]
                self._flush_idle.clear()
                assert self._flush_conn is not None
                try:
                    accepted = await queries.job_record_outcomes(
                        await self._flush_conn.get(),
                        batch,
                        worker_id=self.worker_id,
                        policy=self._outcome_policy,
                    )
                    failures = 0
                except DB_ERRORS as exc:
                    failures += 1
                    await self._flush_conn.drop()
                    self._flush_idle.set()
                    await self._back_off(failures, exc, interruptible=False)
                    continue
                del self._pending[: len(batch)]
                self._forget(batch, accepted)
                if self._more_waiting:
                    self._wake.set()  # the fetch loop may have paused while outcomes piled up
            self._flush_idle.set()

    def _forget(self, batch: list[Outcome], accepted: dict[UUID, JobState]) -> None:
        recorded = self.stats.recorded
        for outcome in batch:
            self._held.pop(outcome.id, None)
            self._reported.discard(outcome.id)
            state = accepted.get(outcome.id)
            if state is None:
                log.warning(
                    "outcome refused: the attempt was taken over",
                    job_id=str(outcome.id),
                    attempt=outcome.attempt,
                )
                key = "refused"
            else:
                key = state.value
            recorded[key] = recorded.get(key, 0) + 1
