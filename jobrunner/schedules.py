"""Schedules as operators see them: list, add, pause, resume, remove. The API, the CLI and
the dashboard call these; the worker's side (syncing code schedules, firing due ones) is
jobrunner.worker.periodic.

A schedule is a row of jobrunner.schedules (migration 0015). Code schedules come from
`@task(cron=...)` and are named after their task; they cannot be removed here (their code
would bring them back at the next worker start), only paused. Runtime schedules are added
here, with args, a time zone and optional queue and priority overrides. Next ticks are
worked out from the database's clock (jobrunner.cron).
"""

from __future__ import annotations

import re
from typing import Any

from jobrunner import cron
from jobrunner.db import queries
from jobrunner.db.pool import Conn, dump_json
from jobrunner.errors import JobrunnerError, UnknownTask
from jobrunner.models import Schedule
from jobrunner.registry import get_task

NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
NAME_RULE = "1 to 128 of A-Z a-z 0-9 _ . : -"
TASK = re.compile(r"[A-Za-z0-9_.:-]{1,256}")
QUEUE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # as jobrunner.queues.QUEUE_NAME
INTERNAL_TASK_PREFIX = "jobrunner."  # jobrunner's own tasks, as the API's submit refuses
# Every tick writes the args into a new job: a submission's body may be up to
# JOBRUNNER_MAX_BODY_BYTES, a schedule's args stay small.
MAX_ARGS_BYTES = 64 * 1024


class InvalidSchedule(JobrunnerError):
    """A schedule's name, task, cron, time zone, args, queue or priority is not acceptable."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ScheduleNotFound(JobrunnerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule is named {name!r}")


class ScheduleExists(JobrunnerError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} exists already")


class ScheduleInCode(JobrunnerError):
    """A code schedule cannot be removed at run time."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"schedule {name!r} is declared in code (@task(cron=...)): remove the cron from "
            "the task's code to remove it, or pause it"
        )


# ----- checking -------------------------------------------------------------------------


def check(new: queries.NewSchedule) -> queries.NewSchedule:
    """`new` if every field is acceptable, else InvalidSchedule (or InvalidArguments, when
    this process knows the task and the args do not fit its signature)."""
    if not NAME.fullmatch(new.name):
        raise InvalidSchedule("name", f"a schedule name is {NAME_RULE}")
    if not TASK.fullmatch(new.task) or new.task.startswith(INTERNAL_TASK_PREFIX):
        raise InvalidSchedule("task", "a task name is 1 to 256 of A-Z a-z 0-9 _ . : -")
    try:
        cron.check_cron(new.cron)
    except cron.InvalidCron as exc:
        raise InvalidSchedule("cron", str(exc)) from None
    try:
        cron.zone(new.timezone)
    except cron.InvalidCron as exc:
        raise InvalidSchedule("timezone", str(exc)) from None
    if new.queue is not None and not QUEUE.fullmatch(new.queue):
        raise InvalidSchedule("queue", "a queue name is 1 to 128 of A-Z a-z 0-9 _ . : -")
    if new.priority is not None and not -100 <= new.priority <= 100:
        raise InvalidSchedule("priority", "a priority is between -100 and 100")
    _check_args(new.task, new.args)
    return new


def _check_args(task_name: str, args: Any) -> None:
    if not isinstance(args, dict):
        raise InvalidSchedule("args", "args must be a JSON object")
    try:
        size = len(dump_json(args).encode())
    except (ValueError, TypeError, UnicodeEncodeError):
        raise InvalidSchedule("args", "args must be JSON (no NaN or infinities)") from None
    if size > MAX_ARGS_BYTES:
        raise InvalidSchedule("args", f"args are at most {MAX_ARGS_BYTES} bytes of JSON")
    try:
        task = get_task(task_name)
    except UnknownTask:
        return  # a task this process lacks may be a worker's: its job waits for one
    task.validate_args(args)  # known here: the args must fit its signature


# ----- reading and changing ---------------------------------------------------------------


async def list_all(conn: Conn) -> list[Schedule]:
    return await queries.schedule_list(conn)


async def get(conn: Conn, name: str) -> Schedule:
    found = await queries.schedule_get(conn, name)
    if found is None:
        raise ScheduleNotFound(name)
    return found


async def add(conn: Conn, new: queries.NewSchedule, *, by: str) -> Schedule:
    """Add a runtime schedule; its first tick is the next after now."""
    check(new)
    now = await queries.clock_now(conn)
    first = cron.next_tick(new.cron, new.timezone, now)
    added = await queries.schedule_add(conn, new, first_run_at=first, by=by)
    if added is None:
        raise ScheduleExists(new.name)
    return added


async def pause(conn: Conn, name: str) -> Schedule:
    """No tick fires until it is resumed."""
    if not await queries.schedule_pause(conn, name):
        raise ScheduleNotFound(name)
    return await get(conn, name)


async def resume(conn: Conn, name: str) -> Schedule:
    """Fire again from the next tick after now: the ticks missed while paused are skipped."""
    async with conn.transaction():
        locked = await queries.schedule_resume_lock(conn, name)
        if locked is None:
            raise ScheduleNotFound(name)
        now, expression, timezone = locked
        following = None
        if expression is not None:  # a code row not synced yet keeps waiting for its cron
            try:
                following = cron.next_tick(expression, timezone, now)
            except cron.InvalidCron as exc:  # set by hand in psql: say so, stay paused
                raise InvalidSchedule("cron", str(exc)) from None
        await queries.schedule_resume(conn, name, next_run_at=following)
    return await get(conn, name)


async def remove(conn: Conn, name: str) -> None:
    """Delete a runtime schedule (ScheduleInCode for a code schedule)."""
    source = await queries.schedule_delete_runtime(conn, name)
    if source is None:
        raise ScheduleNotFound(name)
    if source == "code":
        raise ScheduleInCode(name)
