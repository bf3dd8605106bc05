"""What the API reads and writes: XCreate for bodies, XPublic for answers (FastAPI's naming).

Bodies forbid unknown fields and non-finite numbers, so every bad input is a 422, never a 500.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from jobrunner.accounts import TokenPair
from jobrunner.db.queries import Include, NewSchedule

# The job's public shape is shared with webhook bodies, so it lives outside the API package.
from jobrunner.job_public import JOB_EXAMPLE, JOB_ID
from jobrunner.job_public import AttemptError as AttemptError
from jobrunner.job_public import JobPublic as JobPublic
from jobrunner.job_rows import MAX_BACKOFF_SECONDS
from jobrunner.models import (
    KEEP,
    MAX_LIMIT,
    HistoryEntry,
    Job,
    JobLink,
    JobLinks,
    JobState,
    ParentFailure,
    QueueChanges,
    QueueControls,
    QueueCounts,
    Rate,
    Schedule,
    User,
    WebhookDelivery,
    WorkerInfo,
)
from jobrunner.options import Backoff, JobOptions
from jobrunner.search import MAX_TAGS, TAG, TAG_RULE

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_JSON_DEPTH = 32


def _finite_json(value: Any, depth: int = 0) -> Any:
    """Reject what PostgreSQL's jsonb cannot hold, anywhere in free-form JSON: NaN and
    infinities, NUL characters and lone surrogates; and absurd nesting."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinite numbers are not JSON")
    if isinstance(value, str):
        _storable_text(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable_text(key)
            _finite_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _finite_json(item, depth + 1)
    return value


def _storable_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None


def _http_url(value: str) -> str:
    _storable_text(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http or https URL with a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    return value


MAX_DEPENDS_ON = 1000  # parents one submitted job may name

Username = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{3,64}$", examples=["alice"])]
Password = Annotated[str, Field(min_length=8, max_length=1024, examples=["correct horse battery"])]
QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
CallbackUrl = Annotated[str, Field(max_length=2048), AfterValidator(_http_url)]
Tag = Annotated[str, Field(pattern=TAG.pattern, examples=["customer:42"])]


# ----- accounts -------------------------------------------------------------------------


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "alice", "password": "correct horse battery"}]
        },
    )
    username: Username
    password: Password


class LoginCreate(UserCreate):
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class RefreshCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"refresh_token": "eyJhbGciOi..."}]}
    )
    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"current_password": "correct horse battery", "new_password": "staple in a jar"}
            ]
        },
    )
    current_password: Annotated[str, Field(min_length=1, max_length=1024)]
    new_password: Password


class UserPublic(BaseModel):
    username: str
    role: str
    created_at: datetime
    disabled: bool = Field(description="Cannot log in (disabled, or awaiting approval).")
    max_priority: int = Field(
        default=0, description="The highest priority this user may give a job (admins: any)."
    )

    @classmethod
    def of(cls, user: User) -> UserPublic:
        return cls(
            username=user.username,
            role=user.role,
            created_at=user.created_at,
            disabled=user.disabled,
            max_priority=user.max_priority,
        )


class MePublic(UserPublic):
    webhook_secret: str = Field(description="Verifies the signature of your webhooks.")

    @classmethod
    def of(cls, user: User) -> MePublic:
        return cls(
            username=user.username,
            role=user.role,
            created_at=user.created_at,
            disabled=user.disabled,
            max_priority=user.max_priority,
            webhook_secret=user.webhook_secret,
        )


class TokenPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIs...",
                    "refresh_token": "eyJhbGciOiJIUzI1NiIs...",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        }
    )
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int

    @classmethod
    def of(cls, pair: TokenPair) -> TokenPublic:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


# ----- jobs -----------------------------------------------------------------------------


class JobFields(BaseModel):
    """What a job is made of, as a submission gives it: a job on its own (JobCreate) or one
    job of a graph (GraphJobCreate)."""

    model_config = STRICT
    task: Annotated[str, Field(min_length=1, max_length=256)]
    args: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(default_factory=dict)
    queue: QueueName | None = None
    # strict: true is not a priority, and "5" is not a number of attempts.
    priority: Annotated[int, Field(ge=-100, le=100, strict=True)] | None = None
    delay_seconds: Annotated[float, Field(ge=0, le=366 * 86400, strict=True)] | None = None
    run_at: AwareDatetime | None = None
    max_attempts: Annotated[int, Field(ge=1, le=1000, strict=True)] | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=7 * 86400, strict=True)] | None = None
    backoff_base_seconds: (
        Annotated[float, Field(gt=0, le=MAX_BACKOFF_SECONDS, strict=True)] | None
    ) = Field(
        default=None,
        description="Retry delays double from this up to backoff_cap_seconds (with jitter); "
        "give both or neither. Unset: the task's backoff, else the worker's default.",
    )
    backoff_cap_seconds: (
        Annotated[float, Field(gt=0, le=MAX_BACKOFF_SECONDS, strict=True)] | None
    ) = Field(default=None, description="The longest retry delay; with backoff_base_seconds.")
    callback_url: CallbackUrl | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None = Field(
        default=None,
        description=f"Labels to find the job by (GET /jobs?tag=, bulk actions): at most "
        f"{MAX_TAGS}, each {TAG_RULE}.",
    )
    on_parent_failure: Literal["cancel", "run"] | None = Field(
        default=None,
        description="With depends_on: when one of them fails for good or is cancelled, "
        "`cancel` this job (the default) or `run` it anyway.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> JobFields:
        if self.delay_seconds is not None and self.run_at is not None:
            raise ValueError("give delay_seconds or run_at, not both")
        base, cap = self.backoff_base_seconds, self.backoff_cap_seconds
        if (base is None) != (cap is None):
            raise ValueError("give backoff_base_seconds and backoff_cap_seconds together")
        if base is not None and cap is not None and base > cap:
            raise ValueError("backoff_base_seconds must not exceed backoff_cap_seconds")
        if self.on_parent_failure is not None and not self.parents_named():
            raise ValueError("on_parent_failure goes with depends_on")
        return self

    def parents_named(self) -> bool:
        return False

    def options(self, *, owner: str) -> JobOptions:
        """The submission's options for the parameter maker (jobrunner.job_rows.make_rows);
        its parents aside."""
        return self._options(owner, None, None)

    def _options(
        self, owner: str, depends_on: list[UUID] | None, on_failure: ParentFailure | None
    ) -> JobOptions:
        # Built once, whole: dataclasses.replace on top cost 10 µs of a 250 µs submit.
        base, cap = self.backoff_base_seconds, self.backoff_cap_seconds
        return JobOptions(
            queue=self.queue,
            priority=self.priority,
            max_attempts=self.max_attempts,
            timeout=self.timeout_seconds,
            backoff=Backoff(base, cap) if base is not None and cap is not None else None,
            delay=self.delay_seconds,
            run_at=self.run_at,
            owner=owner,
            callback_url=self.callback_url,
            depends_on=depends_on,
            on_parent_failure=on_failure,
            tags=self.tags,
        )


class JobCreate(JobFields):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"task": "square_sum", "args": {"data": [1, 2, 3]}},
                {
                    "task": "sleep",
                    "args": {"seconds": 2},
                    "queue": "default",
                    "priority": 10,
                    "delay_seconds": 30,
                    "max_attempts": 5,
                    "timeout_seconds": 60,
                    "backoff_base_seconds": 5,
                    "backoff_cap_seconds": 600,
                    "callback_url": "https://example.com/hooks/jobrunner",
                },
                {"task": "cube_sum", "args": {"data": [1, 2]}, "depends_on": [JOB_ID]},
            ]
        },
    )
    depends_on: Annotated[list[UUID], Field(max_length=MAX_DEPENDS_ON)] | None = Field(
        default=None,
        description="Jobs of yours this one waits for: it stays `waiting` until all of them "
        "succeed, and its handler reads their results.",
    )

    def parents_named(self) -> bool:
        return bool(self.depends_on)

    def options(self, *, owner: str) -> JobOptions:
        return self._options(owner, self.depends_on, self.on_parent_failure)


GraphName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", examples=["resize"])]


class GraphJobCreate(JobFields):
    """One job of a graph: a name of its own, and what it waits for by name (a job of the
    same graph) or by id (a job of yours that exists)."""

    name: GraphName
    depends_on: Annotated[list[str], Field(max_length=MAX_DEPENDS_ON)] = Field(
        default_factory=list,
        description="Names of jobs of this graph, or ids of jobs of yours, it waits for.",
    )

    def parents_named(self) -> bool:
        return bool(self.depends_on)

    def options(self, *, owner: str) -> JobOptions:
        """Its options; what it waits for is the graph's to resolve (jobrunner.graph)."""
        return self._options(owner, None, self.on_parent_failure)


class GraphCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "jobs": [
                        {"name": "a", "task": "square_sum", "args": {"data": [1, 2]}},
                        {"name": "b", "task": "cube_sum", "args": {"data": [3]}},
                        {"name": "total", "task": "echo", "depends_on": ["a", "b"]},
                    ]
                }
            ]
        },
    )
    jobs: Annotated[list[GraphJobCreate], Field(min_length=1)] = Field(
        description="Any order; at most JOBRUNNER_MAX_GRAPH_JOBS. A cycle is refused (422)."
    )


class GraphJobPublic(JobPublic):
    name: str


class GraphPublic(BaseModel):
    jobs: list[GraphJobPublic] = Field(description="In the order given, each with its id.")


class WebhookDeliveryPublic(BaseModel):
    state: JobState = Field(description="The delivery's own state: `succeeded` once delivered.")
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = Field(description="While it waits to be tried again.")
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, delivery: WebhookDelivery) -> WebhookDeliveryPublic:
        waiting = not delivery.state.is_terminal and delivery.state is not JobState.RUNNING
        return cls(
            state=delivery.state,
            attempts=delivery.attempt,
            max_attempts=delivery.max_attempts,
            next_attempt_at=delivery.run_at if waiting else None,
            last_error=delivery.last_error,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
        )


class JobLinkPublic(BaseModel):
    id: UUID
    task: str | None = Field(description="Null for a parent deleted since (pruned).")
    state: JobState | None

    @classmethod
    def of(cls, link: JobLink) -> JobLinkPublic:
        return cls(id=link.id, task=link.task, state=link.state)


class JobDetailPublic(JobPublic):
    webhook: WebhookDeliveryPublic | None = Field(
        default=None,
        description="The latest delivery of this job's webhook (jobrunner's own job, which "
        "is not in your lists): null until the job ends, or without a callback_url.",
    )
    parents: list[JobLinkPublic] = Field(
        default_factory=list,
        description="The first 100 jobs it waits (or waited) for, in the order it named them.",
    )
    parents_total: int = Field(default=0, description="How many jobs it waits for.")
    children: list[JobLinkPublic] = Field(
        default_factory=list, description="The first 100 jobs that wait for it, oldest first."
    )
    children_total: int = Field(default=0, description="How many jobs wait for it.")

    @classmethod
    def of_detail(
        cls, job: Job, delivery: WebhookDelivery | None, links: JobLinks | None = None
    ) -> JobDetailPublic:
        webhook = WebhookDeliveryPublic.of(delivery) if delivery is not None else None
        links = links or JobLinks()
        return cls(
            **dict(JobPublic.of(job)),
            webhook=webhook,
            parents=[JobLinkPublic.of(p) for p in links.parents],
            parents_total=links.parents_total,
            children=[JobLinkPublic.of(c) for c in links.children],
            children_total=links.children_total,
        )


class JobStatusPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"id": JOB_ID, "state": "running"}]})
    id: UUID
    state: JobState


class JobResultPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": JOB_ID, "state": "succeeded", "result": 14, "error": None},
                {"id": JOB_ID, "state": "failed", "result": None, "error": "ValueError: boom"},
            ]
        }
    )
    id: UUID
    state: JobState
    result: Any
    error: str | None

    @classmethod
    def of(cls, job: Job) -> JobResultPublic:
        last = job.last_error
        error = str(last.get("error")) if last and job.state is not JobState.SUCCEEDED else None
        return cls(id=job.id, state=job.state, result=job.result, error=error)


class JobsPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [JOB_EXAMPLE], "next_cursor": "AaIHzMumci-gq5AG-mT8_A"}]
        }
    )
    items: list[JobPublic] = Field(
        description="Without args and result unless `include` asks for them; with them, the "
        "page stops early at JOBRUNNER_LIST_MAX_PAGE_BYTES (next_cursor goes on from there)."
    )
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class HistoryPublic(BaseModel):
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
    run_seconds: float | None
    total_seconds: float
    result: Any = Field(default=None, description="Only with `include=result`.")
    last_error: str | None
    parents: list[UUID] = Field(
        default_factory=list, description="The jobs it waited for (depends_on), in order."
    )
    has_children: bool = Field(
        default=False, description="Jobs waited for it: `GET /jobs/{id}` lists them."
    )
    tags: list[str] = Field(default_factory=list, description="Set when the job was made.")

    @classmethod
    def of(cls, entry: HistoryEntry, include: Include) -> HistoryPublic:
        bulky = {"result": entry.result} if include.result else {}
        return cls(
            id=entry.id,
            queue=entry.queue,
            task=entry.task,
            state=entry.state,
            attempt=entry.attempt,
            max_attempts=entry.max_attempts,
            owner=entry.owner,
            created_at=entry.created_at,
            started_at=entry.started_at,
            finished_at=entry.finished_at,
            run_seconds=entry.run_duration.total_seconds() if entry.run_duration else None,
            total_seconds=entry.total_duration.total_seconds(),
            last_error=entry.last_error,
            parents=list(entry.parents),
            has_children=entry.has_children,
            tags=list(entry.tags),
            **bulky,
        )


class HistoriesPublic(BaseModel):
    items: list[HistoryPublic]
    next_cursor: str | None


class TaskPublic(BaseModel):
    name: str
    queue: str
    priority: int
    max_attempts: int
    timeout_seconds: float | None
    cron: str | None
    description: str | None
    args_schema: dict[str, Any]


class QueueStatsPublic(BaseModel):
    queue: str
    states: dict[str, int]
    capped: list[str] = Field(description="States whose count reached the cap: 'at least'.")


class ThroughputPublic(BaseModel):
    minute: datetime
    queue: str
    succeeded: int
    failed: int
    retried: int
    cancelled: int


class StatsPublic(BaseModel):
    queues: list[QueueStatsPublic]
    throughput: list[ThroughputPublic]


class WorkerPublic(BaseModel):
    """A worker process as the registry knows it."""

    id: str = Field(description="The worker_id it writes on the jobs it runs.")
    host: str
    pid: int
    queues: list[str]
    tasks: list[str] = Field(description="The task names it registers.")
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None = Field(description="Set when it stopped gracefully.")
    live: bool = Field(description="Not stopped, and seen within JOBRUNNER_WORKER_SEEN_TIMEOUT.")
    running: int = Field(description="Jobs it is running now.")

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerPublic:
        return cls(**dataclasses.asdict(worker))  # the same fields, by name


# ----- queues ---------------------------------------------------------------------------

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, strict=True)]


class QueueUpdate(BaseModel):
    """Controls to set; a field left out stays as it is, a limit given as null is removed."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"max_running": 20, "max_running_per_owner": 5},
                {"rate_limit": 100, "rate_per": "minute", "open_to_all": True},
                {"paused": True},
                {"max_running": None, "rate_limit": None},
            ]
        },
    )
    paused: Annotated[bool, Field(strict=True)] | None = None
    open_to_all: Annotated[bool, Field(strict=True)] | None = Field(
        default=None, description="Every user may submit here (else admins and grants only)."
    )
    max_running: Annotated[int, Field(ge=0, le=MAX_LIMIT, strict=True)] | None = Field(
        default=None, description="Jobs of this queue running at once, across all workers."
    )
    max_running_per_owner: Limit | None = Field(
        default=None, description="Jobs of one owner running at once in this queue."
    )
    rate_limit: Limit | None = Field(
        default=None, description="Jobs started per `rate_per`, across all workers."
    )
    rate_per: Literal["second", "minute"] | None = None

    @model_validator(mode="after")
    def _rate_whole(self) -> QueueUpdate:
        if self.rate_limit is not None and self.rate_per is None:
            raise ValueError("give rate_per ('second' or 'minute') with rate_limit")
        if self.rate_per is not None and self.rate_limit is None:
            raise ValueError("rate_per goes with a rate_limit")
        return self

    def changes(self) -> QueueChanges:
        given = self.model_fields_set
        rate: Rate | None = None
        if self.rate_limit is not None and self.rate_per is not None:
            rate = Rate(self.rate_limit, self.rate_per)
        return QueueChanges(
            paused=self.paused,
            open_to_all=self.open_to_all,
            max_running=self.max_running if "max_running" in given else KEEP,
            max_running_per_owner=(
                self.max_running_per_owner if "max_running_per_owner" in given else KEEP
            ),
            rate=rate if "rate_limit" in given else KEEP,
        )


class QueuePublic(BaseModel):
    name: str
    paused: bool
    paused_at: datetime | None
    max_running: int | None
    max_running_per_owner: int | None
    rate_limit: int | None
    rate_per: Literal["second", "minute"] | None = Field(
        description="With rate_limit; null also for a period set otherwise (see "
        "rate_period_seconds)."
    )
    rate_period_seconds: float | None
    open_to_all: bool
    granted_to: list[str] = Field(description="Users it is opened to one by one (admins only).")
    updated_at: datetime | None
    updated_by: str | None
    counts: dict[str, int] = Field(
        description="Unfinished jobs per state: every user's for admins, your own for users."
    )
    capped: list[str] = Field(description="States whose count reached the cap: 'at least'.")

    @classmethod
    def of(cls, queue: QueueControls, counts: QueueCounts, *, admin: bool) -> QueuePublic:
        period = queue.rate_period.total_seconds() if queue.rate_period is not None else None
        per = queue.rate_per
        return cls(
            name=queue.name,
            paused=queue.paused,
            paused_at=queue.paused_at,
            max_running=queue.max_running,
            max_running_per_owner=queue.max_running_per_owner,
            rate_limit=queue.rate_limit,
            rate_per=per if queue.rate_limit is not None else None,
            rate_period_seconds=period,
            open_to_all=queue.open_to_all,
            granted_to=list(queue.granted_to) if admin else [],
            updated_at=queue.updated_at if admin else None,
            updated_by=queue.updated_by if admin else None,
            counts=counts.states,
            capped=[state for state in counts.states if counts.at_least(state)],
        )


class MaxPriorityUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"max_priority": 5}]})
    max_priority: Annotated[int, Field(ge=-100, le=100, strict=True)] = Field(
        description="The highest priority the user may give a job; above 0 jumps other users' jobs."
    )


# ----- schedules ------------------------------------------------------------------------


class ScheduleCreate(BaseModel):
    """A runtime schedule. The name, task, cron and time zone are checked by
    jobrunner.schedules.check (a 422 names the field at fault)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "name": "nightly-report",
                    "task": "square_sum",
                    "cron": "30 2 * * *",
                    "timezone": "Europe/Berlin",
                    "args": {"data": [1, 2, 3]},
                    "queue": "reports",
                    "priority": 5,
                }
            ]
        },
    )
    name: Annotated[str, Field(min_length=1, max_length=128)]
    task: Annotated[str, Field(min_length=1, max_length=256)]
    cron: Annotated[str, Field(min_length=1, max_length=256, description="Five fields.")]
    timezone: Annotated[
        str, Field(min_length=1, max_length=64, description="IANA name the cron is read in.")
    ] = "UTC"
    args: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(default_factory=dict)
    queue: QueueName | None = Field(default=None, description="Unset: the task's queue.")
    priority: Annotated[int, Field(ge=-100, le=100, strict=True)] | None = Field(
        default=None, description="Unset: the task's priority."
    )

    def new(self) -> NewSchedule:
        return NewSchedule(
            name=self.name,
            task=self.task,
            args=self.args,
            cron=self.cron,
            timezone=self.timezone,
            queue=self.queue,
            priority=self.priority,
        )


class SchedulePublic(BaseModel):
    name: str
    task: str
    args: dict[str, Any]
    cron: str | None = Field(description="Null only for a code schedule no worker synced yet.")
    timezone: str
    queue: str | None = Field(description="Null: the task's queue.")
    priority: int | None = Field(description="Null: the task's priority.")
    paused: bool
    source: Literal["code", "runtime"]
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_job_id: UUID | None
    last_job_state: JobState | None = Field(
        description="The state of the job the last tick enqueued (null: none yet, or pruned)."
    )
    last_error: str | None = Field(description="Why the last tick enqueued nothing.")
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, schedule: Schedule) -> SchedulePublic:
        fields = {
            f.name: getattr(schedule, f.name)
            for f in dataclasses.fields(schedule)
            if f.name != "last_job_finished_at"
        }
        return cls(**fields)
