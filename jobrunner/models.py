"""What the rest of the code sees of the database: plain frozen values built from rows.

Jobs, history entries, users, workers and throughput counters; `jobrunner.db.queries`
returns these, never asyncpg Records or dicts. No I/O here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol
from uuid import UUID

from jobrunner.errors import InvalidQueueControls
from jobrunner.progress import Progress, progress_of


class Row(Protocol):
    """A database row read by column name (an asyncpg Record, or a dict in tests)."""

    def __getitem__(self, key: str, /) -> Any: ...


class JobState(enum.StrEnum):
    WAITING = "waiting"  # for its parents (jobrunner.dependencies)
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
# A state's text (as rows bring it) to its member: a dict lookup, where JobState(text) walks
# enum's __new__ (a microsecond a row on the outcome write's and the insert's paths).
STATE_OF: dict[str, JobState] = {state.value: state for state in JobState}

# Where a job's parents are kept, in the order it named them: in its args, so that a worker's
# claim, which returns the args, brings them along. Never a task's argument name (a dot).
PARENTS_KEY = "jobrunner.parents"
ParentFailure = Literal["cancel", "run"]


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
    pending_parents: int | None = None  # None: a job without parents
    on_parent_failure: ParentFailure | None = None
    child_added_at: datetime | None = None  # None: it never had a child
    tags: tuple[str, ...] = ()
    progress: Progress | None = None  # None: never reported (or a listing, which skips it)

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
            pending_parents=row["pending_parents"],
            on_parent_failure=row["on_parent_failure"],
            child_added_at=row["child_added_at"],
            tags=tuple(row["tags"]),
            progress=progress_of(row),
        )

    @property
    def last_error(self) -> dict[str, Any] | None:
        return self.errors[-1] if self.errors else None

    @property
    def has_parents(self) -> bool:
        return self.pending_parents is not None

    @property
    def parents(self) -> tuple[UUID, ...]:
        """Its parents in the order it named them; () when it has none or its args were not
        read (a listing)."""
        return parent_ids(self.args)

    @property
    def user_args(self) -> dict[str, Any] | None:
        """Its args as the task takes them: without its parents."""
        return without_parents(self.args)


def parent_ids(args: dict[str, Any] | None) -> tuple[UUID, ...]:
    if not args or PARENTS_KEY not in args:
        return ()
    return tuple(UUID(str(parent)) for parent in args[PARENTS_KEY])


def without_parents(args: dict[str, Any] | None) -> dict[str, Any] | None:
    if args is None or PARENTS_KEY not in args:
        return args
    return {name: value for name, value in args.items() if name != PARENTS_KEY}


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
    has_parents: bool = False  # its life starts `waiting`
    progress: Progress | None = None  # what its handler last reported (jobrunner.progress)

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
            has_parents=row["has_parents"],
            progress=progress_of(row),
        )

    @classmethod
    def of(cls, job: Job) -> JobProgress:
        return cls(
            job.id, job.state, job.attempt, job.run_at, job.created_at, job.started_at,
            job.finished_at, job.errors, job.has_parents, job.progress,
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
    # When its progress was last written. Not compared: a progress report is no change of
    # state, and the event stream reads it apart (jobrunner.api.events).
    progress_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def from_record(cls, row: Row) -> JobMotion:
        return cls(
            row["id"], JobState(row["state"]), row["attempt"], row["started_at"],
            row["finished_at"], row["progress_at"],
        )  # fmt: skip

    @classmethod
    def of(cls, job: Job | JobProgress) -> JobMotion:
        at = job.progress.at if job.progress is not None else None
        return cls(job.id, job.state, job.attempt, job.started_at, job.finished_at, at)


@dataclass(slots=True, eq=False)
class ClaimedJob:
    """What a worker needs to run one attempt.

    The (id, attempt, worker) triple fences the attempt's outcome. Read-only by convention,
    not frozen: one is made for every claimed job, and a frozen dataclass sets its fields
    through object.__setattr__ (1.2 µs against 0.4 µs for these twelve, timeit).
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
    # Its parents' ends, read after the claim (jobrunner.dependencies.with_parents); None:
    # it has parents but they could not be read, so it is put back without running.
    parents: tuple[ParentResult, ...] | None = ()
    # The trace it was made in (jobrunner.tracing); None: made outside one, or tracing off.
    trace_context: dict[str, str] | None = None
    # Seconds from its run_at to its claim, by the database's clock (jobrunner.metrics).
    waited: float = 0.0
    # Its place in its lane (with id): where the claims have reached (jobrunner.worker.lanes).
    run_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParentResult:
    """How one of a job's parents ended, as its handler sees it (`parent_results()`): its
    result when it succeeded; its last error when it failed or was cancelled (a child that
    runs anyway)."""

    id: UUID
    task: str
    state: JobState
    result: Any
    error: str | None

    @classmethod
    def from_row(cls, row: Row) -> ParentResult:
        return cls(row["id"], row["task"], JobState(row["state"]), row["result"], row["error"])


@dataclass(frozen=True, slots=True)
class JobDependent:
    """A child as the statement that linked it to its parents left it (job_dependencies_add):
    still waiting, or released, or cancelled by a parent that had failed already."""

    id: UUID
    state: JobState
    run_at: datetime
    finished_at: datetime | None
    errors: list[dict[str, Any]]
    pending_parents: int
    on_parent_failure: ParentFailure

    @classmethod
    def from_row(cls, row: Row) -> JobDependent:
        return cls(
            row["id"], JobState(row["state"]), row["run_at"], row["finished_at"], row["errors"],
            row["pending_parents"], row["on_parent_failure"],
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class JobLink:
    """A parent or child of a job, as far as the reader may see it: task and state are None
    for a parent pruned since (or, for an admin's own, not theirs to see)."""

    id: UUID
    task: str | None
    state: JobState | None

    @classmethod
    def from_row(cls, row: Row) -> JobLink:
        state = row["state"]
        return cls(row["id"], row["task"], JobState(state) if state is not None else None)


@dataclass(frozen=True, slots=True)
class JobLinks:
    """A job's parents (in the order it named them) and its first children, with how many
    children it has."""

    parents: tuple[JobLink, ...] = ()
    parents_total: int = 0
    children: tuple[JobLink, ...] = ()
    children_total: int = 0


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
    parents: tuple[UUID, ...] = ()  # in the order the job named them
    has_children: bool = False
    tags: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Row) -> HistoryEntry:
        values = {name: row[name] for name in cls.__slots__}
        values["state"] = JobState(row["state"])
        values["parents"] = tuple(UUID(str(p)) for p in row["parents"] or ())
        values["tags"] = tuple(row["tags"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs of one queue per state, each state counted up to `cap`. A count is "at least"
    when it reached the cap, or when the state's count over all queues did (`capped`): the
    capped read stops at the cap wherever it is, so every queue's count of it is partial."""

    queue: str
    states: dict[str, int]
    cap: int
    capped: frozenset[str] = frozenset()

    def at_least(self, state: str) -> bool:
        """Whether this state's count is only a lower bound."""
        return state in self.capped or self.states.get(state, 0) >= self.cap

    @classmethod
    def of_rows(
        cls, rows: Iterable[tuple[str, str, int]], cap: int, states: Iterable[str]
    ) -> dict[str, QueueCounts]:
        """Per-queue counts from (queue, state, count) rows read with one cap per state."""
        names = tuple(states)
        by_queue: dict[str, dict[str, int]] = {}
        totals: dict[str, int] = {}
        for queue, state, count in rows:
            by_queue.setdefault(queue, dict.fromkeys(names, 0))[state] = count
            totals[state] = totals.get(state, 0) + count
        capped = frozenset(state for state, total in totals.items() if total >= cap)
        return {queue: cls(queue, counts, cap, capped) for queue, counts in by_queue.items()}


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
    max_priority: int = 0  # the highest priority they may give a job (admins: any)

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
            row["max_priority"],
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


# ----- queues ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueControls:
    """A queue's controls as its row in jobrunner.queues holds them (`unset`: a queue with
    no row, which has no limits and is open to admins only)."""

    name: str
    paused_at: datetime | None
    max_running: int | None
    max_running_per_owner: int | None
    rate_limit: int | None
    rate_period: timedelta | None
    open_to_all: bool
    granted_to: tuple[str, ...]
    updated_at: datetime | None
    updated_by: str | None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    @property
    def rate_per(self) -> str | None:
        """The start rate's period as the API names it ('second', 'minute'), else None (no
        rate, or a period set by hand in psql)."""
        if self.rate_period is None:
            return None
        return {1.0: "second", 60.0: "minute"}.get(self.rate_period.total_seconds())

    @property
    def rate_text(self) -> str | None:
        """The start rate as people read it, `600/minute`; None without one."""
        if self.rate_limit is None or self.rate_period is None:
            return None
        return f"{self.rate_limit}/{self.rate_per or f'{self.rate_period.total_seconds():g}s'}"

    @classmethod
    def unset(cls, name: str) -> QueueControls:
        return cls(name, None, None, None, None, None, False, (), None, None)

    @classmethod
    def from_row(cls, row: Row) -> QueueControls:
        return cls(
            row["name"], row["paused_at"], row["max_running"], row["max_running_per_owner"],
            row["rate_limit"], row["rate_period"], row["open_to_all"], tuple(row["granted_to"]),
            row["updated_at"], row["updated_by"],
        )  # fmt: skip


ScheduleSource = Literal["code", "runtime"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """A row of jobrunner.schedules (migration 0015), with the state of the job its last
    tick enqueued (None: no tick yet, or that job was pruned)."""

    name: str
    task: str
    args: dict[str, Any]
    cron: str | None  # None only for a code schedule carried over and not yet synced
    timezone: str
    queue: str | None  # None: the task's
    priority: int | None  # None: the task's
    paused: bool
    source: ScheduleSource
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: UUID | None
    last_job_state: JobState | None
    last_job_finished_at: datetime | None
    last_error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Schedule:
        state = row["last_job_state"]
        return cls(
            row["name"], row["task"], row["args"], row["cron"], row["timezone"], row["queue"],
            row["priority"], row["paused"], row["source"], row["next_run_at"],
            row["last_run_at"], row["last_job_id"], JobState(state) if state else None,
            row["last_job_finished_at"], row["last_error"], row["created_by"],
            row["created_at"], row["updated_at"],
        )  # fmt: skip


class Keep(enum.Enum):
    """A control a change leaves as it is (None, by contrast, clears a limit)."""

    KEEP = "keep"


KEEP = Keep.KEEP
RatePer = Literal["second", "minute"]
RATE_PERIODS: dict[str, float] = {"second": 1.0, "minute": 60.0}
MAX_LIMIT = 1_000_000  # far above any real limit, far below integer overflow


@dataclass(frozen=True, slots=True)
class Rate:
    """A start rate: `limit` jobs started per second or per minute, across all workers."""

    limit: int
    per: RatePer

    @property
    def seconds(self) -> float:
        return RATE_PERIODS[self.per]


@dataclass(frozen=True, slots=True)
class QueueChanges:
    """What an admin changes of a queue's controls. `paused` and `open_to_all` None, and the
    limits KEEP, leave them as they are; a limit None removes it. Checked when made, so the
    CLI and the dashboard are held to the API's bounds."""

    paused: bool | None = None
    open_to_all: bool | None = None
    max_running: int | Keep | None = KEEP
    max_running_per_owner: int | Keep | None = KEEP
    rate: Rate | Keep | None = KEEP

    def __post_init__(self) -> None:
        _in_range("max_running", self.max_running, 0)
        _in_range("max_running_per_owner", self.max_running_per_owner, 1)
        if isinstance(self.rate, Rate):
            _in_range("rate_limit", self.rate.limit, 1)
            if self.rate.per not in RATE_PERIODS:
                raise InvalidQueueControls("rate_per is 'second' or 'minute'")


def _in_range(name: str, value: int | Keep | None, least: int) -> None:
    if isinstance(value, int) and not least <= value <= MAX_LIMIT:
        raise InvalidQueueControls(f"{name} must be between {least} and {MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class AccessRules:
    """Who may submit where: the queues open to all, each (queue, user) grant, the admins,
    and the users whose highest priority is not 0 (everyone else's is 0)."""

    open_queues: frozenset[str]
    grants: frozenset[tuple[str, str]]
    admins: frozenset[str]
    max_priority: dict[str, int]

    @classmethod
    def from_row(cls, row: Row) -> AccessRules:
        users = list(zip(row["users"], row["admins"], row["max_priorities"], strict=True))
        return cls(
            open_queues=frozenset(row["open_queues"]),
            grants=frozenset(zip(row["grant_queues"], row["grant_users"], strict=True)),
            admins=frozenset(name for name, admin, _ in users if admin),
            max_priority={name: most for name, _, most in users if most},
        )

    def lookup(self, username: str, queue: str) -> UserAccess:
        return UserAccess(
            admin=username in self.admins,
            max_priority=self.max_priority.get(username, 0),
            open=queue in self.open_queues or (queue, username) in self.grants,
        )


NO_ACCESS_RULES = AccessRules(frozenset(), frozenset(), frozenset(), {})


@dataclass(frozen=True, slots=True)
class UserAccess:
    """What the rules say of one user and one queue."""

    admin: bool
    max_priority: int
    open: bool


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """The latest webhook delivery of a job: its own job's state, attempts and last error."""

    state: JobState
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Row) -> WebhookDelivery:
        return cls(
            JobState(row["state"]), row["attempt"], row["max_attempts"], row["run_at"],
            row["created_at"], row["finished_at"], row["last_error"],
        )  # fmt: skip


class OutcomeKind(enum.StrEnum):
    """What the worker reports of one attempt; job_record_outcomes says what each makes of
    the job (a retry with attempts spent is failed; a defer past the bound counts as a retry)."""

    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"
    FAILED = "failed"  # for good, whatever attempts remain
    RETRY = "retry"
    DEFER = "defer"  # given back without spending the attempt


@dataclass(slots=True)
class Outcome:
    """One attempt's end, as the worker reports it.

    result_json and error_json are already JSON text, so one unencodable result fails its own
    attempt instead of the whole batch it is written with. retry_delay: seconds to wait
    before the next attempt; None for a retry waits the job's own backoff (on its row).
    Read-only by convention, not frozen: one is made for every attempt (see ClaimedJob).
    """

    id: UUID
    attempt: int
    kind: OutcomeKind
    result_json: str | None = None
    error_json: str | None = None
    retry_delay: float | None = None
    timed_out: bool = False  # ran past its timeout (counted apart: jobrunner.metrics)
