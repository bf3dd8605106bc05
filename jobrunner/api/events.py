"""Server-sent events of a job's state changes, without an events table.

A job's events are derived from its row alone: queued (or scheduled) at creation; for each
attempt, `running` and then its outcome from the `errors` entry; a final `succeeded`. The id of
an event is its index in that list, so `Last-Event-ID` resumes exactly where a stream broke off.

One `EventHub` per process polls every watched job in one query (`id = ANY($1)`) and wakes
the streams whose job changed: a thousand open streams share one pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog

from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.models import Job, JobState

log = structlog.get_logger("jobrunner.api.events")

KEEPALIVE_SECONDS = 15.0
TERMINAL_OUTCOMES = frozenset({"succeeded", "failed", "cancelled"})


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


def derive_events(job: Job) -> list[JobEvent]:
    """The job's state changes so far, oldest first, from its row alone."""
    # Claiming leaves run_at alone, so until a first retry it still says whether it waited.
    waiting = "scheduled" if not job.errors and job.run_at > job.created_at else "queued"
    steps: list[tuple[str, int, datetime | None, str | None]] = [(waiting, 0, job.created_at, None)]
    recorded = 0
    for entry in job.errors:
        attempt = int(entry.get("attempt") or 0)
        recorded = max(recorded, attempt)
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


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(eq=False)
class _Watch:
    latest: Job
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class EventHub:
    """Polls the watched jobs together and wakes each stream whose job changed."""

    def __init__(self, pool: Pool, *, interval: float = 0.2) -> None:
        self.pool = pool
        self.interval = interval
        self._watches: dict[UUID, set[_Watch]] = {}

    @property
    def watched(self) -> int:
        """Jobs watched (each read once per poll, however many streams follow it)."""
        return len(self._watches)

    @property
    def streams(self) -> int:
        return sum(len(watches) for watches in self._watches.values())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self._watches:
                continue
            try:
                await self.poll_once()
            except Exception:  # a database blip: streams wait, the next poll tries again
                log.warning("event poll failed", exc_info=True)

    async def poll_once(self) -> None:
        async with self.pool.acquire() as conn:
            jobs = await client.get_jobs(list(self._watches), conn=conn)
        for job in jobs:
            for watch in self._watches.get(job.id, ()):
                if _fingerprint(job) != _fingerprint(watch.latest):
                    watch.latest = job
                    watch.changed.set()

    async def stream(self, job: Job, last_event_id: int | None) -> AsyncIterator[str]:
        """SSE text for `job` from after `last_event_id`, ending after a terminal state."""
        watch = _Watch(job)
        self._watches.setdefault(job.id, set()).add(watch)
        sent = -1 if last_event_id is None else last_event_id
        try:
            while True:
                current = watch.latest
                for event in derive_events(current):
                    if event.index > sent:
                        yield event.render(current.id)
                        sent = event.index
                if current.state.is_terminal:
                    return
                watch.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KEEPALIVE_SECONDS):
                        await watch.changed.wait()
                if not watch.changed.is_set():
                    yield ": keep-alive\n\n"
        finally:
            watchers = self._watches.get(job.id)
            if watchers is not None:
                watchers.discard(watch)
                if not watchers:
                    del self._watches[job.id]


def _fingerprint(job: Job) -> tuple[Any, ...]:
    return (job.state, job.attempt, len(job.errors), job.started_at, job.finished_at)
