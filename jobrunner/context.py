"""The job a handler is running: its id, attempt, limits and a logger bound to it.

A handler reaches it two ways, as procrastinate's and River's do:

    from jobrunner import JobContext, current_job, task

    @task(name="report")
    async def report(day: str, job: JobContext) -> None:    # a parameter typed JobContext
        job.log.info("building", day=day)                     # ... job_id, task, attempt bound
        if job.attempt == job.max_attempts: ...
        job.progress(0.5, "half the rows read", data={"rows": 5000})  # see jobrunner.progress

    @task(name="other")
    def other() -> None:
        current_job().log.info("from anywhere below the handler")  # a context variable

The parameter is filled by the worker, never from the job's arguments (and is not one of
them); its name is free. `current_job()` works in async and sync handlers alike (a sync one
runs in a thread with the attempt's context copied) and raises outside a job.

It costs a job next to nothing: one small object and a context variable set per attempt;
the logger is bound only when first used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import structlog
from structlog.typing import FilteringBoundLogger

from jobrunner.errors import JobrunnerError
from jobrunner.progress import ProgressReport, RawReport, checked

log = structlog.get_logger("jobrunner.job")


@dataclass(slots=True)
class JobContext:
    """One attempt of one job, as its handler sees it: read it, do not change it. New fields
    get defaults, so code that builds one (a handler's own tests) keeps working.

    Not frozen on purpose: a frozen dataclass sets each field through object.__setattr__,
    1.0 µs per attempt against 0.35 µs (timeit), and one is built for every attempt.
    """

    id: UUID
    task: str
    attempt: int  # 1 on the first run
    max_attempts: int
    queue: str
    # Called with this context at its first progress report: the worker's ProgressBoard
    # `join`; None in a handler's own tests, which can read `last_progress` instead.
    report_to: Callable[[JobContext], None] | None = field(default=None, repr=False, compare=False)
    raw_progress: RawReport | None = field(default=None, init=False, repr=False, compare=False)
    _log: FilteringBoundLogger | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def log(self) -> FilteringBoundLogger:
        """A structlog logger bound to job_id, task and attempt."""
        if self._log is None:
            bound = log.bind(job_id=str(self.id), task=self.task, attempt=self.attempt)
            self._log = bound  # bound once, on first use
        return self._log

    def progress(
        self, fraction: float, message: str | None = None, *, data: Mapping[str, Any] | None = None
    ) -> None:
        """Say how far this attempt got: `fraction` from 0 to 1, a short message, a small
        JSON object. Raises InvalidProgress on anything out of bounds. Costs no I/O: the
        worker writes the latest report about once a second (jobrunner.progress)."""
        report = checked(fraction, message, data)
        first = self.raw_progress is None
        self.raw_progress = report  # one reference replaced: whole for the writer's thread
        if first and self.report_to is not None:
            self.report_to(self)

    @property
    def last_progress(self) -> ProgressReport | None:
        """This attempt's latest report, or None before its first."""
        raw = self.raw_progress
        return None if raw is None else ProgressReport(self.id, self.attempt, *raw)

    @property
    def is_last_attempt(self) -> bool:
        """A failure now is final (the job ends `failed`)."""
        return self.attempt >= self.max_attempts


_current: ContextVar[JobContext] = ContextVar("jobrunner_job")


def current_job() -> JobContext:
    """The job whose handler is running here; raises JobrunnerError outside a handler."""
    try:
        return _current.get()
    except LookupError:
        raise JobrunnerError("current_job() is only known inside a job's handler") from None


def enter(job: JobContext) -> None:
    """The worker's call, inside the attempt's own asyncio task: each task has a copy of the
    context, so nothing needs resetting when the attempt ends."""
    _current.set(job)
