"""Server-sent events of a job's state changes, without an events table.

A job's events are derived from its row alone: queued (or scheduled) at creation; for each
attempt, `running` and then its outcome from the `errors` entry; a final `succeeded`. The id of
an event is its index in that list, so `Last-Event-ID` resumes exactly where a stream broke off.
Between them, a `progress` event each time the handler's progress is written (jobrunner.progress;
about once a second at most), without an id.

One `EventHub` per process polls every watched job in one query (`id = ANY($1)`) and wakes
the streams whose job changed: a thousand open streams share one pooled connection. The poll
reads only what events are made of (`job_progress_many`: no args, no result, error messages
truncated), so a watched job costs the same whatever it carries.

It polls every `interval` (0.2 s), and at once when a worker's outcome write rings the
jobrunner_outcomes doorbell (heard by `bell`, a LISTEN connection of the hub's own): a job
that ends is streamed within a round trip of its outcome's commit, not up to an interval
later (scripts/idle_e2e.py measured 200 ms at p50 for a no-op job before). Rings that come
while a poll runs make one more poll after it. A ring heard while a stream was being opened
(between the route's read of the job and `open`) polls again, so its end is not missed.

A hostile or careless client is bounded: streams per user and per process are capped (429
beyond), every stream's session is re-checked every few seconds (all in one query) and the
stream ends once it is logged out or revoked, and no stream outlives `max_seconds`: it then
closes with a `retry:` hint, and EventSource reconnects and resumes with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from jobrunner import client
from jobrunner.accounts import Principal
from jobrunner.api.problems import too_many
from jobrunner.api.progress_events import in_time_order
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.listener import OUTCOMES_CHANNEL, Listener
from jobrunner.models import Job, JobMotion, JobProgress, JobState
from jobrunner.progress import Progress
from jobrunner.settings import Settings

log = structlog.get_logger("jobrunner.api.events")

KEEPALIVE_SECONDS = 15.0
RECONNECT_MILLISECONDS = 10_000  # the `retry:` hint sent when a stream reaches its longest
UNSTARTED_GRACE_SECONDS = 10.0  # a stream admitted but never started (client gone) is freed
RECONNECT_LATER = f"retry: {RECONNECT_MILLISECONDS}\n: longest stream reached; reconnect\n\n"
SERVER_STOPPING = "retry: 2000\n: the server is stopping; reconnect\n\n"
ERROR_CHARS = 500  # of each attempt's error message, in its event
TERMINAL_OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})
POLL_REST = 4.0  # after each poll, rest this many times its length (see EventHub.run)


@dataclass(frozen=True, slots=True)
class JobEvent:
    index: int
    state: str
    attempt: int
    at: datetime | None
    error: str | None = None

    def render(self, job_id: UUID) -> str:
        data: dict[str, Any] = {
            "id": str(job_id),
            "state": self.state,
            "attempt": self.attempt,
            "at": self.at.isoformat() if self.at else None,
        }
        if self.error is not None:
            data["error"] = self.error
        return f"id: {self.index}\nevent: {self.state}\ndata: {json.dumps(data)}\n\n"


Step = tuple[str, int, datetime | None, str | None]


def derive_events(job: Job | JobProgress) -> list[JobEvent]:
    """The job's state changes so far, oldest first, from its row alone."""
    steps = _beginning(job)
    recorded = 0
    for entry in job.errors:
        attempt = int(entry.get("attempt") or 0)
        recorded = max(recorded, attempt)
        if "started_at" in entry:  # not a job cancelled before it ran (a parent failed)
            steps.append(("running", attempt, _time(entry.get("started_at")), None))
        steps.append(
            (
                str(entry.get("outcome") or "retrying"),
                attempt,
                _time(entry.get("finished_at")),
                str(entry.get("error") or ""),
            )
        )
    if job.attempt > recorded and job.started_at is not None:
        steps.append(("running", job.attempt, job.started_at, None))
    if job.state is JobState.SUCCEEDED:
        steps.append(("succeeded", job.attempt, job.finished_at, None))
    elif job.state.is_terminal and steps[-1][0] not in TERMINAL_OUTCOMES:
        steps.append((job.state.value, job.attempt, job.finished_at, None))  # cancelled waiting
    elif not job.state.is_terminal and steps[-1][0] in TERMINAL_OUTCOMES:
        steps.append(("queued", job.attempt, job.run_at, None))  # retried by hand
    return [JobEvent(i, *step) for i, step in enumerate(steps)]


def _beginning(job: Job | JobProgress) -> list[Step]:
    """How the job came to be ready: queued or scheduled; or, with parents, waiting and then
    (once they settled) queued or scheduled. A release's time is known until the job's first
    attempt only: it is the run_at the release set."""
    if not job.has_parents:
        # Claiming leaves run_at alone, so until a first retry it still says whether it waited.
        ready = "scheduled" if not job.errors and job.run_at > job.created_at else "queued"
        return [(ready, 0, job.created_at, None)]
    steps: list[Step] = [("waiting", 0, job.created_at, None)]
    if job.state is JobState.WAITING or (job.state.is_terminal and job.attempt == 0):
        return steps  # still waiting, or cancelled before it ran
    ready = "scheduled" if job.state is JobState.SCHEDULED else "queued"
    fresh = job.attempt == 0 and not job.errors and ready == "queued"
    steps.append((ready, 0, job.run_at if fresh else None, None))
    return steps


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class StreamLimits:
    per_user: int = 20
    total: int = 1000
    max_seconds: float = 3600.0
    session_check_interval: float = 5.0

    @classmethod
    def of(cls, settings: Settings) -> StreamLimits:
        return cls(
            per_user=settings.sse_max_streams_per_user,
            total=settings.sse_max_streams,
            max_seconds=settings.sse_max_stream_seconds,
            session_check_interval=settings.sse_session_check_interval,
        )


@dataclass(eq=False)
class _Watch:
    latest: JobProgress
    username: str
    session_id: UUID
    opened_at: float = field(default_factory=time.monotonic)
    started: bool = False
    ended: bool = False  # its session ended, or it was never started: the stream stops
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    """Polls the watched jobs together and wakes each stream whose job changed."""

    def __init__(
        self, pool: Pool, *, interval: float = 0.2, limits: StreamLimits | None = None
    ) -> None:
        self.pool = pool
        self.interval = interval
        self.limits = limits or StreamLimits()
        self._watches: dict[UUID, set[_Watch]] = {}
        self._per_user: dict[str, int] = {}
        self._open = 0
        self.stopping = False
        self.rings = 0  # outcome doorbells heard so far (see `open`)
        self._rung = asyncio.Event()

    @property
    def rung(self) -> bool:
        """A ring waits for the poller to act on it."""
        return self._rung.is_set()

    def ring(self, _payload: str = "") -> None:
        """Outcomes were written (or the bell reconnected, and some may have been missed):
        poll now rather than at the interval."""
        self.rings += 1
        self._rung.set()

    def bell(self, dsn: str, *, max_backoff: float = 5.0) -> Listener:
        """The LISTEN connection that rings this hub; run it beside `run`."""
        return Listener(
            dsn,
            channels={OUTCOMES_CHANNEL: self.ring},
            on_connected=self.ring,
            role="api-listener",
            max_backoff=max_backoff,
        )

    @property
    def watched(self) -> int:
        """Jobs watched (each read once per poll, however many streams follow it)."""
        return len(self._watches)

    def latest(self, job_id: UUID) -> JobProgress | None:
        """What the streams of a job last learnt of it; None when none watches it."""
        return next((w.latest for w in self._watches.get(job_id, ())), None)

    @property
    def streams(self) -> int:
        return self._open

    async def run(self) -> None:
        next_check = time.monotonic() + self.limits.session_check_interval
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for could lose the app's
            # cancellation at shutdown, and the lifespan then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._rung.wait()
            self._rung.clear()
            if not self._watches:
                continue
            began = time.monotonic()
            try:
                await self.poll_once()
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.limits.session_check_interval
                    await self.check_sessions()
            except Exception:  # a database blip: streams wait, the next poll tries again
                log.warning("event poll failed", exc_info=True)
            # Under load every worker rings at each outcome write, hundreds of times a second:
            # a poll follows the last after a rest of a few times its own length, so polling
            # takes at most 1 / (1 + POLL_REST) of the hub's time, whatever it watches.
            await asyncio.sleep(POLL_REST * (time.monotonic() - began))

    async def poll_once(self) -> None:
        """One narrow read of every watched job; their attempt histories (the errors column,
        which may be large) are read only for the jobs that moved, and the progress of those
        whose handler reported only for those (written at most about once a second)."""
        async with self.pool.acquire() as conn:
            motions = await client.get_motion(list(self._watches), conn=conn)
            moved = [m.id for m in motions if self._moved(m)]
            reported = [m.id for m in motions if m.id not in moved and self._reported(m)]
            if not moved and not reported:
                return
            jobs = (
                await client.get_progress(moved, conn=conn, error_chars=ERROR_CHARS)
                if moved
                else []
            )
            progress = await queries.progress_read_many(conn, reported) if reported else {}
        for job in jobs:
            motion = JobMotion.of(job)
            for watch in self._watches.get(job.id, ()):
                if motion != JobMotion.of(watch.latest) or job.progress != watch.latest.progress:
                    watch.latest = job
                    watch.changed.set()
        for job_id, latest in progress.items():
            for watch in self._watches.get(job_id, ()):
                if latest != watch.latest.progress:
                    watch.latest = replace(watch.latest, progress=latest)
                    watch.changed.set()

    def _moved(self, motion: JobMotion) -> bool:
        return any(motion != JobMotion.of(w.latest) for w in self._watches.get(motion.id, ()))

    def _reported(self, motion: JobMotion) -> bool:
        """Its progress was written since a stream of it last saw (compared apart: a
        progress report is no change of state)."""
        return motion.progress_at is not None and any(
            w.latest.progress is None or w.latest.progress.at != motion.progress_at
            for w in self._watches.get(motion.id, ())
        )

    async def check_sessions(self) -> None:
        """End the streams whose session ended, and free those admitted but never started."""
        watches = [w for ws in self._watches.values() for w in ws]
        sessions = list({(w.session_id, w.username) for w in watches})
        async with self.pool.acquire() as conn:
            answers = await queries.session_live_many(conn, sessions)
        live = {session for session, ok in zip(sessions, answers, strict=True) if ok}
        stale = time.monotonic() - UNSTARTED_GRACE_SECONDS
        for watch in watches:
            ended = (watch.session_id, watch.username) not in live
            if ended or (not watch.started and watch.opened_at < stale):
                watch.ended = True
                watch.changed.set()
                if not watch.started:
                    self._release(watch)

    def stop(self) -> None:
        """The server is stopping: end every stream now, each with a `retry:` hint
        (EventSource reconnects, to this server once it is back or to another). A stream
        left open would hold the graceful shutdown until it is cancelled, with a
        traceback."""
        self.stopping = True
        for watch in [w for ws in self._watches.values() for w in ws]:
            watch.ended = True
            watch.changed.set()

    def open(
        self, job: Job, me: Principal, last_event_id: int | None, *, rings_seen: int | None = None
    ) -> AsyncIterator[str]:
        """Admit a stream of `job` for `me` (429 past the caps) and return its SSE text.
        `rings_seen`: `rings` before `job` was read; a ring since may have been for `job`,
        heard while it had no watch, so the hub polls again."""
        if self.stopping:
            raise too_many("the server is stopping; try again in a moment", 2)
        if self._open >= self.limits.total:
            raise too_many("too many event streams are open on this server; try again later", 5)
        if self._per_user.get(me.username, 0) >= self.limits.per_user:
            cap = self.limits.per_user
            raise too_many(f"you have {cap} event streams open, the most allowed", 5)
        watch = _Watch(JobProgress.of(job), me.username, me.session_id)
        self._watches.setdefault(job.id, set()).add(watch)
        self._per_user[me.username] = self._per_user.get(me.username, 0) + 1
        self._open += 1
        if rings_seen is not None and rings_seen != self.rings and not job.state.is_terminal:
            self._rung.set()
        return self._stream(watch, last_event_id)

    def _release(self, watch: _Watch) -> None:
        watchers = self._watches.get(watch.latest.id)
        if watchers is None or watch not in watchers:
            return
        watchers.discard(watch)
        if not watchers:
            del self._watches[watch.latest.id]
        self._open -= 1
        left = self._per_user.get(watch.username, 1) - 1
        if left > 0:
            self._per_user[watch.username] = left
        else:
            self._per_user.pop(watch.username, None)

    async def _stream(self, watch: _Watch, last_event_id: int | None) -> AsyncIterator[str]:
        """SSE text from after `last_event_id`, ending after a terminal state, when the
        session ends, or at the longest a stream may last."""
        watch.started = True
        deadline = watch.opened_at + self.limits.max_seconds
        sent = -1 if last_event_id is None else last_event_id
        progress_sent: Progress | None = None  # resumed streams get the latest again
        try:
            while not watch.ended:
                current = watch.latest
                progress = current.progress if current.progress != progress_sent else None
                new = [e for e in derive_events(current) if e.index > sent]
                for text in in_time_order(current, new, progress):
                    yield text
                sent = new[-1].index if new else sent
                progress_sent = current.progress
                if current.state.is_terminal:
                    return
                watch.changed.clear()
                left = deadline - time.monotonic()
                if left <= 0:
                    yield RECONNECT_LATER
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(KEEPALIVE_SECONDS, left)):
                        await watch.changed.wait()
                if not watch.changed.is_set() and time.monotonic() < deadline:
                    yield ": keep-alive\n\n"
            yield SERVER_STOPPING if self.stopping else ": session ended\n\n"
        finally:
            self._release(watch)
