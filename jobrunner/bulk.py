"""Bulk actions: cancel, retry or delete every job a filter matches, in batches, audited.

    BulkRequest(action, where, dry_run) ─► run(conn, request, actor=, user=, admin=)
        dry run: one count (job_bulk_count)              ─┐
        else: batches of BATCH_SIZE jobs, oldest first,    ├─► one row in jobrunner.bulk_actions
              each its own transaction (job_bulk_<action>) ─┘     (who, when, filter, count)

Each batch is keyset-paginated by id and committed on its own, so a million-job action holds
no lock for long and no statement runs for long; each write is fenced like its single-job
statement (only jobs still in a state the action applies to are changed). An action stops
after `max_jobs` jobs read and answers the id to go on after (the API caps each call so one
user's action does not hold a connection for minutes); `allowance` lets the caller bound
each batch (a user's retries are charged as submissions: jobrunner.api.bulk_rules).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args
from uuid import UUID

import structlog

from jobrunner import dependencies
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.models import TERMINAL_STATES, JobState

log = structlog.get_logger("jobrunner.bulk")

BulkAction = Literal["cancel", "retry", "delete"]
ACTIONS: tuple[BulkAction, ...] = get_args(BulkAction)
BATCH_SIZE = 1000

# The states each action applies to, as its single-job statement has them.
APPLIES_TO: dict[BulkAction, frozenset[JobState]] = {
    "cancel": frozenset(JobState) - TERMINAL_STATES,
    "retry": frozenset({JobState.FAILED, JobState.CANCELLED}),
    "delete": frozenset(TERMINAL_STATES),
}

# How many jobs the next batch may change, given how many it would: fewer stops the action.
Allowance = Callable[[int], Awaitable[int]]


@dataclass(frozen=True, slots=True)
class BulkRequest:
    action: BulkAction
    where: queries.JobFilter
    dry_run: bool = False
    after: UUID | None = None  # go on after this id (a previous call's next_cursor)
    max_jobs: int | None = None  # jobs read before stopping; None: all of them
    batch_size: int = BATCH_SIZE


@dataclass(frozen=True, slots=True)
class BulkResult:
    action: BulkAction
    dry_run: bool
    jobs: int  # changed, or for a dry run: would be
    complete: bool  # False: call again after next_cursor
    next_cursor: UUID | None
    stopped_by: Literal["max_jobs", "allowance"] | None
    audit_id: int
    at: datetime


def states_for(action: BulkAction, wanted: str | None) -> list[JobState]:
    """The states an action reads: those it applies to, narrowed to `wanted` if given."""
    states = APPLIES_TO[action]
    if wanted is not None:
        states = states & {JobState(wanted)}
    return sorted(states, key=list(JobState).index)


async def run(
    conn: Conn,
    request: BulkRequest,
    *,
    actor: str,
    user: str | None,
    admin: bool,
    allowance: Allowance | None = None,
) -> BulkResult:
    """Do (or count, for a dry run) `request` on the jobs `user` may touch (all, for an
    admin), and write its audit row. `conn` must be in no transaction: batches commit."""
    scope = queries.BulkScope(
        user=user, admin=admin, states=states_for(request.action, request.where.state),
        where=request.where,
    )  # fmt: skip
    if request.dry_run:
        jobs = await queries.job_bulk_count(conn, scope) if scope.states else 0
        outcome = _Outcome(jobs, None, None)
    else:
        outcome = await _act(conn, request, scope, allowance)
    audit_id, at = await queries.bulk_action_insert(
        conn,
        actor=actor,
        action=request.action,
        dry_run=request.dry_run,
        filter=describe(request, user=None if admin else user),
        jobs=outcome.jobs,
        complete=outcome.next_cursor is None and outcome.stopped_by is None,
    )
    log.info("bulk action", actor=actor, action=request.action, dry_run=request.dry_run,
             jobs=outcome.jobs, audit_id=audit_id, stopped_by=outcome.stopped_by)  # fmt: skip
    return BulkResult(
        request.action, request.dry_run, outcome.jobs, outcome.stopped_by is None,
        outcome.next_cursor, outcome.stopped_by, audit_id, at,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Outcome:
    jobs: int
    next_cursor: UUID | None
    stopped_by: Literal["max_jobs", "allowance"] | None


async def _act(
    conn: Conn, request: BulkRequest, scope: queries.BulkScope, allowance: Allowance | None
) -> _Outcome:
    changed, cursor, read = 0, request.after, 0
    while scope.states:
        size = request.batch_size
        if request.max_jobs is not None:
            if read >= request.max_jobs:
                return _Outcome(changed, cursor, "max_jobs")
            size = min(size, request.max_jobs - read)
        if allowance is not None:
            size = await allowance(size)
            if size < 1:
                return _Outcome(changed, cursor, "allowance")
        batch = await _batch(conn, request.action, scope, cursor, size)
        changed += len(batch.changed)
        read += batch.scanned
        if batch.scanned < size or batch.last_id is None:
            break
        cursor = batch.last_id
    return _Outcome(changed, None, None)


async def _batch(
    conn: Conn, action: BulkAction, scope: queries.BulkScope, after: UUID | None, size: int
) -> queries.BulkBatch:
    """One batch in its own transaction; jobs cancelled at once that have children settle
    them in it, as a single cancel does."""
    async with conn.transaction():
        if action == "retry":
            # Archived jobs of the batch come back to jobs first. Twice: a job the archiver
            # moved while the first call waited for its row is found in job_history by the
            # second (a new snapshot), and the first holds every other one where it is.
            for _ in range(2):
                await queries.job_bulk_restore(conn, scope, after=after, limit=size)
        batch = await queries.job_bulk_act(conn, action, scope, after=after, limit=size)
        ended = [s.id for s in batch.changed if s.state is JobState.CANCELLED and s.has_children]
        if ended:
            await dependencies.settle(conn, ended)
    return batch


def describe(request: BulkRequest, *, user: str | None) -> dict[str, Any]:
    """The filter as the audit row keeps it: only what was given, `owner` for a user's own."""
    w = request.where
    given: dict[str, Any] = {
        "owner": user,
        "state": w.state,
        "task": w.task,
        "queue": w.queue,
        "created_after": w.created_after.isoformat() if w.created_after else None,
        "created_before": w.created_before.isoformat() if w.created_before else None,
        "tags": list(w.tags) or None,
        "args": w.args,
        "after": str(request.after) if request.after else None,
    }
    return {name: value for name, value in given.items() if value is not None}
