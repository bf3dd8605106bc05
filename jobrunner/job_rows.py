"""Where a job row is made: the one parameter maker and the one insert core.

Every path that creates jobs (`enqueue` and `enqueue_many`, `Task.enqueue`, the HTTP API's
submissions, webhook deliveries after an outcome or a rescue, periodic ticks, the benchmark's
fill) goes through here:

    caller's JobOptions ─► make_rows(task, args, options) ─► JobRows ─┬─► insert_one   (job_insert: one row, dedup key, doorbell)
                           task defaults filled, args checked,         ├─► insert_each  (job_insert_each: rows of any tasks, one statement)
                           start time checked; nothing written         └─► insert_copy  (job_insert_many_start + COPY: one task, many rows)

Each path counts what it inserted in jobrunner_jobs_enqueued_total (jobrunner.metrics) once
its statement returns: jobs of a transaction later rolled back are counted too.

A task's defaults (queue, priority, max_attempts, timeout, backoff) are applied by make_rows
and nowhere else, so they hold on every path. Start times (run_at, else now + delay, never
before now) are worked out in the database by jobrunner.start_time. Jobs with parents
(depends_on) are inserted `waiting` and linked to them (jobrunner.dependencies.link) in the
same transaction, on every path. The trace current when make_rows runs (if any: see
jobrunner.tracing) goes into each row, so the attempts join it.
"""  # noqa: E501 - the diagram reads better unwrapped

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from jobrunner import dependencies, metrics, search, tracing
from jobrunner.db import queries
from jobrunner.db.pool import Conn, ensure_codecs
from jobrunner.doorbell import Doorbell
from jobrunner.errors import InvalidArguments, JobStateConflict, UnknownTask
from jobrunner.models import PARENTS_KEY, STATE_OF, Job, JobState, ParentFailure, Row
from jobrunner.options import NO_OPTIONS, Backoff, JobOptions, Parent
from jobrunner.registry import get_task

if TYPE_CHECKING:  # types only: tasks imports the client, which imports this module
    from jobrunner.tasks import Task

MAX_BACKOFF_SECONDS = 30 * 86400.0  # the longest backoff cap a job may ask for
MAX_PARENTS = 100_000  # parents one job may wait for (kept in its args: ~40 bytes each)


@dataclass(slots=True)
class JobRows:
    """Jobs of one task, alike in everything but their arguments, ready to insert: the task's
    defaults filled in and every argument checked. One job is a JobRows of one args.

    Not frozen on purpose (treat it as read-only): one is made for every enqueue and every
    HTTP submission, and a frozen dataclass sets its 18 fields through object.__setattr__,
    1.8 µs against 0.6 µs (timeit)."""

    task: str
    args: list[dict[str, Any]]
    queue: str
    priority: int
    max_attempts: int
    timeout: timedelta | None
    backoff_base: timedelta | None
    backoff_cap: timedelta | None
    run_at: datetime | None
    delay_seconds: float | None
    dedup_key: str | None = None
    owner: str | None = None
    fairness_key: str = ""
    callback_url: str | None = None
    parents: tuple[UUID, ...] = ()  # it waits for these (their ids are in its args too)
    on_parent_failure: ParentFailure = "cancel"
    tags: tuple[str, ...] = ()
    trace_context: dict[str, str] | None = None  # the trace they are made in (tracing.carrier)

    def made(self, index: int, row: Row) -> Job:
        """The job inserted from `args[index]`, with what the database decided for it (`row`:
        id, state, run_at, created_at): the rest is what was sent, so the insert need not
        send the row back."""
        return Job(
            id=row["id"],
            queue=self.queue,
            task=self.task,
            args=self.args[index],
            priority=self.priority,
            state=STATE_OF[row["state"]],
            attempt=0,
            max_attempts=self.max_attempts,
            run_at=row["run_at"],
            created_at=row["created_at"],
            started_at=None,
            finished_at=None,
            worker_id=None,
            lease_expires_at=None,
            timeout=self.timeout,
            cancel_requested_at=None,
            result=None,
            errors=[],
            dedup_key=self.dedup_key,
            owner=self.owner,
            callback_url=self.callback_url,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            tags=self.tags,
        )

    def waiting_for(self, parents: Sequence[UUID], on_parent_failure: ParentFailure) -> JobRows:
        """These jobs, waiting for `parents` besides any they wait for already. The ids go in
        their args too, in order: a worker's claim brings the args, so it finds them there."""
        every = tuple(dict.fromkeys((*self.parents, *parents)))
        named = [str(parent) for parent in every]
        return replace(
            self,
            args=[{**args, PARENTS_KEY: named} for args in self.args],
            parents=every,
            on_parent_failure=on_parent_failure,
        )


class TaskDefaults(Protocol):
    """What a job takes from its task unless its options say otherwise."""

    @property
    def queue(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def timeout(self) -> float | None: ...
    @property
    def backoff(self) -> Backoff | None: ...


@dataclass(frozen=True, slots=True)
class _UnknownTaskDefaults:
    # @task's own defaults (jobrunner.tasks.task), for a task this process does not register.
    queue: str = "default"
    priority: int = 0
    max_attempts: int = 3
    timeout: float | None = None
    backoff: Backoff | None = None


UNKNOWN_TASK_DEFAULTS = _UnknownTaskDefaults()


def make_rows(
    task_name: str,
    args_list: Sequence[Mapping[str, Any]],
    options: JobOptions = NO_OPTIONS,
    *,
    unknown_task_ok: bool = False,
) -> JobRows:
    """The one parameter maker: `options` over the task's defaults, the arguments checked.
    Raises UnknownTask or InvalidArguments before anything is written. With
    `unknown_task_ok` (a schedule's tick: the job must wait for a worker that knows the
    task, as any job of an unknown task does), a task this process does not register takes
    @task's defaults and its arguments go unchecked."""
    plain = [a if type(a) is dict else dict(a) for a in args_list]
    task: Task[Any, Any] | None = None
    try:
        task = get_task(task_name)
    except UnknownTask:
        if not unknown_task_ok:
            raise
    defaults: TaskDefaults = task if task is not None else UNKNOWN_TASK_DEFAULTS
    if task is None:
        checked = plain
    elif len(plain) == 1:
        checked = [task.validate_args(plain[0])]
    else:
        checked = task.validate_many(plain)
    _check(task_name, options, many=len(plain) != 1)
    parents = _check_parents(task_name, options)
    tags = _check_tags(task_name, options)
    backoff = options.backoff or defaults.backoff
    rows = JobRows(
        task=task_name,
        args=checked,
        queue=options.queue or defaults.queue,
        priority=defaults.priority if options.priority is None else options.priority,
        max_attempts=options.max_attempts or defaults.max_attempts,
        timeout=_interval(options.timeout if options.timeout is not None else defaults.timeout),
        backoff_base=timedelta(seconds=backoff.base) if backoff else None,
        backoff_cap=timedelta(seconds=backoff.cap) if backoff else None,
        run_at=options.run_at,
        delay_seconds=_seconds(options.delay),
        dedup_key=options.dedup_key,
        owner=options.owner,
        fairness_key=_fairness_key(options),
        callback_url=options.callback_url,
        tags=tags,
        trace_context=tracing.carrier(),
    )
    return rows.waiting_for(parents, options.on_parent_failure or "cancel") if parents else rows


def _check(task: str, options: JobOptions, *, many: bool) -> None:
    if options.delay is not None and options.run_at is not None:
        raise _options_error(task, "give delay or run_at, not both")
    if options.run_at is not None and options.run_at.tzinfo is None:
        raise _options_error(task, "run_at must carry a timezone")
    if many and (options.dedup_key is not None or options.callback_url is not None):
        raise _options_error(task, "dedup_key and callback_url are for single jobs")
    if options.max_attempts is not None and not 1 <= options.max_attempts <= 1000:
        raise _options_error(task, "max_attempts must be between 1 and 1000")
    if options.fairness_key is not None and len(options.fairness_key) > 256:
        raise _options_error(task, "fairness_key is at most 256 characters")
    if options.backoff is not None and options.backoff.cap > MAX_BACKOFF_SECONDS:
        raise _options_error(task, f"backoff cap is at most {MAX_BACKOFF_SECONDS:g}s")


def _check_parents(task: str, options: JobOptions) -> tuple[UUID, ...]:
    depends_on = options.depends_on
    if options.on_parent_failure is not None:
        check_parent_failure(task, options.on_parent_failure)
        if not depends_on:
            raise _options_error(task, "on_parent_failure goes with depends_on")
    if depends_on and options.dedup_key is not None:
        # A duplicate would hand back a job that waits for other parents, or for none.
        raise _options_error(task, "dedup_key does not go with depends_on")
    return parse_parents(task, depends_on)


def _check_tags(task: str, options: JobOptions) -> tuple[str, ...]:
    try:
        return search.check_tags(options.tags)
    except search.InvalidFilter as exc:
        raise _options_error(task, str(exc)) from None


def check_parent_failure(task: str, value: str) -> None:
    if value not in ("cancel", "run"):
        raise _options_error(task, "on_parent_failure is 'cancel' or 'run'")


def parse_parents(task: str, depends_on: Sequence[Parent] | None) -> tuple[UUID, ...]:
    """The ids of the jobs `depends_on` names, each once, in the order named."""
    if not depends_on:
        return ()
    if isinstance(depends_on, (str, bytes, Job)):  # one parent where a list was meant
        raise _options_error(task, "depends_on is a list of jobs or job ids")
    found: dict[UUID, None] = {}
    for parent in depends_on:
        try:
            found[parent.id if isinstance(parent, Job) else UUID(str(parent))] = None
        except ValueError:
            raise _options_error(task, f"depends_on: {parent!r} is not a job id") from None
    if len(found) > MAX_PARENTS:
        raise _options_error(task, f"depends_on names at most {MAX_PARENTS} jobs")
    return tuple(found)


def _fairness_key(options: JobOptions) -> str:
    # Jobs take turns by this key at the claim; an owner's jobs share its turn unless the
    # caller names a finer key, and library jobs with neither share one group ('').
    key = options.fairness_key if options.fairness_key is not None else options.owner
    return key or ""


def _options_error(task: str, message: str) -> InvalidArguments:
    return InvalidArguments(task, [{"loc": ["options"], "msg": message, "type": "value_error"}])


def _seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _interval(value: timedelta | float | None) -> timedelta | None:
    seconds = _seconds(value)
    return timedelta(seconds=seconds) if seconds else None


# ----- the insert core ------------------------------------------------------------------


async def insert_one(conn: Conn, rows: JobRows, *, ring_after: Doorbell | None = None) -> Job:
    """Insert one job; a live job holding the same dedup key is returned instead. Without
    `ring_after` its queue is rung in the same transaction (heard at commit); with it (the
    caller promises `conn` is in no transaction), in the same statement when the doorbell has
    nothing else under way, else by the doorbell just after (jobrunner.doorbell). A job with
    parents is linked to them in the same transaction, which rings for it if it is ready."""
    await ensure_codecs(conn)
    if rows.parents:

        async def insert() -> list[Job]:
            inserted = await queries.job_insert(conn, rows)
            assert inserted is not None  # no dedup key with parents (make_rows)
            return [inserted]

        [job] = await dependencies.insert_linked(conn, [rows], insert)
        metrics.enqueued(rows.queue, rows.task)
        return job
    if ring_after is None:
        job, new = await _insert_deduplicated(conn, rows, ring=True)
    else:
        with ring_after.inserting() as alone:
            job, new = await _insert_deduplicated(conn, rows, ring=alone)
        if new and not alone and job.state is JobState.QUEUED:
            ring_after.ring(job.queue)
    if new:  # a duplicate handed back was counted when it was made
        metrics.enqueued(rows.queue, rows.task)
    return job


async def _insert_deduplicated(conn: Conn, rows: JobRows, *, ring: bool) -> tuple[Job, bool]:
    """The new job and True, or the live one holding its dedup key and False."""
    # A live duplicate can finish between our insert and our read; then insert again.
    for _ in range(5):
        inserted = await queries.job_insert(conn, rows, ring=ring)
        if inserted is not None:
            return inserted, True
        assert rows.dedup_key is not None
        existing = await queries.job_get_live_by_dedup_key(
            conn, task=rows.task, dedup_key=rows.dedup_key
        )
        if existing is not None:
            return existing, False
    raise JobStateConflict(f"dedup key {rows.dedup_key!r} kept changing hands; try again")


async def insert_each(conn: Conn, batch: Sequence[JobRows], *, ring: bool = True) -> list[Job]:
    """Insert one job per JobRows (each of one args, of any task or owner) in one statement,
    in the order given; rings their queues in the same transaction unless `ring` is False.
    No dedup keys: a key needs insert_one's conflict handling."""
    if any(rows.dedup_key is not None or len(rows.args) != 1 for rows in batch):
        raise ValueError("insert_each takes single jobs without a dedup key")
    if not batch:
        return []
    await ensure_codecs(conn)
    if any(rows.parents for rows in batch):
        jobs = await dependencies.insert_linked(
            conn, batch, lambda: queries.job_insert_each(conn, batch, ring=ring)
        )
    else:
        jobs = await queries.job_insert_each(conn, batch, ring=ring)
    metrics.enqueued_each((rows.queue, rows.task) for rows in batch)
    return jobs


async def insert_copy(conn: Conn, rows: JobRows) -> list[UUID]:
    """Insert every job of `rows` with COPY (the fastest form: a few hundred thousand rows a
    second), in one transaction (a savepoint inside the caller's); returns their ids in the
    order of `rows.args`, which is also the order they are claimed in, other things equal."""
    if rows.dedup_key is not None or rows.callback_url is not None:
        raise ValueError("insert_copy takes no dedup key or callback URL")
    if not rows.args:
        return []
    await ensure_codecs(conn)
    if rows.parents:
        ids = await dependencies.insert_copy_linked(conn, rows)
    else:
        ids = await queries.job_insert_many(conn, rows)
    metrics.enqueued(rows.queue, rows.task, len(ids))
    return ids
