"""Jobs that wait for jobs: linking a child to its parents, settling it as they end, and
handing it their results when it runs.

    enqueue(..., depends_on=[a, b]) ─► insert 'waiting' + link ───────── one transaction
                                       (a parent ended already counts at once)
    a parent ends ─► its outcome + settle: the child's count of parents goes down; the
                     last one releases it (queued), a failure cancels it, and the
                     cancelled child's children in turn, a level per statement ─ one transaction
    the child is claimed ─► with_parents: its parents' ends, one read per claim
                            ─► parent_results() in its handler, no query there

Every way a job ends settles its children in the transaction that writes the end: the
outcome write (record_with_children), a lease rescued as failed (maintenance), a cancel
(client.cancel_job). Both sides take the parent's row lock, a child's insert (link) and a
parent's end alike, so whichever comes second sees the other: the insert finds the parent
ended and counts it at once, or the end's next statement finds the new child. The child's
own row holds its count of parents, so two parents ending at once in two workers release it
exactly once: the second update waits for the first and works from what it left.

A job that never had a child pays nothing: the one-statement outcome write skips jobs that
have children (job_record_outcomes), and only those come here, to be written again with
their children in a transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import asyncpg
import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn
from jobrunner.errors import JobrunnerError, UnknownParent
from jobrunner.models import (
    PARENTS_KEY,
    TERMINAL_STATES,
    ClaimedJob,
    Job,
    JobDependent,
    JobState,
    Outcome,
    ParentResult,
    parent_ids,
    without_parents,
)

if TYPE_CHECKING:  # types only: job_rows imports this module
    from jobrunner.job_rows import JobRows

log = structlog.get_logger("jobrunner.dependencies")

T = TypeVar("T")
DEADLOCK_TRIES = 3

# The running job's parents' ends, set by the executor around its handler.
_parents: ContextVar[tuple[ParentResult, ...]] = ContextVar("jobrunner_parents", default=())


# ----- what a handler reads ---------------------------------------------------------------


def parent_results() -> tuple[ParentResult, ...]:
    """How the running job's parents ended, in the order it named them: each one's result, or
    its last error for a child that runs anyway after a failure. Read by the worker with the
    claim, so calling this costs nothing. () outside a handler, or for a job without parents."""
    return _parents.get()


def parent_result() -> Any:
    """The result of the running job's one parent (the step before it in a chain)."""
    parents = _parents.get()
    if len(parents) != 1:
        raise JobrunnerError(
            f"parent_result() needs exactly one parent; this job has {len(parents)}"
        )
    return parents[0].result


def run_with_parents(job: ClaimedJob) -> None:
    """Make `job`'s parents what parent_results() returns, in the current context (the
    executor calls this in the attempt's own task, so it holds for that attempt only; a job
    without parents needs no call: a task starts from the worker's context, where there are
    none)."""
    _parents.set(job.parents or ())


# ----- a child is made --------------------------------------------------------------------


async def insert_linked(
    conn: Conn, batch: Sequence[JobRows], insert: Callable[[], Awaitable[list[Job]]]
) -> list[Job]:
    """Insert jobs with `insert` (one per JobRows of `batch`, in order) and link those with
    parents to them, in one transaction (a savepoint inside the caller's); the jobs as they
    stand after (waiting, or released or cancelled by parents that ended already)."""

    async def once() -> list[Job]:
        async with conn.transaction():
            jobs = await insert()
            stand = await link(conn, list(zip((j.id for j in jobs), batch, strict=True)))
            return [_as_linked(job, stand.get(job.id)) for job in jobs]

    return await _retrying_deadlocks(once)


async def insert_copy_linked(conn: Conn, rows: JobRows) -> list[UUID]:
    """insert_copy's jobs, all waiting for the same parents, linked in the same transaction."""

    async def once() -> list[UUID]:
        async with conn.transaction():
            ids = await queries.job_insert_many(conn, rows)
            await link(conn, [(job_id, rows) for job_id in ids])
            return ids

    return await _retrying_deadlocks(once)


async def link(conn: Conn, children: Sequence[tuple[UUID, JobRows]]) -> dict[UUID, JobDependent]:
    """Make each child (just inserted `waiting`) wait for its parents. A child owned by a
    user may only wait for that user's jobs: a parent not found, or another's, raises
    UnknownParent (the caller's savepoint then rolls every row back)."""
    by_owner: dict[str | None, list[tuple[UUID, UUID, str]]] = {}
    for child, rows in children:
        edges = by_owner.setdefault(rows.owner, [])
        edges += [(child, parent, rows.on_parent_failure) for parent in rows.parents]
    stand: dict[UUID, JobDependent] = {}
    for owner, edges in by_owner.items():
        if not edges:
            continue
        wanted = sorted({parent for _, parent, _ in edges})
        await _hold_parents(conn, wanted, owner)
        linked, found = await queries.job_dependencies_add(conn, edges, owner=owner)
        if found < len(wanted):
            seen = await queries.job_parents_list(conn, wanted, user=owner, admin=owner is None)
            raise UnknownParent([p.id for p in seen if p.state is None])
        stand |= linked
    return stand


async def _hold_parents(conn: Conn, parents: list[UUID], owner: str | None) -> None:
    """Archived parents come back to jobs, where job_dependencies_add marks them (a parent
    is archived again once its children have finished), and every parent is held there
    until the transaction ends. Twice at most: a parent the archiver was moving while we
    waited for its row is in job_history for the second look."""
    for _ in range(2):
        await queries.job_history_restore(
            conn, parents, user=owner, admin=owner is None, states=TERMINAL_STATES
        )
        if await queries.job_lock_many(conn, parents) == len(parents):
            return


def _as_linked(job: Job, stand: JobDependent | None) -> Job:
    if stand is None:
        return job
    return dataclasses.replace(
        job,
        state=stand.state,
        run_at=stand.run_at,
        finished_at=stand.finished_at,
        errors=stand.errors,
        pending_parents=stand.pending_parents,
        on_parent_failure=stand.on_parent_failure,
    )


# ----- parents end ------------------------------------------------------------------------


async def settle(conn: Conn, ended: Iterable[UUID]) -> list[queries.Settled]:
    """Count the ends of jobs `ended` (written by the caller's transaction, which holds their
    rows) for their children; then the ends of the children that cancelled for theirs, and
    so on down. Each level is a statement of its own: a later statement sees a grandchild
    whose insert an earlier one waited for. Returns every child whose state changed."""
    changed: list[queries.Settled] = []
    level = sorted(set(ended))
    while level:
        settled = await queries.job_dependencies_settle(conn, level)
        changed += settled
        level = sorted(s.id for s in settled if s.state is JobState.CANCELLED and s.has_children)
    return changed


async def record_with_children(
    conn: Conn, outcomes: Sequence[Outcome], *, worker_id: str, policy: queries.OutcomePolicy
) -> dict[UUID, queries.Recorded]:
    """Write the outcomes the one-statement write left alone, the jobs with children (and
    any taken over meanwhile, which stay refused), with their children's settling, in one
    transaction. Rows are written in id order, the order child inserts lock parents in."""
    ordered = sorted(outcomes, key=lambda o: o.id)

    async def once() -> dict[UUID, queries.Recorded]:
        async with conn.transaction():
            recorded = await queries.job_record_outcomes(
                conn, ordered, worker_id=worker_id, policy=policy, with_children=True
            )
            await settle(conn, (i for i, r in recorded.items() if _ended(r)))
            return recorded

    return await _retrying_deadlocks(once)


def _ended(recorded: queries.Recorded) -> bool:
    return recorded.has_children and recorded.state.is_terminal


# ----- a child is claimed -----------------------------------------------------------------


async def with_parents(conn: Conn, claimed: list[ClaimedJob]) -> list[ClaimedJob]:
    """The claimed jobs, those with parents carrying their parents' ends (one read for the
    whole claim) and their args without the parents' ids. A claim without such jobs is
    returned as it is: the common claim pays a dict lookup per job. If the read fails, those
    jobs carry `parents=None`, and the executor puts them back without spending an attempt."""
    if not any(PARENTS_KEY in job.args for job in claimed):
        return claimed
    ids = {job.id: parent_ids(job.args) for job in claimed if PARENTS_KEY in job.args}
    found: dict[UUID, ParentResult] | None
    try:
        found = await queries.job_parent_results(conn, list({p for ps in ids.values() for p in ps}))
    except DB_ERRORS as exc:
        log.warning("parents' results not read; their children will be put back", error=str(exc))
        found = None
    return [_with_parents(job, ids[job.id], found) if job.id in ids else job for job in claimed]


def _with_parents(
    job: ClaimedJob, ids: Sequence[UUID], found: dict[UUID, ParentResult] | None
) -> ClaimedJob:
    parents = None
    if found is not None:  # a parent pruned by hand is left out, not invented
        parents = tuple(found[p] for p in ids if p in found)
    return dataclasses.replace(job, args=without_parents(job.args) or {}, parents=parents)


async def _retrying_deadlocks(once: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction again when PostgreSQL broke a deadlock by aborting it: a child's
    insert and an outcome batch can lock the same parents in different orders."""
    for attempt in range(1, DEADLOCK_TRIES + 1):
        try:
            return await once()
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_TRIES:
                raise
            log.info("deadlock broken; trying again", attempt=attempt)
    raise AssertionError("unreachable")
