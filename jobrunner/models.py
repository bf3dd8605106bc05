"""What the rest of the code sees of the database: plain frozen values built from rows.

Jobs, history entries, users, workers and throughput counters; `jobrunner.db.queries`
returns these, never asyncpg Records or dicts. No I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID


class Row(Protocol):
    """A database row read by column name (an asyncpg Record, or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True, slots=True)
class Job:
    id: UUID
    queue: str
    task: str
    args: dict[str, Any] | None  # None: read by a listing that left it out (and result too)
    priority: int
    state: JobState
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    lease_expires_at: datetime | None
    timeout: timedelta | None
    cancel_requested_at: datetime | None
    result: Any
    errors: list[dict[str, Any]]
    dedup_key: str | None
    owner: str | None
    callback_url: str | None
    backoff_base: timedelta | None  # None: the worker's default (JOBRUNNER_BACKOFF_BASE)
    backoff_cap: timedelta | None

    @classmethod
    def from_record(cls, row: Row) -> Job:
        return cls(
            id=row["id"],
            queue=row["queue"],
            task=row["task"],
            args=row["args"],
            priority=row["priority"],
            state=JobState(row["state"]),
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            run_at=row["run_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            worker_id=row["worker_id"],
            lease_expires_at=row["lease_expires_at"],
            timeout=row["timeout"],
            cancel_requested_at=row["cancel_requested_at"],
            result=row["result"],
            errors=row["errors"],
            dedup_key=row["dedup_key"],
            owner=row["owner"],
            callback_url=row["callback_url"],
            backoff_base=row["backoff_base"],
            backoff_cap=row["backoff_cap"],
        )

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.errors[-1] if self.errors else None


@dataclass(frozen=True, slots=True)
class JobProgress:
    """What a job's event stream needs of it: its state and times, and of each attempt's
    error entry only the times, outcome and a truncated message (no args, no result)."""

    id: UUID
    state: JobState
    attempt: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[dict[str, Any]]

    @classmethod
    def from_record(cls, row: Row) -> JobProgress:
        return cls(
            id=row["id"],
            state=JobState(row["state"]),
            attempt=row["attempt"],
            run_at=row["run_at"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            errors=row["errors"],
        )

    @classmethod
    def of(cls, job: Job) -> JobProgress:
        return cls(
            job.id, job.state, job.attempt, job.run_at, job.created_at, job.started_at,
            job.finished_at, job.errors,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobMotion:
    """Where a job stands, cheaply read: what changes whenever a job changes state (its
    attempt history only ever grows as it leaves `running`)."""

    id: UUID
    state: JobState
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_record(cls, row: Row) -> JobMotion:
        return cls(
            row["id"], JobState(row["state"]), row["attempt"], row["started_at"],
            row["finished_at"],
        )  # fmt: skip

    @classmethod
    def of(cls, job: Job | JobProgress) -> JobMotion:
        return cls(job.id, job.state, job.attempt, job.started_at, job.finished_at)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run one attempt.

    The (id, attempt, worker) triple fences the attempt's outcome.
    """

    id: UUID
    queue: str
    task: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    timeout: timedelta | None
    priority: int = 0
    fairness_key: str = ""  # whose turn it was: the claim's cursor moves past it


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One finished job as the jobrunner.history view shows it."""

    id: UUID
    queue: str
    task: str
    state: JobState
    attempt: int
    max_attempts: int
    owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime
    run_duration: timedelta | None
    total_duration: timedelta
    result: Any
    last_error: str | None

    @classmethod
    def from_row(cls, row: Row) -> HistoryEntry:
        values = {name: row[name] for name in cls.__slots__}
        values["state"] = JobState(row["state"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs of one queue per state; a count equal to `cap` means "at least"."""

    queue: str
    states: dict[str, int]
    cap: int


@dataclass(frozen=True, slots=True)
class ThroughputMinute:
    """Outcomes of one minute in one queue, as the throughput counters hold them."""

    minute: datetime
    queue: str
    succeeded: int
    failed: int
    retried: int
    cancelled: int

    @classmethod
    def from_row(cls, row: Row) -> ThroughputMinute:
        return cls(
            row["minute"],
            row["queue"],
            row["succeeded"],
            row["failed"],
            row["retried"],
            row["cancelled"],
        )


Role = Literal["user", "admin"]


@dataclass(frozen=True, slots=True)
class User:
    """An API account (its password hash is never read with it)."""

    username: str
    role: Role
    created_at: datetime
    webhook_secret: str
    disabled: bool = False  # cannot log in: disabled by an admin, or awaiting approval

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @classmethod
    def from_row(cls, row: Row) -> User:
        return cls(
            row["username"],
            row["role"],
            row["created_at"],
            row["webhook_secret"],
            row["disabled_at"] is not None,
        )


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker process as the registry (jobrunner.workers) knows it. `live`: not stopped,
    and seen within JOBRUNNER_WORKER_SEEN_TIMEOUT; `running`: jobs it holds now."""

    id: str
    host: str
    pid: int
    queues: list[str]
    tasks: list[str]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    live: bool
    running: int

    @classmethod
    def from_row(cls, row: Row) -> WorkerInfo:
        return cls(
            row["id"],
            row["host"],
            row["pid"],
            list(row["queues"]),
            list(row["tasks"]),
            row["concurrency"],
            row["started_at"],
            row["last_seen_at"],
            row["stopped_at"],
            row["live"],
            int(row["running"]),
        )


class OutcomeKind(enum.StrEnum):
    """What the worker reports of one attempt; job_record_outcomes says what each makes of
    the job (a retry with attempts spent is failed; a defer past the bound counts as a retry)."""

    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    FAILED = "failed"  # for good, whatever attempts remain
    RETRY = "retry"
    DEFER = "defer"  # given back without spending the attempt


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's end, as the worker reports it.

    result_json and error_json are already JSON text, so one unencodable result fails its own
    attempt instead of the whole batch it is written with. retry_delay: seconds to wait
    before the next attempt; None for a retry waits the job's own backoff (on its row).
    """

    id: UUID
    attempt: int
    kind: OutcomeKind
    result_json: str | None = None
    error_json: str | None = None
    retry_delay: float | None = None
