"""Plain job submissions from concurrent requests, written to the database together.

A submission without an Idempotency-Key cost two round trips of its own (check the session,
insert the job) and a commit. Here, submissions that arrive while a write is in flight wait
for the next write, and that one inserts all their jobs in one statement (job_rows.insert_each,
the insert core's batch form), after one statement that checks the sessions not checked on
the way (queries.session_live_many: those that spent a token taken ahead; with the default
limits every submission takes its own token, and with it a check of its session, so the batch
is one round trip and one commit). Nothing
waits on a timer: a lone submission is written at once, and batches grow only while the
database is busy, so a quiet API answers as fast as before and a busy one does less work per
job.

Each request still gets its own answer: its job, or its own error. A batch that fails for a
reason in its rows (not the database being away) is written again one submission at a time,
so a bad submission fails only its own request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import structlog

from jobrunner.auth import InvalidToken
from jobrunner.db import queries
from jobrunner.db.errors import is_transient
from jobrunner.db.pool import Conn, Pool
from jobrunner.doorbell import Doorbell
from jobrunner.errors import DatabaseUnavailable
from jobrunner.job_rows import JobRows, insert_each
from jobrunner.models import Job, JobState

log = structlog.get_logger("jobrunner.api")


@dataclass(frozen=True, slots=True)
class _Waiting:
    session_id: UUID
    job: JobRows
    done: asyncio.Future[Job]
    session_checked: bool  # found live on the way here, a moment ago


class SubmitBatcher:
    """Writes submissions in batches of up to MAX_BATCH, with up to `writers` batches in
    flight at once (each on its own pooled connection)."""

    MAX_BATCH = 200

    def __init__(self, pool: Pool, doorbell: Doorbell | None, *, writers: int = 2) -> None:
        self._pool = pool
        self._doorbell = doorbell
        self._max_writers = writers
        self._writers: set[asyncio.Task[None]] = set()
        self._waiting: list[_Waiting] = []

    async def submit(self, session_id: UUID, job: JobRows, *, session_checked: bool = False) -> Job:
        """Insert `job` if session `session_id` of the job's owner is live (`session_checked`:
        the caller found it so just now), with whatever else is waiting. Raises InvalidToken
        when the session has ended."""
        if job.dedup_key is not None:  # the batch statement has no conflict to arbitrate
            raise ValueError("a job with a dedup key is inserted on its own (insert_one)")
        done: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(session_id, job, done, session_checked))
        if len(self._writers) < self._max_writers:
            writer = asyncio.create_task(self._write_waiting(), name="jobrunner-submit-writer")
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        return await done

    async def drain(self) -> None:
        """Wait for every submission taken so far to be written (before the pool closes)."""
        while self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)

    def _take(self) -> list[_Waiting]:
        # A request that went away before its turn is not written: nobody was told of it.
        batch = [w for w in self._waiting[: self.MAX_BATCH] if not w.done.done()]
        del self._waiting[: self.MAX_BATCH]
        return batch

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._take()
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Waiting]) -> None:
        try:
            async with self._pool.acquire() as conn:
                if self._doorbell is None:
                    jobs = await _insert_live(conn, batch, ring=False)
                else:
                    # Nothing else ringing: ring in the insert itself, so a worker hears of
                    # the job at its commit, before the 201 goes out (an idle system's
                    # latency), not one round trip after it.
                    with self._doorbell.inserting() as alone:
                        jobs = await _insert_live(conn, batch, ring=alone)
                    if alone:
                        self._answer(batch, jobs, rung=True)
                        return
        except Exception as exc:
            await self._failed(batch, exc)
            return
        except BaseException:  # cancelled (shutdown): nobody is left without an answer
            for w in batch:
                _fail(w, DatabaseUnavailable("the API is shutting down"))
            raise
        self._answer(batch, jobs)

    async def _failed(self, batch: list[_Waiting], exc: Exception) -> None:
        if is_transient(exc):
            for w in batch:
                _fail(w, DatabaseUnavailable(str(exc) or type(exc).__name__))
        elif len(batch) > 1:
            log.warning("a submission batch failed; writing it one by one", error=str(exc))
            for w in batch:
                await self._write([w])
        else:
            _fail(batch[0], exc)

    def _answer(self, batch: list[_Waiting], jobs: list[Job | None], *, rung: bool = False) -> None:
        queued = set()
        for w, job in zip(batch, jobs, strict=True):
            if job is None:
                _fail(w, InvalidToken("session ended"))
                continue
            if not w.done.done():
                w.done.set_result(job)
            if job.state is JobState.QUEUED:
                queued.add(job.queue)
        if self._doorbell is not None and not rung:
            for queue in queued:
                self._doorbell.ring(queue)


async def _insert_live(conn: Conn, batch: list[_Waiting], *, ring: bool) -> list[Job | None]:
    """Insert the jobs whose session is live: the jobs in the batch's order, None where the
    session had ended. `ring`: in the insert's own statement; else the batcher rings after."""
    live = [True] * len(batch)
    unchecked = [i for i, w in enumerate(batch) if not w.session_checked]
    if unchecked:
        pairs = [(batch[i].session_id, batch[i].job.owner or "") for i in unchecked]
        for i, ok in zip(unchecked, await queries.session_live_many(conn, pairs), strict=True):
            live[i] = ok
    jobs = [w.job for w, ok in zip(batch, live, strict=True) if ok]
    inserted = iter(await insert_each(conn, jobs, ring=ring))
    return [next(inserted) if ok else None for ok in live]


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.done.done():
        waiting.done.set_exception(exc)
