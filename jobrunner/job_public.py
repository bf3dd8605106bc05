"""A job as the outside world sees it: the JSON of `GET /jobs/{id}` and of webhook bodies.

It lives outside `jobrunner.api` because both the API and the webhook task (run by workers)
build it; the API's schemas re-export it, so OpenAPI names it as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from jobrunner.models import Job, JobState
from jobrunner.progress import Progress


class AttemptError(BaseModel):
    model_config = ConfigDict(extra="allow")
    attempt: int | None = None
    error: str | None = None
    traceback: str | None = None
    outcome: str | None = None
    worker: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ProgressPublic(BaseModel):
    """What the job's handler last reported of the running (or last) attempt."""

    fraction: float = Field(description="How far it got, from 0 to 1.")
    message: str | None
    data: dict[str, Any] | None
    at: datetime = Field(description="When it was written (at most about a second late).")

    @classmethod
    def of(cls, progress: Progress) -> ProgressPublic:
        return cls(
            fraction=progress.fraction, message=progress.message, data=progress.data, at=progress.at
        )


JOB_ID = "01a207cc-cba6-722f-a0ab-9006fa64fcfc"
JOB_EXAMPLE: dict[str, Any] = {
    "id": JOB_ID,
    "queue": "default",
    "task": "square_sum",
    "args": {"data": [1, 2, 3]},
    "priority": 0,
    "state": "succeeded",
    "attempt": 1,
    "max_attempts": 3,
    "run_at": "2026-11-23T10:00:00Z",
    "created_at": "2026-11-23T10:00:00Z",
    "started_at": "2026-11-23T10:00:00.010Z",
    "finished_at": "2026-11-23T10:00:00.012Z",
    "timeout_seconds": None,
    "cancel_requested": False,
    "result": 14,
    "errors": [],
    "owner": "alice",
    "callback_url": None,
    "dedup_key": None,
    "backoff_base_seconds": None,
    "backoff_cap_seconds": None,
    "pending_parents": None,
    "on_parent_failure": None,
    "tags": ["report", "customer:42"],
}


class JobPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})
    id: UUID
    queue: str
    task: str
    args: dict[str, Any] | None = Field(
        default=None, description="In lists only with `include=args`."
    )
    priority: int
    state: JobState
    attempt: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timeout_seconds: float | None
    cancel_requested: bool
    result: Any = Field(default=None, description="In lists only with `include=result`.")
    errors: list[AttemptError]
    owner: str | None
    callback_url: str | None
    dedup_key: str | None
    backoff_base_seconds: float | None = Field(
        description="Retry delays double from this up to backoff_cap_seconds; null: the "
        "worker's default."
    )
    backoff_cap_seconds: float | None
    pending_parents: int | None = Field(
        default=None,
        description="For a job with parents (depends_on): how many have not ended yet; it "
        "waits while above 0. Null for a job without parents.",
    )
    on_parent_failure: str | None = Field(
        default=None,
        description="With parents: `cancel` (a parent that fails or is cancelled cancels "
        "this job) or `run` (it runs anyway).",
    )
    tags: list[str] = Field(default_factory=list, description="Set when the job was made.")
    progress: ProgressPublic | None = Field(
        default=None,
        description="What its handler last reported through `job.progress(...)`; null: "
        "nothing yet this attempt (a new attempt starts with none). Not in lists.",
    )

    @classmethod
    def of(cls, job: Job, *, args: bool = True, result: bool = True) -> JobPublic:
        """The job; args and result only if asked for. Left unset, a route with
        `response_model_exclude_unset` leaves them out of its answer (listings do)."""
        bulky: dict[str, Any] = {}
        if args:
            bulky["args"] = job.user_args  # its parents' ids are not arguments
        if result:
            bulky["result"] = job.result
        if job.progress is not None:  # left unset otherwise: lists do not read it
            bulky["progress"] = ProgressPublic.of(job.progress)
        return cls(
            id=job.id,
            queue=job.queue,
            task=job.task,
            priority=job.priority,
            state=job.state,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            run_at=job.run_at,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            timeout_seconds=job.timeout.total_seconds() if job.timeout else None,
            cancel_requested=job.cancel_requested_at is not None,
            errors=[AttemptError.model_validate(e) for e in job.errors],
            owner=job.owner,
            callback_url=job.callback_url,
            dedup_key=job.dedup_key,
            backoff_base_seconds=_seconds(job.backoff_base),
            backoff_cap_seconds=_seconds(job.backoff_cap),
            pending_parents=job.pending_parents,
            on_parent_failure=job.on_parent_failure,
            tags=list(job.tags),
            **bulky,
        )


def _seconds(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


def job_payload(job: Job) -> dict[str, Any]:
    """The job as JSON-ready values, exactly as the API answers it."""
    return JobPublic.of(job).model_dump(mode="json")
