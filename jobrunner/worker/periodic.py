"""Schedules, the worker's side: code schedules synced at start, due schedules fired.

Sync (`sync_code_schedules`, as a worker starts): each `@task(cron=...)` this process
registers becomes a row of jobrunner.schedules named after its task, source 'code'. A new one
starts from the next tick after now (its first tick enqueues nothing at once, as before); a
changed cron moves the next tick; an unchanged one is not written; a pause is never undone.
A row carried over from periodic_ticks by migration 0015 learns its cron here and goes on
from the tick after its last. A task this process registers without a cron loses its code
schedule (its code dropped the cron).

Firing (`fire_due_schedules`, each maintenance tick): the due schedules are locked FOR UPDATE
SKIP LOCKED; each one's job is made by the one parameter maker (the task's defaults, the
schedule's args, queue and priority) and inserted through the insert core, and its next tick
(after now, in its time zone: jobrunner.cron) written, all in one transaction. A second
caller skips the locked rows and, after the commit, finds them no longer due: one job per
tick with any number of workers. Ticks missed while no worker ran are not replayed. A task
no worker here knows still gets its job (it waits like any job of an unknown task).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import structlog

from jobrunner import cron, search
from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn, Pool
from jobrunner.errors import InvalidArguments
from jobrunner.job_rows import JobRows, insert_each, make_rows
from jobrunner.options import JobOptions
from jobrunner.registry import registered_tasks

log = structlog.get_logger("jobrunner.schedules")

FIRE_BATCH = 100  # schedules fired in one transaction
SYNC_TIMEOUT = 10.0


async def sync_at_start(pool: Pool, worker_id: str) -> None:
    """sync_code_schedules as a worker starts; a database error is only logged (the code
    schedules already stored go on firing; the next worker start syncs them)."""
    try:
        async with asyncio.timeout(SYNC_TIMEOUT), pool.acquire() as conn:
            await sync_code_schedules(conn, by=f"worker:{worker_id}")
    except DB_ERRORS as exc:
        log.warning("could not sync the code schedules", error=str(exc))


async def sync_code_schedules(conn: Conn, *, by: str) -> int:
    """Write this process's `@task(cron=...)` schedules; returns how many it declares."""
    declared = {t.name: t.cron for t in registered_tasks() if t.cron is not None}
    without_cron = [t.name for t in registered_tasks() if t.cron is None]
    async with conn.transaction():
        now, stored = await queries.schedule_clock_rows(conn, list(declared))
        rows = [
            (name, expression, _first_tick(expression, stored.get(name), now))
            for name, expression in declared.items()
        ]
        shadowed = await queries.schedule_sync_code(conn, rows, by=by) if rows else []
        forgotten = await queries.schedule_forget_code(conn, without_cron)
    for name in shadowed:
        log.warning("a runtime schedule has the name of a code schedule; code one not synced",
                    schedule=name)  # fmt: skip
    if forgotten:
        log.info("code schedules removed: their tasks no longer declare a cron", names=forgotten)
    return len(declared)


def _first_tick(expression: str, stored: queries.ScheduleClock | None, now: datetime) -> datetime:
    """The next tick a sync writes (it is only written for a new row, a changed cron, or a
    carried-over row): after the last tick fired, for a row carried over from periodic_ticks
    (so the tick it missed across the upgrade fires once, and none twice); else after now."""
    if stored is not None and stored.cron is None and stored.last_run_at is not None:
        return cron.next_tick(expression, "UTC", stored.last_run_at)
    return cron.next_tick(expression, "UTC", now)


async def fire_due_schedules(conn: Conn, *, limit: int = FIRE_BATCH) -> int:
    """Fire up to `limit` due schedules in one transaction; returns how many were due."""
    async with conn.transaction():
        due = await queries.schedule_take_due(conn, limit=limit)
        if not due:
            return 0
        fired: list[queries.Fired] = []
        made: list[tuple[queries.DueSchedule, datetime, JobRows]] = []
        for schedule in due:
            try:
                following = cron.next_tick(schedule.cron, schedule.timezone, schedule.now)
            except cron.InvalidCron as exc:  # edited by hand in psql: stop, and say why
                fired.append(queries.Fired(schedule.name, None, None, str(exc), pause=True))
                continue
            try:
                made.append((schedule, following, _rows(schedule)))
            except InvalidArguments as exc:  # the task's code changed under its args
                fired.append(queries.Fired(schedule.name, following, None, str(exc)))
        jobs = await insert_each(conn, [rows for _, _, rows in made])
        for (schedule, following, _), job in zip(made, jobs, strict=True):
            fired.append(queries.Fired(schedule.name, following, job.id))
        await queries.schedule_record_fired(conn, fired)
    _log(fired)
    return len(due)


def _rows(schedule: queries.DueSchedule) -> JobRows:
    options = JobOptions(
        queue=schedule.queue, priority=schedule.priority, tags=_tags(schedule.name)
    )
    return make_rows(schedule.task, [schedule.args], options, unknown_task_ok=True)


def _tags(name: str) -> list[str]:
    """`schedule:<name>`, so its jobs are found by tag, when the name makes a valid tag."""
    tag = f"schedule:{name}"
    try:
        return list(search.check_tags([tag]))
    except search.InvalidFilter:
        return []


def _log(fired: Sequence[queries.Fired]) -> None:
    for f in fired:
        if f.job_id is not None:
            log.debug("schedule fired", schedule=f.name, job_id=str(f.job_id))
        else:
            log.error("schedule enqueued nothing", schedule=f.name, error=f.error,
                      paused=f.pause)  # fmt: skip
