"""The options a caller may give its jobs, one list for every way in (jobrunner.job_rows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import TypedDict
from uuid import UUID

from jobrunner.errors import ConfigError
from jobrunner.models import Job, ParentFailure

# A parent named by its job or its id (a UUID, or its text).
Parent = Job | UUID | str


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry delays: doubling from `base` seconds up to `cap` seconds, with jitter."""

    base: float = 1.0
    cap: float = 3600.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ConfigError("backoff needs 0 < base <= cap")


class EnqueueOptions(TypedDict, total=False):
    """The keyword options of `enqueue`, `enqueue_many` and `Task.enqueue`, for type checkers;
    JobOptions holds them at run time (a test checks the two list the same names)."""

    queue: str | None
    priority: int | None
    max_attempts: int | None
    timeout: timedelta | float | None
    backoff: Backoff | None
    delay: timedelta | float | None
    run_at: datetime | None
    dedup_key: str | None
    owner: str | None
    fairness_key: str | None
    callback_url: str | None
    depends_on: Sequence[Parent] | None
    on_parent_failure: ParentFailure | None
    tags: Sequence[str] | None


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What a caller chose for its jobs; None takes the task's default (or now, for the start).

    delay and run_at: give one or neither. dedup_key: a live job of the same task with the
    same key is returned instead of a new one (single jobs only). owner: the API user the job
    belongs to. fairness_key: whose turn the job waits for when workers take turns between
    owners (a tenant id, say); default the owner, else one shared group. callback_url: where
    its outcome is posted (webhooks). depends_on: jobs that must succeed before it runs (it
    waits meanwhile); on_parent_failure: 'cancel' (the default) when one of them fails for
    good or is cancelled, or 'run' anyway (jobrunner.dependencies). tags: labels to find
    the jobs by (lists and bulk actions filter on them); jobrunner.search bounds them."""

    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    timeout: timedelta | float | None = None
    backoff: Backoff | None = None
    delay: timedelta | float | None = None
    run_at: datetime | None = None
    dedup_key: str | None = None
    owner: str | None = None
    fairness_key: str | None = None
    callback_url: str | None = None
    depends_on: Sequence[Parent] | None = None
    on_parent_failure: ParentFailure | None = None
    tags: Sequence[str] | None = None


OPTION_NAMES = frozenset(f.name for f in fields(JobOptions))
NO_OPTIONS = JobOptions()
