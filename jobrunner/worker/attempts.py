"""The attempt book: one record per job this worker holds, from its claim until its outcome
is written (or it is lost, or handed back).

    claim ─▶ READY ─(a slot frees)─▶ RUNNING ─(handler ends)─▶ FINISHED ─(written)─▶ gone
               │                       │  └─(timeout + grace: abandoned)─▶ FINISHED
               └─ cancel: FINISHED      └─ stopped (StopReason): CANCEL ─▶ FINISHED,
                  lost: gone                LOST ─▶ gone, RELEASE ─▶ stays until shutdown
                                             hands it back

Every held attempt's lease is renewed by the heartbeat; `renew_until` (monotonic seconds) is
how long it may be renewed while the event loop is blocked (see heartbeat.py).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from uuid import UUID

import structlog

from jobrunner import tracing
from jobrunner.models import ClaimedJob, Outcome
from jobrunner.progress import ProgressBoard
from jobrunner.settings import Settings
from jobrunner.worker import executor

log = structlog.get_logger("jobrunner.worker")


class AttemptState(enum.Enum):
    READY = "ready"  # claimed (so leased), waiting for a slot
    RUNNING = "running"  # its handler runs
    FINISHED = "finished"  # its outcome waits to be written


class StopReason(enum.IntEnum):
    """Why the worker stopped an attempt; a stronger reason overrides a weaker one."""

    RELEASE = 1  # shutdown: hand the job back to the queue, record nothing
    TIMEOUT = 2  # ran past its timeout plus grace: recorded as timed out, coroutine abandoned
    CANCEL = 3  # a user asked: recorded as cancelled
    LOST = 4  # the lease is gone (another worker may run it): record nothing


@dataclass(slots=True, eq=False)
class Attempt:
    job: ClaimedJob
    limit: float  # seconds its lease may be renewed from its start (timeout + grace, or cap)
    renew_until: float
    state: AttemptState = AttemptState.READY
    stop_reason: StopReason | None = None
    task: asyncio.Task[Outcome] | None = None
    started: float = 0.0  # monotonic
    ended: float = 0.0  # monotonic
    outcome: Outcome | None = None
    overdue: asyncio.TimerHandle | None = field(default=None, repr=False)


class AttemptBook:
    """Holds the attempts and moves them between states. `report` hands a FINISHED attempt
    to the outcome writer; `on_slot_freed` tells the worker a slot came free."""

    def __init__(
        self,
        settings: Settings,
        threads: Executor,
        *,
        concurrency: int,
        report: Callable[[Attempt], None],
        on_slot_freed: Callable[[float], None],
        progress: ProgressBoard | None = None,
    ) -> None:
        self._threads = threads
        self._post_progress = progress.join if progress is not None else None
        self._concurrency = concurrency
        self._grace = settings.timeout_grace
        self._cap = settings.blocked_loop_renew_cap
        self._unknown_task_delay = settings.unknown_task_delay
        self._report = report
        self._on_slot_freed = on_slot_freed
        self.held: dict[UUID, Attempt] = {}
        # A copy of `held` for the heartbeat thread, swapped whole (never changed in place)
        # after each claim batch and each outcome batch: it never reads `held` while the loop
        # changes it, and a blocked loop leaves it complete.
        self.snapshot: dict[UUID, Attempt] = {}
        self._ready: deque[Attempt] = deque()  # may hold stale entries: skipped when popped
        self.ready_count = 0
        self.running_count = 0
        self.abandoned: set[asyncio.Task[Outcome]] = set()
        self.paused = False  # stopping: claimed jobs that never started stay held
        # Each attempt a span (jobrunner.tracing)? Asked once per claim batch, never per job:
        # off, an attempt costs this one test.
        self._traced = False

    # ----- claiming and starting --------------------------------------------------------

    def add(self, jobs: list[ClaimedJob]) -> None:
        now = time.monotonic()
        for job in jobs:
            limit = self._limit(job)
            attempt = Attempt(job, limit, renew_until=now + limit)
            self.held[job.id] = attempt
            self._ready.append(attempt)
        self.ready_count += len(jobs)
        self._traced = tracing.enabled()
        self.publish()
        self.start_ready()

    def publish(self) -> None:
        """Refresh the heartbeat's snapshot: once per batch, never per job."""
        self.snapshot = self.held.copy()

    def start_ready(self) -> None:
        while self._ready and self.running_count < self._concurrency and not self.paused:
            attempt = self._ready.popleft()
            if attempt.state is AttemptState.READY and self.held.get(attempt.job.id) is attempt:
                self._start(attempt)

    def _limit(self, job: ClaimedJob) -> float:
        return job.timeout.total_seconds() + self._grace if job.timeout else self._cap

    def _start(self, attempt: Attempt) -> None:
        self.ready_count -= 1
        self.running_count += 1
        attempt.state = AttemptState.RUNNING
        attempt.started = time.monotonic()
        attempt.renew_until = attempt.started + attempt.limit
        run = executor.run_attempt(
            attempt.job,
            self._threads,
            unknown_task_delay=self._unknown_task_delay,
            report_progress=self._post_progress,
        )
        task = asyncio.create_task(
            tracing.traced_attempt(attempt.job, run) if self._traced else run
        )
        attempt.task = task
        task.add_done_callback(functools.partial(self._on_done, attempt))
        if attempt.job.timeout:
            loop = asyncio.get_running_loop()
            attempt.overdue = loop.call_later(attempt.limit, self._abandon, attempt)

    # ----- ending -----------------------------------------------------------------------

    def _on_done(self, attempt: Attempt, task: asyncio.Task[Outcome]) -> None:
        if task in self.abandoned:  # the timeout already recorded this attempt
            self.abandoned.discard(task)
            log.warning("abandoned handler ended at last", job_id=str(attempt.job.id))
            return
        if attempt.overdue is not None:
            attempt.overdue.cancel()
        self._free_slot(attempt)
        try:
            outcome = task.result()
        except asyncio.CancelledError:
            if attempt.stop_reason is StopReason.CANCEL:
                self._finish(attempt, executor.cancelled(attempt.job))
            elif attempt.stop_reason is StopReason.LOST:
                self._forget(attempt)
            # RELEASE: stays held, so shutdown hands it back to the queue
            return
        except BaseException:  # a bug of ours, not the handler's: keep the job alive
            log.exception("attempt crashed inside the worker", job_id=str(attempt.job.id))
            outcome = executor.worker_error(attempt.job)
        self._finish(attempt, outcome)

    def _free_slot(self, attempt: Attempt) -> None:
        self.running_count -= 1
        attempt.ended = time.monotonic()
        self.start_ready()
        self._on_slot_freed(attempt.ended - attempt.started)

    def _abandon(self, attempt: Attempt) -> None:
        """Past its timeout plus grace the handler still runs (it swallowed its cancellation):
        record it as timed out, free its slot and its lease, and leave the coroutine be."""
        if attempt.state is not AttemptState.RUNNING or attempt.task is None:
            return
        log.error(
            "handler ignored its timeout; abandoning it",
            job_id=str(attempt.job.id),
            task=attempt.job.task,
            timeout=attempt.job.timeout.total_seconds() if attempt.job.timeout else None,
        )
        self.abandoned.add(attempt.task)
        attempt.task.cancel()
        self._free_slot(attempt)
        if attempt.stop_reason is StopReason.LOST:
            self._forget(attempt)
        elif attempt.stop_reason is not StopReason.RELEASE:  # a release is handed back
            attempt.stop_reason = StopReason.TIMEOUT
            self._finish(attempt, executor.timed_out(attempt.job))

    def _finish(self, attempt: Attempt, outcome: Outcome) -> None:
        attempt.state = AttemptState.FINISHED
        attempt.outcome = outcome
        attempt.renew_until = math.inf  # written soon: keep its lease whatever happens
        self._report(attempt)

    def _forget(self, attempt: Attempt) -> None:
        if self.held.get(attempt.job.id) is attempt:
            del self.held[attempt.job.id]

    def written(self, attempt: Attempt) -> None:
        """Its outcome is in the database (or was refused): the job is no longer ours."""
        held, job_id = self.held, attempt.job.id  # _forget, inlined: once per job
        if held.get(job_id) is attempt:
            del held[job_id]

    # ----- stopping ---------------------------------------------------------------------

    def stop(self, job_id: UUID, reason: StopReason) -> None:
        """Stop a held attempt: a running handler is cancelled, a waiting one taken off."""
        attempt = self.held.get(job_id)
        if attempt is None or attempt.state is AttemptState.FINISHED:
            return
        if attempt.stop_reason is reason:
            return
        attempt.stop_reason = max(reason, attempt.stop_reason or reason)
        if attempt.state is AttemptState.RUNNING:  # cancelled again: it may have swallowed one
            assert attempt.task is not None
            attempt.task.cancel()
            return
        # READY: never started. A cancel is recorded, a lost one dropped; a release waits.
        if reason is StopReason.CANCEL:
            self.ready_count -= 1
            self._finish(attempt, executor.cancelled(attempt.job))
        elif reason is StopReason.LOST:
            self.ready_count -= 1
            self._forget(attempt)

    def on_cancel_notice(self, payload: str) -> None:
        """The listener heard that a cancel was asked for this job."""
        try:
            job_id = UUID(payload)
        except ValueError:
            return
        if self.is_live(job_id):
            log.info("cancel requested", job_id=payload)
            self.stop(job_id, StopReason.CANCEL)

    def on_heartbeat(self, still_held: dict[UUID, bool], lost: dict[UUID, int]) -> None:
        """What the heartbeat learnt: cancels asked for, leases lost (id -> attempt)."""
        for job_id, cancel_requested in still_held.items():
            if cancel_requested:
                self.stop(job_id, StopReason.CANCEL)
        for job_id, number in lost.items():
            attempt = self.held.get(job_id)
            if attempt is not None and attempt.job.attempt == number and self.is_live(job_id):
                log.warning("lease lost; abandoning attempt", job_id=str(job_id))
                self.stop(job_id, StopReason.LOST)

    def is_live(self, job_id: UUID) -> bool:
        """Held and not finished: a cancel or a lost lease still concerns it."""
        attempt = self.held.get(job_id)
        return attempt is not None and attempt.state is not AttemptState.FINISHED

    def running_tasks(self) -> list[asyncio.Task[Outcome]]:
        return [
            a.task
            for a in self.held.values()
            if a.state is AttemptState.RUNNING and a.task is not None
        ]

    def unfinished(self) -> list[tuple[UUID, int]]:
        """Held attempts with no outcome: what shutdown hands back to the queue."""
        return [
            (i, a.job.attempt) for i, a in self.held.items() if a.state is not AttemptState.FINISHED
        ]

    def released(self, job_ids: list[UUID]) -> None:
        for job_id in job_ids:
            self.held.pop(job_id, None)
