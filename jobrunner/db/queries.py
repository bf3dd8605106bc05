"""Typed wrappers around the named statements in queries.sql.

Callers never see asyncpg records: rows become models. Database errors pass through as
asyncpg's exceptions; `jobrunner.db.errors` says which of them are worth a retry.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any, LiteralString
from uuid import UUID

from jobrunner.db.ids import time_ordered_ids
from jobrunner.db.pool import Conn, Pool, dump_json
from jobrunner.models import (
    KEEP,
    STATE_OF,
    AccessRules,
    ClaimedJob,
    HistoryEntry,
    Job,
    JobDependent,
    JobLink,
    JobMotion,
    JobProgress,
    JobState,
    Outcome,
    ParentResult,
    QueueChanges,
    QueueControls,
    Schedule,
    ThroughputMinute,
    User,
    UserAccess,
    WebhookDelivery,
    WorkerInfo,
)
from jobrunner.progress import Progress, ProgressReport, progress_of

if TYPE_CHECKING:
    from asyncpg.prepared_stmt import PreparedStatement

    from jobrunner.job_rows import JobRows

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(text: str) -> dict[str, LiteralString]:
    """The named statements of a queries.sql-style file: `-- name: x` starts each."""
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    names = parts[1::2]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # a dict would keep the last silently, and callers would run the wrong one
        raise ValueError(f"statements named twice: {repeated}")
    return {
        name: _without_trailing_comments(body)
        for name, body in zip(names, parts[2::2], strict=True)
    }


def _without_trailing_comments(body: str) -> str:
    """The statement, without the comment lines after it: a heading between two statements
    (`-- ===== Jobs =====`) belongs to neither. The body's first line (the rest of its
    `-- name:` line) stays. Line by line, not by a regex anchored at the end: that one was
    tried at every line of every statement, ~6 ms of every process's import (a worker's
    start)."""
    lines = body.rstrip().split("\n")
    while len(lines) > 1 and (not lines[-1].strip() or lines[-1].lstrip().startswith("--")):
        lines.pop()
    return "\n".join(lines).strip()


QUERIES: dict[str, LiteralString] = load_queries(
    resources.files("jobrunner.db").joinpath("queries.sql").read_text()
)


@dataclass(frozen=True, slots=True)
class OutcomePolicy:
    """The worker's side of job_record_outcomes: the backoff (seconds) for jobs whose row
    names none, and how many times a job may be deferred before a defer counts."""

    backoff_base: float
    backoff_cap: float
    max_deferrals: int
    delivery: JobRows  # a webhook delivery job as the parameter maker makes it (its args unused)


def _made_elsewhere(rows: JobRows) -> tuple[Any, ...]:
    """The columns of a job a statement inserts itself (a webhook delivery), as bound
    parameters: queue, task, priority, max_attempts, timeout, backoff base and cap."""
    return (
        rows.queue,
        rows.task,
        rows.priority,
        rows.max_attempts,
        rows.timeout,
        rows.backoff_base,
        rows.backoff_cap,
    )


async def job_insert(conn: Conn, rows: JobRows, *, ring: bool = True) -> Job | None:
    """Insert the one job of `rows`; None when a live job holds the same dedup key. `ring`:
    NOTIFY its queue in this transaction (else the caller rings after the commit)."""
    row = await conn.fetchrow(
        QUERIES["job_insert"],
        rows.queue,
        rows.task,
        dump_json(rows.args[0]),
        rows.priority,
        rows.run_at,
        rows.max_attempts,
        rows.timeout,
        rows.dedup_key,
        rows.owner,
        rows.callback_url,
        rows.delay_seconds,
        rows.backoff_base,
        rows.backoff_cap,
        ring,
        rows.fairness_key,
        bool(rows.parents),
        list(rows.tags),
        _trace_json(rows),
    )
    return rows.made(0, row) if row is not None else None


async def job_insert_each(conn: Conn, batch: Sequence[JobRows], *, ring: bool) -> list[Job]:
    """Insert the one job of each JobRows in one statement; the jobs in the batch's order."""
    rows = await conn.fetch(
        QUERIES["job_insert_each"],
        [r.queue for r in batch],
        [r.task for r in batch],
        [dump_json(r.args[0]) for r in batch],  # as text[]: cheaper to send than jsonb[]
        [r.priority for r in batch],
        [r.max_attempts for r in batch],
        [r.run_at for r in batch],
        [r.delay_seconds for r in batch],
        [r.timeout for r in batch],
        [r.owner for r in batch],
        [r.callback_url for r in batch],
        [r.backoff_base for r in batch],
        [r.backoff_cap for r in batch],
        ring,
        [r.fairness_key for r in batch],
        [bool(r.parents) for r in batch],
        [dump_json(list(r.tags)) if r.tags else None for r in batch],
        [_trace_json(r) for r in batch],
    )
    return [made.made(0, row) for made, row in zip(batch, rows, strict=True)]


def _trace_json(rows: JobRows) -> str | None:
    # As text, as the args are: any asyncpg connection sends that, whatever its codecs.
    return dump_json(rows.trace_context) if rows.trace_context is not None else None


async def session_live_many(conn: Conn, sessions: Sequence[tuple[UUID, str]]) -> list[bool]:
    """For each (session id, username): is that session live? In the order given."""
    rows = await conn.fetch(
        QUERIES["session_live_many"], [s[0] for s in sessions], [s[1] for s in sessions]
    )
    return [bool(r["live"]) for r in rows]


async def doorbell_ring(conn: Conn, queues: Sequence[str]) -> None:
    await conn.fetchval(QUERIES["doorbell_ring"], list(queues))


async def job_get_live_by_dedup_key(conn: Conn, *, task: str, dedup_key: str) -> Job | None:
    row = await conn.fetchrow(QUERIES["job_get_live_by_dedup_key"], task, dedup_key)
    return Job.from_record(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class CopyTarget:
    """Where a `COPY schema.table (columns) FROM STDIN (FORMAT binary)` statement writes:
    asyncpg builds that statement itself from these."""

    schema: str
    table: str
    columns: tuple[str, ...]

    @classmethod
    def parse(cls, statement: str) -> CopyTarget:
        lines = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
        found = _COPY.fullmatch("\n".join(lines).strip())
        if found is None:
            raise ValueError(f"not a binary COPY ... FROM STDIN: {statement!r}")
        schema, table, columns = found.groups()
        return cls(schema, table, tuple(c.strip() for c in columns.split(",")))


_COPY = re.compile(
    r"COPY (\w+)\.(\w+) \(([\w,\s]+)\)\s+FROM STDIN \(FORMAT binary\);?", re.IGNORECASE
)
_JOB_COPY = CopyTarget.parse(QUERIES["job_copy"])
# The order job_insert_many builds its rows in; a job_copy that lists its columns otherwise
# would fill the wrong ones (queue and task are both text), so it is refused at import.
_JOB_COPY_ROW = (
    "id", "queue", "task", "args", "priority", "state", "max_attempts", "run_at", "timeout",
    "owner", "backoff_base", "backoff_cap", "fairness_key", "tags", "trace_context",
)  # fmt: skip
if _JOB_COPY.columns != _JOB_COPY_ROW:
    raise RuntimeError(f"job_copy's columns {_JOB_COPY.columns} are not {_JOB_COPY_ROW}")


async def job_insert_many(conn: Conn, jobs: JobRows) -> list[UUID]:
    """Insert the jobs with job_copy after job_insert_many_start, in one transaction (a savepoint
    inside the caller's). Returns their ids, in the order of `jobs.args`.

    COPY rather than INSERT ... SELECT FROM unnest: 10,000 jobs cost PostgreSQL ~60 ms
    instead of ~95 (no function call per row, a WAL record per page instead of per row), and
    the rows stream while asyncpg encodes the rest: `jobrunner bench` went from 72,000 to
    110,000 jobs/s on this project's 2-CPU VM."""
    async with conn.transaction():
        start = await conn.fetchrow(
            QUERIES["job_insert_many_start"],
            jobs.queue,
            jobs.run_at,
            jobs.delay_seconds,
            bool(jobs.parents),
        )
        assert start is not None
        ids = time_ordered_ids(start["id_ms"], len(jobs.args))
        state, run_at, tags = start["state"], start["run_at"], list(jobs.tags)
        await conn.copy_records_to_table(
            _JOB_COPY.table,
            schema_name=_JOB_COPY.schema,
            columns=_JOB_COPY.columns,
            records=[
                (job_id, jobs.queue, jobs.task, args, jobs.priority, state, jobs.max_attempts,
                 run_at, jobs.timeout, jobs.owner, jobs.backoff_base, jobs.backoff_cap,
                 jobs.fairness_key, tags, jobs.trace_context)
                for job_id, args in zip(ids, jobs.args, strict=True)
            ],
        )  # fmt: skip
    return ids


@dataclass(frozen=True, slots=True)
class LanePosition:
    """A lane of a queue (priority, fairness key) and a place in it, in claim order."""

    queue: str
    priority: int
    fairness_key: str
    run_at: datetime
    id: UUID


def _position_arrays(positions: Sequence[LanePosition]) -> list[list[Any]]:
    return [
        [p.queue for p in positions],
        [p.priority for p in positions],
        [p.fairness_key for p in positions],
        [p.run_at for p in positions],
        [p.id for p in positions],
    ]


async def job_claim(
    conn: Conn,
    *,
    queues: Sequence[str],
    worker_id: str,
    limit: int,
    lease_seconds: float,
    after_keys: Sequence[str] | None = None,
    limited: bool = False,
    positions: Sequence[LanePosition] | None = None,
) -> list[ClaimedJob]:
    """Claim up to `limit` jobs, taking turns between fairness keys from `after_keys` (one
    per queue: where this worker's last claim in that queue stopped; default from the
    first key). `limited`: take from the queues with limits (the caller holds their rows
    through queue_lock_limited) instead of from those without. `positions` (while a long
    transaction holds back cleanup; jobrunner.worker.lanes): lanes whose entries before the
    place given are all claimed, claimed with job_claim_from_positions."""
    args = (
        list(queues),
        worker_id,
        limit,
        lease_seconds,
        list(after_keys) if after_keys is not None else [""] * len(queues),
        limited,
    )
    if positions is None:
        rows = await conn.fetch(QUERIES["job_claim"], *args)
    else:
        rows = await conn.fetch(
            QUERIES["job_claim_from_positions"], *args, *_position_arrays(positions)
        )
    return [
        ClaimedJob(
            id=r["id"],
            queue=r["queue"],
            task=r["task"],
            args=r["args"],
            attempt=r["attempt"],
            max_attempts=r["max_attempts"],
            timeout=r["timeout"],
            priority=r["priority"],
            fairness_key=r["fairness_key"],
            trace_context=r["trace_context"],
            waited=r["waited"],
            run_at=r["run_at"] if positions is not None else None,
        )
        for r in rows
    ]


async def job_lanes_behind(conn: Conn, positions: Sequence[LanePosition]) -> list[LanePosition]:
    """For each of `positions`, the first queued job of its lane behind it, if any."""
    rows = await conn.fetch(QUERIES["job_lanes_behind"], *_position_arrays(positions))
    return [
        LanePosition(r["queue"], r["priority"], r["fairness_key"], r["run_at"], r["id"])
        for r in rows
    ]


async def session_claim_plans(conn: Conn) -> None:
    await conn.fetchrow(QUERIES["session_claim_plans"])


async def session_outcome_plans(conn: Conn) -> None:
    await conn.fetchrow(QUERIES["session_outcome_plans"])


async def queue_lock_limited(conn: Conn, queues: Sequence[str]) -> list[str]:
    """Lock the control rows of those of `queues` with limits, until the transaction ends."""
    return [r["name"] for r in await conn.fetch(QUERIES["queue_lock_limited"], list(queues))]


async def queue_limited_names(conn: Conn, queues: Sequence[str]) -> frozenset[str]:
    rows = await conn.fetch(QUERIES["queue_limited_names"], list(queues))
    return frozenset(r["name"] for r in rows)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What an accepted outcome made of its job: its new state, when it runs next (a
    retrying job's; None for any other), and its attempt count (one less than the attempt's
    own when a deferral gave the attempt back)."""

    state: JobState
    run_at: datetime | None
    attempt: int
    has_children: bool = False


async def job_record_outcomes(
    conn: Conn,
    outcomes: Sequence[Outcome],
    *,
    worker_id: str,
    policy: OutcomePolicy,
    with_children: bool = False,
) -> dict[UUID, Recorded]:
    """Write outcomes; returns what became of each one accepted (not fenced off). Jobs that
    have children are left alone unless `with_children` (jobrunner.dependencies writes them,
    in a transaction that settles their children too)."""
    rows = await conn.fetch(
        QUERIES["job_record_outcomes"],
        [o.id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.kind for o in outcomes],
        [o.result_json for o in outcomes],
        [o.error_json for o in outcomes],
        [o.retry_delay for o in outcomes],
        worker_id,
        policy.backoff_base,
        policy.backoff_cap,
        policy.max_deferrals,
        *_made_elsewhere(policy.delivery),
        with_children,
    )
    return {
        r["id"]: Recorded(STATE_OF[r["state"]], r["run_at"], r["attempt"], r["has_children"])
        for r in rows
    }


async def job_heartbeat(
    conn: Conn, held: Sequence[tuple[UUID, int]], *, worker_id: str, lease_seconds: float
) -> dict[UUID, bool]:
    """Extend leases; maps each attempt still held to whether a cancel was requested."""
    rows = await conn.fetch(
        QUERIES["job_heartbeat"],
        [h[0] for h in held],
        [h[1] for h in held],
        worker_id,
        lease_seconds,
    )
    return {r["id"]: r["cancel_requested"] for r in rows}


async def job_release_many(
    conn: Conn, held: Sequence[tuple[UUID, int]], *, worker_id: str
) -> list[UUID]:
    rows = await conn.fetch(
        QUERIES["job_release_many"], [h[0] for h in held], [h[1] for h in held], worker_id
    )
    return [r["id"] for r in rows]


async def job_tasks_unknown(conn: Conn, *, scan: int = 5000) -> dict[str, int]:
    """Task name -> jobs waiting because a worker did not know the task."""
    rows = await conn.fetch(QUERIES["job_tasks_unknown"], scan)
    return {r["task"]: int(r["jobs"]) for r in rows}


async def job_get_visible(conn: Conn, job_id: UUID, *, user: str | None, admin: bool) -> Job | None:
    row = await conn.fetchrow(QUERIES["job_get_visible"], job_id, user, admin)
    return Job.from_record(row) if row is not None else None


async def job_list_id_range(
    conn: Conn, low: UUID, high: UUID, *, user: str | None, admin: bool, limit: int
) -> list[Job]:
    rows = await conn.fetch(QUERIES["job_list_id_range"], low, high, user, admin, limit)
    return [Job.from_record(r) for r in rows]


async def job_cancel(conn: Conn, job_id: UUID, *, user: str | None, admin: bool) -> Job | None:
    row = await conn.fetchrow(QUERIES["job_cancel"], job_id, user, admin)
    return Job.from_record(row) if row is not None else None


async def job_retry(conn: Conn, job_id: UUID, *, user: str | None, admin: bool) -> Job | None:
    row = await conn.fetchrow(QUERIES["job_retry"], job_id, user, admin)
    return Job.from_record(row) if row is not None else None


async def job_promote_due(conn: Conn, *, limit: int) -> int:
    rows = await conn.fetch(QUERIES["job_promote_due"], limit)
    return sum(int(r["promoted"]) for r in rows)


@dataclass(frozen=True, slots=True)
class Settled:
    """A job whose state a statement just decided, and whether it has children (whose own
    states then follow from it: job_dependencies_settle)."""

    id: UUID
    state: JobState
    has_children: bool


async def job_rescue_expired(conn: Conn, *, limit: int, delivery: JobRows) -> list[Settled]:
    rows = await conn.fetch(QUERIES["job_rescue_expired"], limit, *_made_elsewhere(delivery))
    return [Settled(r["id"], STATE_OF[r["state"]], r["has_children"]) for r in rows]


async def job_prune(conn: Conn, *, state: JobState, older_than: float, limit: int) -> int:
    pruned: int = await conn.fetchval(QUERIES["job_prune"], state.value, older_than, limit)
    return pruned


# ----- the archive (job_history) -----------------------------------------------------------


async def job_archive(
    conn: Conn, *, older_than: float, limit: int, since: datetime | None = None
) -> tuple[int, datetime | None]:
    """(jobs moved, the newest finished_at among them); `since`: finished_at to start at."""
    row = await conn.fetchrow(QUERIES["job_archive"], older_than, limit, since)
    assert row is not None
    return row["moved"], row["newest"]


async def job_history_restore(
    conn: Conn,
    ids: Sequence[UUID],
    *,
    user: str | None,
    admin: bool,
    states: Iterable[JobState],
) -> list[UUID]:
    rows = await conn.fetch(
        QUERIES["job_history_restore"], list(ids), user, admin, [s.value for s in states]
    )
    return [r["id"] for r in rows]


async def job_lock_many(conn: Conn, ids: Sequence[UUID]) -> int:
    held: int = await conn.fetchval(QUERIES["job_lock_many"], list(ids))
    return held


async def job_history_prune(
    conn: Conn, *, state: JobState, older_than: float, limit: int, default_only: bool
) -> int:
    name: LiteralString = "job_history_default_prune" if default_only else "job_history_prune"
    pruned: int = await conn.fetchval(QUERIES[name], state.value, older_than, limit)
    return pruned


async def job_history_partitions_make(
    conn: Conn,
    *,
    behind: float,
    ahead: float,
    width: float,
    wait: float,
    now: datetime | None = None,
) -> int:
    made: int = await conn.fetchval(
        QUERIES["job_history_partitions_make"], behind, ahead, width, wait, now
    )
    return made


async def job_history_partitions_drop(
    conn: Conn, *, older_than: float, wait: float, now: datetime | None = None
) -> int:
    dropped: int = await conn.fetchval(
        QUERIES["job_history_partitions_drop"], older_than, wait, now
    )
    return dropped


async def job_history_partitions_list(conn: Conn) -> list[tuple[str, str]]:
    rows = await conn.fetch(QUERIES["job_history_partitions_list"])
    return [(r["name"], r["bounds"]) for r in rows]


async def job_archive_oldest(conn: Conn) -> float | None:
    """Seconds since the oldest finished job still in jobs finished; None when none is."""
    seconds: float | None = await conn.fetchval(QUERIES["job_archive_oldest"])
    return seconds


async def job_archive_due(conn: Conn, *, older_than: float, cap: int) -> int:
    due: int = await conn.fetchval(QUERIES["job_archive_due"], older_than, cap)
    return due


@dataclass(frozen=True, slots=True)
class HistoryPartitions:
    """job_history's partitions but the default one: how many, how many start after now,
    and whether one covers now."""

    made: int
    ahead: int
    covers_now: bool


async def job_history_partitions_ahead(conn: Conn) -> HistoryPartitions:
    row = await conn.fetchrow(QUERIES["job_history_partitions_ahead"])
    assert row is not None  # an aggregate: always one row
    return HistoryPartitions(row["made"], row["ahead"], row["covers_now"])


@dataclass(frozen=True, slots=True)
class DefaultRows:
    """The rows of job_history_default (counted up to a cap) and when they finished."""

    held: int
    oldest: datetime | None
    newest: datetime | None


async def job_history_default_rows(conn: Conn, *, cap: int) -> DefaultRows:
    row = await conn.fetchrow(QUERIES["job_history_default_rows"], cap)
    assert row is not None  # scalar subqueries: always one row
    return DefaultRows(row["held"], row["oldest"], row["newest"])


# ----- dependencies ---------------------------------------------------------------------


async def job_dependencies_add(
    conn: Conn,
    edges: Sequence[tuple[UUID, UUID, str]],
    *,
    owner: str | None,
) -> tuple[dict[UUID, JobDependent], int]:
    """Make each (child, parent, child's on_parent_failure) a dependency. Returns how each
    child stands now, and how many distinct parents were found (and locked)."""
    rows = await conn.fetch(
        QUERIES["job_dependencies_add"],
        [e[0] for e in edges],
        [e[1] for e in edges],
        owner,
        [e[2] for e in edges],
    )
    found = rows[0]["parents_found"] if rows else 0
    return {r["id"]: JobDependent.from_row(r) for r in rows}, found


async def job_dependencies_settle(conn: Conn, ended: Sequence[UUID]) -> list[Settled]:
    rows = await conn.fetch(QUERIES["job_dependencies_settle"], list(ended))
    return [Settled(r["id"], STATE_OF[r["state"]], r["has_children"]) for r in rows]


async def job_parent_results(conn: Conn, ids: Sequence[UUID]) -> dict[UUID, ParentResult]:
    rows = await conn.fetch(QUERIES["job_parent_results"], list(ids))
    return {r["id"]: ParentResult.from_row(r) for r in rows}


async def job_parents_list(
    conn: Conn, ids: Sequence[UUID], *, user: str | None, admin: bool
) -> list[JobLink]:
    rows = await conn.fetch(QUERIES["job_parents_list"], list(ids), user, admin)
    return [JobLink.from_row(r) for r in rows]


async def job_children_list(
    conn: Conn, job_id: UUID, *, user: str | None, admin: bool, limit: int
) -> tuple[list[JobLink], int]:
    """The first `limit` children, and how many there are (counted up to 10,000)."""
    rows = await conn.fetch(QUERIES["job_children_list"], job_id, user, admin, limit)
    return [JobLink.from_row(r) for r in rows], rows[0]["total"] if rows else 0


async def throughput_prune(conn: Conn, *, older_than: float) -> int:
    status = await conn.execute(QUERIES["throughput_prune"], older_than)
    return int(status.split()[-1])


# ----- schedules (jobrunner.schedules) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleClock:
    """A schedule a starting worker syncs, as stored, with the database's clock."""

    name: str
    source: str
    cron: str | None
    next_run_at: datetime | None
    last_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class DueSchedule:
    """A due schedule the firing step holds locked, with the database's clock."""

    now: datetime
    name: str
    task: str
    args: dict[str, Any]
    cron: str
    timezone: str
    queue: str | None
    priority: int | None


@dataclass(frozen=True, slots=True)
class Fired:
    """What one firing did to a schedule: its next tick (None: keep it), the job enqueued
    (None: none, `error` says why), and whether it must be paused (it cannot go on)."""

    name: str
    next_run_at: datetime | None
    job_id: UUID | None
    error: str | None = None
    pause: bool = False


async def schedule_clock_rows(
    conn: Conn, names: Sequence[str]
) -> tuple[datetime, dict[str, ScheduleClock]]:
    rows = await conn.fetch(QUERIES["schedule_clock_rows"], list(names))
    found = {
        r["name"]: ScheduleClock(
            r["name"], r["source"], r["cron"], r["next_run_at"], r["last_run_at"]
        )
        for r in rows
        if r["name"] is not None
    }
    return rows[0]["now"], found


async def schedule_sync_code(
    conn: Conn, declared: Sequence[tuple[str, str, datetime]], *, by: str
) -> list[str]:
    """Insert or update code schedules (name, cron, next tick); returns the names a runtime
    schedule holds, which were left alone."""
    rows = await conn.fetch(
        QUERIES["schedule_sync_code"],
        [d[0] for d in declared],
        [d[1] for d in declared],
        [d[2] for d in declared],
        by,
    )
    return [r["shadowed"] for r in rows]


async def schedule_forget_code(conn: Conn, names: Sequence[str]) -> list[str]:
    rows = await conn.fetch(QUERIES["schedule_forget_code"], list(names))
    return [r["name"] for r in rows]


async def schedule_take_due(conn: Conn, *, limit: int) -> list[DueSchedule]:
    rows = await conn.fetch(QUERIES["schedule_take_due"], limit)
    fields = ("now", "name", "task", "args", "cron", "timezone", "queue", "priority")
    return [DueSchedule(*(r[f] for f in fields)) for r in rows]


async def schedule_record_fired(conn: Conn, fired: Sequence[Fired]) -> None:
    await conn.execute(
        QUERIES["schedule_record_fired"],
        [f.name for f in fired],
        [f.next_run_at for f in fired],
        [f.job_id for f in fired],
        [f.error for f in fired],
        [f.pause for f in fired],
    )


async def schedule_list(conn: Conn) -> list[Schedule]:
    return [Schedule.from_row(r) for r in await conn.fetch(QUERIES["schedule_list"])]


async def schedule_get(conn: Conn, name: str) -> Schedule | None:
    row = await conn.fetchrow(QUERIES["schedule_get"], name)
    return Schedule.from_row(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class NewSchedule:
    name: str
    task: str
    args: dict[str, Any]
    cron: str
    timezone: str
    queue: str | None
    priority: int | None


async def schedule_add(
    conn: Conn, new: NewSchedule, *, first_run_at: datetime, by: str
) -> Schedule | None:
    """Insert a runtime schedule; None when the name is taken."""
    row = await conn.fetchrow(
        QUERIES["schedule_add"],
        new.name, new.task, new.args, new.cron, new.timezone, new.queue, new.priority,
        first_run_at, by,
    )  # fmt: skip
    return Schedule.from_row(row) if row is not None else None


async def schedule_pause(conn: Conn, name: str) -> bool:
    """Pause it; False when there is no such schedule."""
    return await conn.fetchval(QUERIES["schedule_pause"], name) is not None


async def schedule_resume_lock(conn: Conn, name: str) -> tuple[datetime, str | None, str] | None:
    """(now, cron, timezone) of the schedule, locked for schedule_resume; None if none."""
    row = await conn.fetchrow(QUERIES["schedule_resume_lock"], name)
    return (row["now"], row["cron"], row["timezone"]) if row is not None else None


async def schedule_resume(conn: Conn, name: str, *, next_run_at: datetime | None) -> None:
    await conn.execute(QUERIES["schedule_resume"], name, next_run_at)


async def schedule_delete_runtime(conn: Conn, name: str) -> str | None:
    """'runtime' when deleted, 'code' when refused (a code schedule), None when none."""
    source: str | None = await conn.fetchval(QUERIES["schedule_delete_runtime"], name)
    return source


async def job_queues_waiting(
    conn: Conn, *, cap: int, max_queues: int = 1000, skip: Collection[str] = ()
) -> dict[str, int]:
    """Queue -> its queued jobs (counted up to `cap`), for the queues that have any, but
    those in `skip`."""
    rows = await conn.fetch(QUERIES["job_queues_waiting"], cap, max_queues, list(skip))
    return {r["queue"]: int(r["jobs"]) for r in rows}


# ----- the worker registry --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """What a worker writes of itself when it registers."""

    id: str
    host: str
    pid: int
    queues: Sequence[str]
    tasks: Sequence[str]
    concurrency: int


async def worker_register(conn: Conn, worker: WorkerRow) -> None:
    await conn.execute(
        QUERIES["worker_register"],
        worker.id,
        worker.host,
        worker.pid,
        list(worker.queues),
        list(worker.tasks),
        worker.concurrency,
    )


async def worker_touch(conn: Conn, worker_id: str) -> bool:
    """False when the worker has no live row (pruned, or never written): register it."""
    return await conn.fetchval(QUERIES["worker_touch"], worker_id) is not None


async def worker_stop(conn: Conn, worker_id: str) -> None:
    await conn.execute(QUERIES["worker_stop"], worker_id)


async def worker_list(conn: Conn, *, seen_timeout: float, limit: int = 500) -> list[WorkerInfo]:
    rows = await conn.fetch(QUERIES["worker_list"], seen_timeout, limit)
    return [WorkerInfo.from_row(r) for r in rows]


async def worker_served_queues(conn: Conn, *, window: float) -> frozenset[str]:
    """The queues of every worker seen within the last `window` seconds."""
    return frozenset(r["queue"] for r in await conn.fetch(QUERIES["worker_served_queues"], window))


async def worker_prune(conn: Conn, *, older_than: float) -> int:
    status = await conn.execute(QUERIES["worker_prune"], older_than)
    return int(status.split()[-1])


async def clock_now(conn: Conn) -> datetime:
    now: datetime = await conn.fetchval(QUERIES["clock_now"])
    return now


async def maintenance_try_lock(conn: Conn) -> bool:
    return bool(await conn.fetchval(QUERIES["maintenance_try_lock"]))


async def maintenance_unlock(conn: Conn) -> None:
    await conn.fetchval(QUERIES["maintenance_unlock"])


async def ping(conn: Conn) -> None:
    await conn.fetchval(QUERIES["ping"])


# ----- CLI ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    version_num: int
    database: str


async def server_info(conn: Conn) -> ServerInfo:
    row = await conn.fetchrow(QUERIES["server_info"])
    assert row is not None
    return ServerInfo(row["version"], row["version_num"], row["database"])


@dataclass(frozen=True, slots=True)
class SnapshotHolder:
    """Who holds the server's oldest snapshot: a session (its pid) or a prepared transaction
    (its gid as application_name), and for how long."""

    holder: str  # 'session' | 'prepared transaction'
    pid: int | None
    user: str | None
    application_name: str | None
    client_addr: str | None
    state: str | None
    query: str | None  # None where this role may not read it
    held_for: timedelta
    xmin_age: int  # transactions begun since its snapshot


async def server_oldest_snapshot(
    conn: Conn, *, this_database: bool = False
) -> SnapshotHolder | None:
    row = await conn.fetchrow(QUERIES["server_oldest_snapshot"], this_database)
    if row is None:
        return None
    return SnapshotHolder(
        holder=row["holder"],
        pid=row["pid"],
        user=row["usename"],
        application_name=row["application_name"] or None,
        client_addr=row["client_addr"],
        state=row["state"],
        query=row["query"],
        held_for=row["held_for"],
        xmin_age=row["xmin_age"],
    )


async def notify_send(conn: Conn, *, channel: str, payload: str) -> None:
    await conn.fetchval(QUERIES["notify_send"], channel, payload)


# ----- API ------------------------------------------------------------------------------
# Rows of the API's own tables come back as plain dicts; jobrunner.accounts and
# jobrunner.client turn them into their models.


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters of a job or history listing; None means any."""

    state: str | None = None
    task: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    tags: tuple[str, ...] = ()  # the jobs carry every one of these (jobrunner.search)
    args: dict[str, Any] | None = None  # the jobs' args contain this object

    @property
    def searches(self) -> bool:
        """Whether it filters by tags or args, which GIN indexes answer when rare."""
        return bool(self.tags) or self.args is not None

    def search_params(self) -> list[Any]:
        return [list(self.tags) or None, self.args]


async def user_insert(
    conn: Conn,
    *,
    username: str,
    password_hash: str,
    role: str,
    webhook_secret: str,
    disabled: bool = False,
) -> User | None:
    """The new account (disabled: awaiting approval), or None when the name is taken."""
    row = await conn.fetchrow(
        QUERIES["user_insert"], username, password_hash, role, webhook_secret, disabled
    )
    return User.from_row(row) if row is not None else None


async def user_get(conn: Conn, username: str) -> User | None:
    row = await conn.fetchrow(QUERIES["user_get"], username)
    return User.from_row(row) if row is not None else None


async def user_get_password_hash(conn: Conn, username: str) -> tuple[str, bool] | None:
    """(password hash, disabled) of a user, or None."""
    row = await conn.fetchrow(QUERIES["user_get_password_hash"], username)
    return (row["password_hash"], row["disabled"]) if row is not None else None


async def user_set_password(
    conn: Conn, *, username: str, password_hash: str, keep_session: UUID | None
) -> bool:
    """Set a user's password and revoke their sessions but `keep_session`."""
    changed = await conn.fetchval(
        QUERIES["user_set_password"], username, password_hash, keep_session
    )
    return changed is not None


async def user_set_disabled(conn: Conn, *, username: str, disabled: bool) -> User | None:
    row = await conn.fetchrow(QUERIES["user_set_disabled"], username, disabled)
    return User.from_row(row) if row is not None else None


async def user_set_max_priority(conn: Conn, *, username: str, max_priority: int) -> User | None:
    row = await conn.fetchrow(QUERIES["user_set_max_priority"], username, max_priority)
    return User.from_row(row) if row is not None else None


async def user_delete(conn: Conn, username: str) -> bool:
    """Delete a user who owns no jobs; False when none was deleted."""
    return await conn.fetchval(QUERIES["user_delete"], username) is not None


async def user_owns_jobs(conn: Conn, username: str) -> bool:
    return bool(await conn.fetchval(QUERIES["user_owns_jobs"], username))


async def user_set_webhook_secret(conn: Conn, *, username: str, secret: str) -> User | None:
    row = await conn.fetchrow(QUERIES["user_set_webhook_secret"], username, secret)
    return User.from_row(row) if row is not None else None


async def session_revoke_all(conn: Conn, *, username: str) -> None:
    await conn.execute(QUERIES["session_revoke_all"], username)


async def user_list(conn: Conn) -> list[User]:
    return [User.from_row(r) for r in await conn.fetch(QUERIES["user_list"])]


async def session_create(conn: Conn, *, username: str, ttl: float, refresh_jti: UUID) -> UUID:
    session_id: UUID = await conn.fetchval(QUERIES["session_create"], username, ttl, refresh_jti)
    return session_id


async def session_principal(conn: Conn, *, session_id: UUID, username: str) -> str | None:
    """The role of the user holding a live session, or None."""
    role: str | None = await conn.fetchval(QUERIES["session_principal"], session_id, username)
    return role


@dataclass(frozen=True, slots=True)
class RateBucket:
    """A token bucket in jobrunner.rate_buckets: holds up to `burst`, refills `per_second`."""

    key: str
    per_second: float
    burst: float


async def session_principal_take(
    conn: Conn, *, session_id: UUID, username: str, bucket: RateBucket, want: int = 1
) -> tuple[str, int] | None:
    """(role, how many of `want` tokens were taken from `bucket`) for a live session, or
    None."""
    row = await conn.fetchrow(
        QUERIES["session_principal_take"],
        session_id,
        username,
        bucket.key,
        bucket.per_second,
        bucket.burst,
        want,
    )
    return (row["role"], row["taken"]) if row is not None else None


async def refresh_token_use(
    conn: Conn, *, jti: UUID, session_id: UUID, new_jti: UUID
) -> tuple[str, int] | None:
    """Spend a refresh token for a new one: (username, the new pair's iat), or None if it
    cannot be spent."""
    row = await conn.fetchrow(QUERIES["refresh_token_use"], jti, session_id, new_jti)
    return (row["username"], row["issued_at"]) if row is not None else None


async def refresh_token_successor(
    conn: Conn, *, jti: UUID, session_id: UUID, grace: float
) -> tuple[UUID, str, int] | None:
    """(successor jti, username, its iat) of a token rotated less than `grace` s ago."""
    row = await conn.fetchrow(QUERIES["refresh_token_successor"], jti, session_id, grace)
    if row is None:
        return None
    return row["successor_jti"], row["username"], row["issued_at"]


async def refresh_token_reused(conn: Conn, *, jti: UUID, session_id: UUID) -> bool:
    """Revoke the session if this refresh token was spent before; True if it was."""
    return await conn.fetchval(QUERIES["refresh_token_reused"], jti, session_id) is not None


async def session_revoke(conn: Conn, *, session_id: UUID, username: str) -> bool:
    return await conn.fetchval(QUERIES["session_revoke"], session_id, username) is not None


async def rate_bucket_take(conn: Conn, bucket: RateBucket) -> bool:
    taken = await conn.fetchval(
        QUERIES["rate_bucket_take"], bucket.key, bucket.per_second, bucket.burst
    )
    return taken is not None


async def rate_bucket_take_upto(conn: Conn, bucket: RateBucket, want: int) -> int:
    taken: int = await conn.fetchval(
        QUERIES["rate_bucket_take_upto"], bucket.key, bucket.per_second, bucket.burst, want
    )
    return taken


async def rate_bucket_wait(conn: Conn, *, key: str, per_second: float) -> float:
    wait: float | None = await conn.fetchval(QUERIES["rate_bucket_wait"], key, per_second)
    return wait or 0.0


async def job_count_unfinished(conn: Conn | Pool, *, owner: str, cap: int) -> int:
    """`conn` may be a pool: the count is one statement, on whichever connection is free."""
    count: int = await conn.fetchval(QUERIES["job_count_unfinished"], owner, cap)
    return count


async def idempotency_key_get(
    conn: Conn, *, owner: str, key: str, ttl: float
) -> tuple[str, UUID] | None:
    row = await conn.fetchrow(QUERIES["idempotency_key_get"], owner, key, ttl)
    return (row["request_hash"], row["job_id"]) if row is not None else None


async def idempotency_key_claim(
    conn: Conn, *, owner: str, key: str, request_hash: str, job_id: UUID, ttl: float
) -> bool:
    """False when the key is held by another submission (waits for it to commit or not)."""
    claimed = await conn.fetchval(
        QUERIES["idempotency_key_claim"], owner, key, request_hash, job_id, ttl
    )
    return claimed is not None


@dataclass(frozen=True, slots=True)
class Include:
    """The bulky parts of a job a listing reads: left out unless asked for."""

    args: bool = False
    result: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """How much of a listing to read: `limit` rows, and, when bulky parts are included, no
    more than `max_bytes` of them (at least one row, so a page always moves on)."""

    limit: int
    include: Include = Include()
    max_bytes: int | None = None


CURSOR_PREFETCH = 16  # rows asyncpg holds at once while a byte-capped page is read


async def _fetch_page(
    conn: Conn, sql: LiteralString, params: list[Any], page: Page, *, fresh: bool = False
) -> tuple[list[Any], bool]:
    """The rows of `sql`, and whether the byte cap cut the page short. Under a cap the rows
    come through a cursor a few at a time, so the rows past the cap are never read. `fresh`:
    planned for these values (see fresh_statement)."""
    statement = await fresh_statement(conn, sql) if fresh else None
    if page.max_bytes is None or not (page.include.args or page.include.result):
        if statement is not None:
            return list(await statement.fetch(*params)), False
        return list(await conn.fetch(sql, *params)), False
    kept: list[Any] = []
    size = 0
    async with conn.transaction():
        rows = (
            statement.cursor(*params, prefetch=CURSOR_PREFETCH)
            if statement is not None
            else conn.cursor(sql, *params, prefetch=CURSOR_PREFETCH)
        )
        async for row in rows:
            size += row["payload_bytes"]
            if kept and size > page.max_bytes:
                return kept, True
            kept.append(row)
    return kept, False


async def job_list(
    conn: Conn, *, owner: str | None, before: UUID | None, where: JobFilter, page: Page
) -> tuple[list[Job], bool]:
    """Newest first; `owner` None lists every user's jobs (admins). Also says whether the
    byte cap cut the page short."""
    params: list[Any] = [
        before,
        where.state,
        where.task,
        where.queue,
        where.created_after,
        where.created_before,
        page.limit,
        page.include.args,
        page.include.result,
    ]
    search, fresh = where.search_params(), where.searches
    if owner is None:
        sql, params = QUERIES["job_list_all"], [*params, *search]
    else:
        sql, params = QUERIES["job_list_owned"], [*params, owner, *search]
    rows, cut = await _fetch_page(conn, sql, params, page, fresh=fresh)
    return [Job.from_record(r) for r in rows], cut


async def fresh_statement(conn: Conn, sql: LiteralString) -> PreparedStatement:
    """`sql` prepared anew, so it is planned for the values it runs with. PostgreSQL plans a
    prepared statement's first five runs for their values and may then settle on a generic
    plan; a search's best plan depends on its values (a rare tag reads jobs_tags_idx, a
    common one walks the primary key), and a generic plan cannot use a GIN index behind
    `($n IS NULL OR ...)` at all. Costs the parse a cached statement saves (~0.1 ms)."""
    return await conn.prepare(sql)


async def history_list(
    conn: Conn,
    *,
    owner: str | None,
    after: tuple[datetime, UUID] | None,
    where: JobFilter,
    page: Page,
) -> tuple[list[HistoryEntry], bool]:
    """Finished jobs newest first, after the (finished_at, id) cursor; `owner` None: all.
    Also says whether the byte cap cut the page short."""
    params: list[Any] = [
        after[0] if after else None,
        after[1] if after else None,
        where.state,
        where.task,
        where.queue,
        where.created_after,
        where.created_before,
        page.limit,
        page.include.result,
    ]
    search, fresh = where.search_params(), where.searches
    if owner is None:
        sql, params = QUERIES["history_list_all"], [*params, *search]
    else:
        sql, params = QUERIES["history_list_owned"], [*params, owner, *search]
    rows, cut = await _fetch_page(conn, sql, params, page, fresh=fresh)
    return [HistoryEntry.from_row(r) for r in rows], cut


async def job_get_many(conn: Conn, ids: Sequence[UUID]) -> list[Job]:
    rows = await conn.fetch(QUERIES["job_get_many"], list(ids))
    return [Job.from_record(r) for r in rows]


async def job_motion_many(conn: Conn, ids: Sequence[UUID]) -> list[JobMotion]:
    rows = await conn.fetch(QUERIES["job_motion_many"], list(ids))
    return [JobMotion.from_record(r) for r in rows]


async def job_progress_many(
    conn: Conn, ids: Sequence[UUID], *, error_chars: int
) -> list[JobProgress]:
    rows = await conn.fetch(QUERIES["job_progress_many"], list(ids), error_chars)
    return [JobProgress.from_record(r) for r in rows]


async def job_count_by_state(conn: Conn, *, cap: int) -> list[tuple[str, str, int]]:
    """(queue, state, count) rows; a count equal to `cap` means at least that many."""
    rows = await conn.fetch(QUERIES["job_count_by_state"], cap)
    return [(r["queue"], r["state"], r["jobs"]) for r in rows]


async def job_count_live_by_queue(conn: Conn, *, cap: int) -> list[tuple[str, str, int]]:
    """(queue, state, count) of unfinished jobs; a count equal to `cap` means at least."""
    rows = await conn.fetch(QUERIES["job_count_live_by_queue"], cap)
    return [(r["queue"], r["state"], r["jobs"]) for r in rows]


async def job_count_owned_live_by_queue(
    conn: Conn, *, owner: str, limit: int
) -> list[tuple[str, str, int]]:
    """(queue, state, count) of one user's unfinished jobs, over at most `limit` of them."""
    rows = await conn.fetch(QUERIES["job_count_owned_live_by_queue"], owner, limit)
    return [(r["queue"], r["state"], r["jobs"]) for r in rows]


async def job_delivery_latest(conn: Conn, job_id: UUID) -> WebhookDelivery | None:
    row = await conn.fetchrow(QUERIES["job_delivery_latest"], job_id)
    return WebhookDelivery.from_row(row) if row is not None else None


async def throughput_recent(conn: Conn, *, minutes: int) -> list[ThroughputMinute]:
    rows = await conn.fetch(QUERIES["throughput_recent"], minutes)
    return [ThroughputMinute.from_row(r) for r in rows]


async def job_queue_oldest_queued(
    conn: Conn, queues: Sequence[str], *, max_lanes: int
) -> dict[str, float]:
    """Queue -> seconds its oldest queued job has waited since its run_at (queues with none
    queued are left out); exact up to `max_lanes` lanes a queue."""
    rows = await conn.fetch(QUERIES["job_queue_oldest_queued"], list(queues), max_lanes)
    return {r["queue"]: r["oldest_seconds"] for r in rows}


# ----- API: housekeeping (for the maintenance tick) -------------------------------------


async def rate_bucket_prune(conn: Conn, *, idle_seconds: float) -> int:
    status = await conn.execute(QUERIES["rate_bucket_prune"], idle_seconds)
    return int(status.split()[-1])


async def api_state_prune(conn: Conn, *, idempotency_ttl: float, session_grace: float) -> int:
    """Forget expired idempotency keys and ended sessions; returns the rows deleted."""
    deleted: int = await conn.fetchval(QUERIES["api_state_prune"], idempotency_ttl, session_grace)
    return deleted


# ----- dashboard ------------------------------------------------------------------------


async def job_pickup_by_minute(
    conn: Conn, *, minutes: int, sample: int = 5000
) -> list[tuple[datetime, float, int]]:
    """(minute, median pickup seconds, jobs) over a bounded sample of recently finished jobs."""
    rows = await conn.fetch(QUERIES["job_pickup_by_minute"], minutes, sample)
    return [(r["minute"], float(r["pickup_p50"]), int(r["jobs"])) for r in rows]


# ----- queues ---------------------------------------------------------------------------


async def queue_list(conn: Conn) -> list[QueueControls]:
    return [QueueControls.from_row(r) for r in await conn.fetch(QUERIES["queue_list"])]


async def queue_get(conn: Conn, name: str) -> QueueControls | None:
    row = await conn.fetchrow(QUERIES["queue_get"], name)
    return QueueControls.from_row(row) if row is not None else None


async def queue_list_open(conn: Conn, *, username: str) -> list[QueueControls]:
    rows = await conn.fetch(QUERIES["queue_list_open"], username)
    return [QueueControls.from_row(r) for r in rows]


async def queue_set(conn: Conn, name: str, changes: QueueChanges, *, by: str) -> QueueControls:
    """Create or change a queue's controls (rings its doorbell unless it is paused)."""
    rate = changes.rate
    row = await conn.fetchrow(
        QUERIES["queue_set"],
        name,
        changes.paused,
        changes.max_running is not KEEP,
        None if changes.max_running is KEEP else changes.max_running,
        changes.max_running_per_owner is not KEEP,
        None if changes.max_running_per_owner is KEEP else changes.max_running_per_owner,
        rate is not KEEP,
        None if rate is KEEP or rate is None else rate.limit,
        None if rate is KEEP or rate is None else rate.seconds,
        changes.open_to_all,
        by,
    )
    assert row is not None
    return QueueControls.from_row(row)


async def queue_grant(conn: Conn, *, queue: str, username: str, by: str) -> bool:
    """Open a queue to a user; False when there is no such user."""
    return await conn.fetchval(QUERIES["queue_grant"], queue, username, by) is not None


async def queue_revoke(conn: Conn, *, queue: str, username: str) -> bool:
    """Take a user's grant back; False when there was none."""
    return await conn.fetchval(QUERIES["queue_revoke"], queue, username) is not None


async def queue_access_rules(conn: Conn | Pool) -> AccessRules:
    row = await conn.fetchrow(QUERIES["queue_access_rules"])
    assert row is not None
    return AccessRules.from_row(row)


async def queue_access_get(conn: Conn | Pool, *, username: str, queue: str) -> UserAccess | None:
    row = await conn.fetchrow(QUERIES["queue_access_get"], username, queue)
    if row is None:
        return None
    return UserAccess(admin=row["admin"], max_priority=row["max_priority"], open=row["open"])


# ----- bulk actions (jobrunner.bulk) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class BulkScope:
    """Which jobs a bulk statement reads: `where` among those `user` may touch (every user's
    for `admin`), in `states` (the action's, met with the filter's own state)."""

    user: str | None
    admin: bool
    states: Sequence[JobState]
    where: JobFilter

    def params(self) -> list[Any]:
        w = self.where
        return [
            self.user, self.admin, [s.value for s in self.states], w.task, w.queue,
            w.created_after, w.created_before, *w.search_params(),
        ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class BulkBatch:
    """What one batch did: the jobs it changed, the id the next batch starts after, and how
    many jobs it read (fewer than asked: it was the last)."""

    changed: list[Settled]
    last_id: UUID | None
    scanned: int


BULK_STATEMENTS: dict[str, LiteralString] = {
    "cancel": QUERIES["job_bulk_cancel"],
    "retry": QUERIES["job_bulk_retry"],
    "delete": QUERIES["job_bulk_delete"],
}


async def job_bulk_count(conn: Conn, scope: BulkScope) -> int:
    statement = await fresh_statement(conn, QUERIES["job_bulk_count"])
    count: int = await statement.fetchval(*scope.params())
    return count


async def job_bulk_restore(conn: Conn, scope: BulkScope, *, after: UUID | None, limit: int) -> int:
    """Bring the archived jobs of a retry's batch back to jobs and hold the others there
    (job_bulk_restore), in the batch's transaction, before job_bulk_act retries them."""
    statement = await fresh_statement(conn, QUERIES["job_bulk_restore"])
    row = await statement.fetchrow(*scope.params(), after, limit)
    assert row is not None
    restored: int = row["restored"]
    return restored


async def job_bulk_act(
    conn: Conn, action: str, scope: BulkScope, *, after: UUID | None, limit: int
) -> BulkBatch:
    """One batch of a bulk action (`action` one of BULK_STATEMENTS), in its own statement."""
    statement = await fresh_statement(conn, BULK_STATEMENTS[action])
    rows = await statement.fetch(*scope.params(), after, limit)
    changed = [
        Settled(r["id"], STATE_OF[r["state"]], r["has_children"])
        for r in rows
        if r["id"] is not None
    ]
    return BulkBatch(changed, rows[0]["last_id"], rows[0]["scanned"])


async def bulk_action_insert(
    conn: Conn, *, actor: str, action: str, dry_run: bool, filter: dict[str, Any], jobs: int,
    complete: bool,
) -> tuple[int, datetime]:  # fmt: skip
    row = await conn.fetchrow(
        QUERIES["bulk_action_insert"], actor, action, dry_run, dump_json(filter), jobs, complete
    )
    assert row is not None
    return row["id"], row["at"]


# ----- progress -------------------------------------------------------------------------


async def progress_write_many(
    conn: Conn, reports: Sequence[ProgressReport], *, worker_id: str
) -> dict[UUID, bool]:
    """Write each attempt's latest progress: job id -> True if written, False if skipped
    (locked) but still held; the rest were fenced off (no longer that attempt's)."""
    rows = await conn.fetch(
        QUERIES["progress_write_many"],
        [r.job_id for r in reports],
        [r.attempt for r in reports],
        [r.fraction for r in reports],
        [r.message for r in reports],
        [r.data_json for r in reports],
        worker_id,
    )
    return {r["id"]: r["written"] for r in rows}


async def progress_read_many(conn: Conn, ids: Sequence[UUID]) -> dict[UUID, Progress]:
    """The progress of those of `ids` that ever reported."""
    rows = await conn.fetch(QUERIES["progress_read_many"], list(ids))
    return {r["id"]: progress for r in rows if (progress := progress_of(r)) is not None}
