"""jobrunner's errors, all under one root so callers can catch them together.

Every subclass of `JobrunnerError` is drawn here, with the module it lives in when that is
not this one (a unit test walks the subclasses and fails on any missing from this tree).

    JobrunnerError
    ├── ConfigError          a setting is missing or unsafe; raised at startup
    ├── UnknownTask          no task is registered under that name
    ├── InvalidArguments     arguments do not match the task's signature
    ├── JobNotFound          no such job (or not visible to the caller)
    ├── JobStateConflict     the job is not in a state that allows the change
    ├── UnknownParent        depends_on names a job that is gone, or not the owner's
    ├── InvalidGraph         (graph) a graph of jobs has a cycle, a bad name, or is too big
    ├── InvalidFilter        (search) tags or an args filter break the bounds
    ├── DatabaseUnavailable  PostgreSQL cannot be reached right now
    ├── InvalidQueueControls a queue's limits are out of bounds
    ├── InvalidProgress      a handler's progress report is out of bounds (also a ValueError)
    ├── UserExists           (accounts) that username is taken
    ├── InvalidAccount       (accounts) a username or password does not meet the rules
    ├── LoginFailed          (accounts) wrong username or password
    ├── AccountDisabled      (accounts) right password, but the account is disabled
    ├── UnknownUser          (accounts) no account of that name
    ├── UserHasJobs          (accounts) an account that owns jobs cannot be deleted
    ├── InvalidToken         (auth) a JWT is malformed, expired, or of the wrong kind
    ├── UnsafeUrl            (webhooks) a callback URL jobrunner refuses to call
    ├── DeliveryFailed       (webhooks) the receiver did not answer 2xx; retried
    ├── QueueAccessDenied    (queues) a user may not submit there, or not with that priority
    ├── GrantNotFound        (queues) the queue was not opened to that user
    ├── InvalidSchedule      (schedules) a schedule's name, task, cron, zone or args are refused
    ├── ScheduleNotFound     (schedules) no schedule of that name
    ├── ScheduleExists       (schedules) a schedule of that name exists already
    ├── ScheduleInCode       (schedules) a code schedule cannot be removed at run time
    └── ApiProblem           (api.problems) an HTTP error with its status and headers
        └── QueueUnserved    (api.served) a user submitted to a queue no worker serves

Handlers signal their outcome with `Retry` and `Cancel`, which are not errors of jobrunner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID


class JobrunnerError(Exception):
    """Root of every error jobrunner raises."""


class ConfigError(JobrunnerError):
    pass


class UnknownTask(JobrunnerError):
    def __init__(self, name: str, near: list[str] | None = None) -> None:
        hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
        super().__init__(f"no task is registered as {name!r}{hint}")
        self.name = name


class InvalidArguments(JobrunnerError):
    def __init__(self, task: str, details: list[dict[str, object]]) -> None:
        super().__init__(f"invalid arguments for task {task!r}: {describe_details(details)}")
        self.task = task
        self.details = details


def describe_details(details: list[dict[str, object]]) -> str:
    """pydantic's error list for a person: `data[0]: Input should be a valid number; b: Field
    required`, never the list's repr."""
    return "; ".join(f"{_where(d.get('loc'))}{d.get('msg', 'invalid')}" for d in details)


def _where(loc: object) -> str:
    if not isinstance(loc, list | tuple) or not loc:
        return ""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return f"{text}: "


class JobNotFound(JobrunnerError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class JobStateConflict(JobrunnerError):
    pass


class UnknownParent(JobrunnerError):
    """A job was to wait for jobs that do not exist (or were pruned), or that belong to
    someone other than its owner: nothing was written."""

    def __init__(self, job_ids: Sequence[UUID]) -> None:
        named = ", ".join(str(i) for i in job_ids) or "?"
        super().__init__(f"depends_on names jobs that do not exist or are not yours: {named}")
        self.job_ids = list(job_ids)


class DatabaseUnavailable(JobrunnerError):
    pass


class InvalidQueueControls(JobrunnerError):
    pass


class InvalidProgress(JobrunnerError, ValueError):
    """Raised at the handler's `job.progress(...)` call, whose arguments are at fault."""


class Retry(Exception):
    """Raised by a handler: run this job again after `after` (counts as an attempt)."""

    def __init__(self, after: timedelta | float | None = None, reason: str = "retry requested"):
        super().__init__(reason)
        seconds = after.total_seconds() if isinstance(after, timedelta) else after
        self.after_seconds = seconds


class Cancel(Exception):
    """Raised by a handler: stop this job for good, in state `cancelled`."""

    def __init__(self, reason: str = "cancelled by handler") -> None:
        super().__init__(reason)
        self.reason = reason
