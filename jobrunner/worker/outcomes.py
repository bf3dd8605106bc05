"""The outcome writer: finished attempts go to the database in batches.

Whatever finished during one write is written by the next, in one statement
(job_record_outcomes, fenced by attempt and worker); a database away is retried with backoff,
and the attempts stay held (their leases renewed) until their outcomes are in. The jobs that
statement leaves alone, those with children, are written again with their children's
release in a transaction (jobrunner.dependencies.record_with_children).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from jobrunner import dependencies, metrics
from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn, Pool
from jobrunner.models import JobState, Outcome
from jobrunner.worker.attempts import Attempt
from jobrunner.worker.pacing import back_off

if TYPE_CHECKING:
    from jobrunner.worker.progress import ProgressWriter

log = structlog.get_logger("jobrunner.worker")

FLUSH_CHUNK = 2000


def _usable(conn: PoolConnectionProxy[asyncpg.Record]) -> bool:
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:  # the pool took it back when the server closed it
        return False


class HeldConnection:
    """A pooled connection kept across calls, so a claim or a flush costs one round trip
    (no acquire and reset each time). After an error it goes back to the pool, and the next
    call gets a fresh one."""

    def __init__(self, pool: Pool, setup: Callable[[Conn], Awaitable[None]] | None = None) -> None:
        self._pool = pool
        self._setup = setup  # run on each connection taken from the pool
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None

    async def get(self) -> Conn:
        if self._conn is None or not _usable(self._conn):
            conn = await self._pool.acquire()
            if self._setup is not None:
                try:
                    await self._setup(conn)
                except BaseException:
                    await self._pool.release(conn, timeout=1.0)
                    raise
            self._conn = conn
        return self._conn

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*DB_ERRORS):
                await self._pool.release(conn, timeout=1.0)


class OutcomeWriter:
    """`add` queues a finished attempt; `run` writes them, then calls `written` for each."""

    def __init__(
        self,
        *,
        worker_id: str,
        policy: queries.OutcomePolicy,
        recorded: dict[str, int],
        written: Callable[[Attempt], None],
        after_write: Callable[[], None],
        max_back_off: float,
    ) -> None:
        self.conn: HeldConnection | None = None  # set once the worker has its pool
        # Handlers' last progress reports go first (jobrunner.worker.progress): an outcome
        # ends the attempt's hold on the row, and with it the fence progress is written under.
        self.progress: ProgressWriter | None = None
        self._worker_id = worker_id
        self._policy = policy
        self._written = written
        self._after_write = after_write
        self._max_back_off = max_back_off
        self.pending: list[Attempt] = []
        self.recorded = recorded  # outcomes written, by resulting state (and "refused")
        self._ready = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def add(self, attempt: Attempt) -> None:
        self.pending.append(attempt)
        self._ready.set()

    def wake(self) -> None:
        self._ready.set()

    async def run(self) -> None:
        failures = 0
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self.pending:
                batch = self.pending[:FLUSH_CHUNK]
                self.idle.clear()
                try:
                    accepted = await self._write(batch)
                    failures = 0
                except DB_ERRORS as exc:
                    failures += 1
                    assert self.conn is not None
                    await self.conn.drop()
                    self.idle.set()
                    await back_off(failures, exc, max_delay=self._max_back_off, stop=None)
                    continue
                del self.pending[: len(batch)]
                self._settle(batch, accepted)
                self._after_write()
            self.idle.set()

    async def _write(self, batch: list[Attempt]) -> dict[UUID, queries.Recorded]:
        outcomes: list[Outcome] = [a.outcome for a in batch if a.outcome is not None]
        assert self.conn is not None
        conn = await self.conn.get()
        if self.progress is not None and self.progress.busy():
            await self.progress.write_before_outcomes(conn, [(o.id, o.attempt) for o in outcomes])
        recorded = await queries.job_record_outcomes(
            conn, outcomes, worker_id=self._worker_id, policy=self._policy
        )
        if len(recorded) < len(outcomes):  # parents, or attempts taken over meanwhile
            rest = [o for o in outcomes if o.id not in recorded]
            recorded |= await dependencies.record_with_children(
                conn, rest, worker_id=self._worker_id, policy=self._policy
            )
        return recorded

    async def flush_all(self, timeout: float) -> None:
        """At shutdown: write what is pending, for at most `timeout` seconds."""
        self._ready.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending or not self.idle.is_set():
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.01)
        if self.pending:
            log.warning(
                "outcomes not written; those jobs will run again after their lease",
                count=len(self.pending),
            )

    def _settle(self, batch: list[Attempt], accepted: dict[UUID, queries.Recorded]) -> None:
        """Forget the written attempts, count them, and say what became of each job."""
        counts: dict[str, int] = {}
        tally = metrics.FinishedTally()  # the Prometheus series, bumped once per batch
        succeeded = JobState.SUCCEEDED
        quiet = not log.is_enabled_for(logging.DEBUG)  # asked once a batch, not once a job
        for attempt in batch:
            self._written(attempt)
            job = attempt.job
            recorded = accepted.get(job.id)
            if quiet and recorded is not None and recorded.state is succeeded:
                key = succeeded.value  # the common case: counted, no line of its own
                tally.add(job.queue, job.task, key, attempt.ended - attempt.started)
            else:
                key = _log_outcome(attempt, recorded)
                if recorded is not None:
                    _tally_outcome(tally, attempt, recorded)
            counts[key] = counts.get(key, 0) + 1
        tally.flush()
        for key, count in counts.items():
            self.recorded[key] = self.recorded.get(key, 0) + count
        log.info("outcomes written", count=len(batch), **counts)


_OUTCOME_LABELS = {
    JobState.SUCCEEDED: "succeeded",
    JobState.FAILED: "failed",
    JobState.RETRYING: "retried",
    JobState.CANCELLED: "cancelled",
}


def _tally_outcome(
    tally: metrics.FinishedTally, attempt: Attempt, recorded: queries.Recorded
) -> None:
    """An accepted outcome other than the hot path's success, under its outcome label; an
    attempt cancelled before it started has no run time."""
    job, outcome = attempt.job, attempt.outcome
    if recorded.state is JobState.RETRYING and recorded.attempt < job.attempt:
        label = "deferred"
    else:
        label = _OUTCOME_LABELS.get(recorded.state, recorded.state.value)
    ran = attempt.ended - attempt.started if attempt.started else None
    tally.add(job.queue, job.task, label, ran)
    if outcome is not None and outcome.timed_out:
        tally.timed_out(job.queue, job.task)


def _log_outcome(attempt: Attempt, recorded: queries.Recorded | None) -> str:
    """One line per job at the level its fate deserves (a success only at debug: the batch
    summary counts those); returns the key it is counted under."""
    job, outcome = attempt.job, attempt.outcome
    assert outcome is not None
    if recorded is not None and recorded.state is JobState.SUCCEEDED:
        # The common case, on the hot path: no per-job fields unless a line is wanted.
        if log.is_enabled_for(logging.DEBUG):
            log.debug("job succeeded", **_fields(attempt))
        return JobState.SUCCEEDED.value
    fields = _fields(attempt)
    if recorded is None:
        log.warning("outcome refused: the attempt was taken over", **fields)
        return "refused"
    state = recorded.state
    error = json.loads(outcome.error_json)["error"] if outcome.error_json else None
    if state is JobState.RETRYING:
        # A deferral gives its attempt back; a defer past its bound is written as a retry.
        deferred = recorded.attempt < job.attempt
        event = "job deferred" if deferred else "job failed; retrying"
        next_run_at = recorded.run_at.isoformat() if recorded.run_at else None
        log.warning(event, error=error, next_run_at=next_run_at, **fields)
    elif state is JobState.FAILED:
        log.error("job failed", error=error, **fields)
    else:
        log.info("job cancelled", error=error, **fields)
    return state.value


def _fields(attempt: Attempt) -> dict[str, object]:
    job = attempt.job
    return {
        "job_id": str(job.id),
        "task": job.task,
        "attempt": job.attempt,
        "duration_ms": round((attempt.ended - attempt.started) * 1000, 3)
        if attempt.started
        else 0.0,
    }
