"""The bodies and answers of POST /jobs/bulk (jobrunner.api.bulk_routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from jobrunner.api.schemas import STRICT, QueueName, Tag
from jobrunner.bulk import BulkAction, BulkResult
from jobrunner.db.queries import JobFilter
from jobrunner.models import JobState
from jobrunner.search import MAX_FILTER_TAGS, InvalidFilter, check_args_filter


def _args_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        return check_args_filter(value)
    except InvalidFilter as exc:  # not a ValueError: pydantic would let it through as a 500
        raise ValueError(str(exc)) from None


class BulkFilter(BaseModel):
    """Which jobs: all of these that are given (none given: every job you may touch)."""

    model_config = STRICT
    state: JobState | None = None
    task: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    queue: QueueName | None = None
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_FILTER_TAGS)] | None = Field(
        default=None, description="Jobs carrying every one of these tags."
    )
    args: Annotated[dict[str, Any] | None, AfterValidator(_args_filter)] = Field(
        default=None, description='Jobs whose args contain this object, e.g. {"user_id": 42}.'
    )

    def job_filter(self) -> JobFilter:
        return JobFilter(
            self.state, self.task, self.queue, self.created_after, self.created_before,
            tuple(dict.fromkeys(self.tags or ())), self.args,
        )  # fmt: skip


class BulkCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "retry", "filter": {"state": "failed", "tags": ["nightly"]}},
                {"action": "cancel", "filter": {"args": {"customer": 42}}, "dry_run": True},
            ]
        },
    )
    action: BulkAction = Field(
        description="cancel: unfinished jobs (a running one is asked to stop); retry: failed "
        "or cancelled ones; delete: finished ones."
    )
    filter: BulkFilter = Field(default_factory=BulkFilter)
    dry_run: bool = Field(default=False, description="Count the jobs it would act on; change none.")
    cursor: UUID | None = Field(
        default=None, description="A previous answer's next_cursor: go on where it stopped."
    )


class BulkPublic(BaseModel):
    action: BulkAction
    dry_run: bool
    jobs: int = Field(description="Jobs changed (a dry run: jobs it would act on).")
    complete: bool = Field(description="False: it stopped early; send next_cursor back.")
    next_cursor: UUID | None
    stopped_by: Literal["max_jobs", "allowance"] | None = Field(
        description="max_jobs: the most one call reads; allowance: your submission rate or "
        "unfinished-jobs cap (retries count as submissions)."
    )
    audit_id: int
    at: datetime

    @classmethod
    def of(cls, result: BulkResult) -> BulkPublic:
        return cls(
            action=result.action,
            dry_run=result.dry_run,
            jobs=result.jobs,
            complete=result.complete,
            next_cursor=result.next_cursor,
            stopped_by=result.stopped_by,
            audit_id=result.audit_id,
            at=result.at,
        )
