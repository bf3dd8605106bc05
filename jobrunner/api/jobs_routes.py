"""/jobs and /history: submit, read, cancel, retry, list. Thin: each calls the library once."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response
from pydantic import AwareDatetime

from jobrunner import client
from jobrunner.api import limits
from jobrunner.api.deps import ConnDep, PrincipalDep, SettingsDep, SubmitContextDep, SubmitterDep
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import (
    GraphCreate,
    GraphJobPublic,
    GraphPublic,
    HistoriesPublic,
    HistoryPublic,
    JobCreate,
    JobDetailPublic,
    JobPublic,
    JobResultPublic,
    JobsPublic,
    JobStatusPublic,
)
from jobrunner.api.submit import submit_job
from jobrunner.api.submit_graph import submit_graph
from jobrunner.db.queries import Include, JobFilter, Page
from jobrunner.models import TERMINAL_STATES, Job, JobState
from jobrunner.search import MAX_ARGS_FILTER_BYTES, MAX_FILTER_TAGS, check_tags, parse_args_filter

router = APIRouter(tags=["jobs"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such job, or not yours"}}
Limit = Annotated[int, Query(ge=1, le=500)]
IdempotencyKey = Annotated[str | None, Header(min_length=1, max_length=255)]


@router.post("/jobs", status_code=201, responses={409: {}, 413: {}, 422: {}, 429: {}})
async def create_job(
    body: JobCreate,
    response: Response,
    me: SubmitterDep,
    context: SubmitContextDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> JobPublic:
    """Submit a job. Its task and args are checked now; a retried submit with the same
    `Idempotency-Key` header returns the first job (and `Idempotent-Replayed: true`)."""
    job, replayed = await submit_job(context, settings, me, body, idempotency_key)
    response.headers["Location"] = f"/jobs/{job.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return JobPublic.of(job)


@router.post("/jobs/graph", status_code=201, responses={413: {}, 422: {}, 429: {}})
async def create_graph(
    body: GraphCreate, me: SubmitterDep, context: SubmitContextDep, settings: SettingsDep
) -> GraphPublic:
    """Submit several jobs and who waits for whom, in one transaction: each job names the
    jobs it waits for (`depends_on`) by their name in this graph, or by the id of a job of
    yours. A cycle, an unknown name or a parent not yours is a 422, and nothing is written.
    Each job counts as a submission (up to your burst) and toward your unfinished jobs."""
    named = await submit_graph(context, settings, me, body)
    return GraphPublic(
        jobs=[GraphJobPublic(name=name, **dict(JobPublic.of(job))) for name, job in named]
    )


@router.get("/jobs/{job_id}", responses=NOT_FOUND)
async def get_job(job_id: UUID, me: PrincipalDep, conn: ConnDep) -> JobDetailPublic:
    """The whole job: arguments, every attempt's error, the result, the jobs it waits for
    and those that wait for it, and with a callback URL how its webhook's delivery stands."""
    job = await _visible(job_id, me, conn)
    delivery = await client.webhook_delivery(job, conn=conn)
    links = await client.job_links(job, conn=conn, user=me.username, admin=me.is_admin)
    return JobDetailPublic.of_detail(job, delivery, links)


@router.get("/jobs/{job_id}/status", responses=NOT_FOUND)
async def get_job_status(job_id: UUID, me: PrincipalDep, conn: ConnDep) -> JobStatusPublic:
    job = await _visible(job_id, me, conn)
    return JobStatusPublic(id=job.id, state=job.state)


@router.get("/jobs/{job_id}/result", responses=NOT_FOUND)
async def get_job_result(job_id: UUID, me: PrincipalDep, conn: ConnDep) -> JobResultPublic:
    """The result once succeeded; the last error once failed or cancelled."""
    return JobResultPublic.of(await _visible(job_id, me, conn))


@router.post("/jobs/{job_id}/cancel", responses={**NOT_FOUND, 409: {}})
async def cancel_job(job_id: UUID, me: PrincipalDep, conn: ConnDep) -> JobPublic:
    """Cancel at once if waiting; a running job's handler is stopped within about a second."""
    job = await client.cancel_job(job_id, conn=conn, user=me.username, admin=me.is_admin)
    return JobPublic.of(job)


@router.post("/jobs/{job_id}/retry", responses={**NOT_FOUND, 409: {}, 429: {}})
async def retry_job(
    job_id: UUID,
    me: PrincipalDep,
    conn: ConnDep,
    context: SubmitContextDep,
    settings: SettingsDep,
) -> JobPublic:
    """Put a failed or cancelled job back in the queue. It counts as a submission: it takes
    one from your rate limit and needs room under your unfinished-jobs cap."""
    await limits.charge_resubmission(conn, settings, context.unfinished, me.username)
    job = await client.retry_job(job_id, conn=conn, user=me.username, admin=me.is_admin)
    return JobPublic.of(job)


INCLUDE_DOC = (
    "Comma-separated bulky parts to include in each item: `args`, `result`. Without it items "
    "carry neither; with it a page stops early at JOBRUNNER_LIST_MAX_PAGE_BYTES."
)
IncludeParam = Annotated[str | None, Query(max_length=64, description=INCLUDE_DOC)]


def _include(text: str | None, allowed: tuple[str, ...]) -> Include:
    asked = {part.strip() for part in (text or "").split(",") if part.strip()}
    if asked - set(allowed):
        raise ApiProblem(422, f"include takes {', '.join(allowed)}")
    return Include(args="args" in asked, result="result" in asked)


TagParam = Annotated[
    list[str] | None,
    Query(
        max_length=MAX_FILTER_TAGS, description="Jobs carrying this tag; repeat for all of several."
    ),
]
ArgsParam = Annotated[
    str | None,
    Query(
        max_length=MAX_ARGS_FILTER_BYTES,
        description='Jobs whose args contain this JSON object, e.g. `{"user_id": 42}`.',
    ),
]


def search_filter(tags: list[str] | None, args: str | None) -> tuple[tuple[str, ...], Any]:
    """The tags and args filter of a query string, checked (InvalidFilter: a 422)."""
    return check_tags(tags), parse_args_filter(args)


@router.get("/jobs", response_model_exclude_unset=True)
async def list_jobs(
    me: PrincipalDep,
    conn: ConnDep,
    settings: SettingsDep,
    state: JobState | None = None,
    task: str | None = None,
    queue: str | None = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
    include: IncludeParam = None,
    tag: TagParam = None,
    args: ArgsParam = None,
) -> JobsPublic:
    """Your jobs (every job, for admins), newest first. Pages stay correct while jobs are
    added: pass `next_cursor` back as `cursor`. Items leave out args and result unless
    `include` names them; `GET /jobs/{id}` always has everything."""
    where = JobFilter(state, task, queue, created_after, created_before, *search_filter(tag, args))
    parts = _include(include, ("args", "result"))
    jobs, cut = await client.list_jobs_page(
        conn=conn,
        user=me.username,
        admin=me.is_admin,
        where=where,
        before=_decode_job_cursor(cursor),
        page=Page(limit + 1, parts, settings.list_max_page_bytes),
    )
    more = cut or len(jobs) > limit
    items = jobs[:limit]
    next_cursor = _encode_job_cursor(items[-1].id) if more else None
    return JobsPublic(
        items=[JobPublic.of(j, args=parts.args, result=parts.result) for j in items],
        next_cursor=next_cursor,
    )


@router.get("/history", tags=["history"], response_model_exclude_unset=True)
async def history(
    me: PrincipalDep,
    conn: ConnDep,
    settings: SettingsDep,
    state: JobState | None = None,
    task: str | None = None,
    queue: str | None = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
    include: IncludeParam = None,
) -> HistoriesPublic:
    """Finished jobs, most recently finished first, from the `jobrunner.history` view. Items
    leave out the result unless `include=result`."""
    if state is not None and state not in TERMINAL_STATES:
        raise ApiProblem(422, "history holds only succeeded, failed and cancelled jobs")
    where = JobFilter(state, task, queue, created_after, created_before)
    parts = _include(include, ("result",))
    entries, cut = await client.list_history(
        conn=conn,
        user=me.username,
        admin=me.is_admin,
        where=where,
        after=_decode_history_cursor(cursor),
        page=Page(limit + 1, parts, settings.list_max_page_bytes),
    )
    more = cut or len(entries) > limit
    items = entries[:limit]
    next_cursor = _encode_history_cursor(items[-1].finished_at, items[-1].id) if more else None
    return HistoriesPublic(
        items=[HistoryPublic.of(e, parts) for e in items], next_cursor=next_cursor
    )


async def _visible(job_id: UUID, me: PrincipalDep, conn: ConnDep) -> Job:
    return await client.get_job(job_id, conn=conn, user=me.username, admin=me.is_admin)


def _encode_job_cursor(job_id: UUID) -> str:
    return base64.urlsafe_b64encode(job_id.bytes).decode().rstrip("=")


def _decode_job_cursor(cursor: str | None) -> UUID | None:
    if cursor is None:
        return None
    try:
        return UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise ApiProblem(422, "cursor is not one this API gave out") from None


def _encode_history_cursor(finished_at: datetime, job_id: UUID) -> str:
    raw = f"{finished_at.isoformat()}|{job_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_history_cursor(cursor: str | None) -> tuple[datetime, UUID] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, job_id = raw.partition("|")
        finished_at = datetime.fromisoformat(when)
        if finished_at.tzinfo is None:
            raise ValueError("naive")
        return finished_at, UUID(job_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(422, "cursor is not one this API gave out") from None
