"""`jobrunner schedules ls|add|pause|resume|rm`, straight against the database.

The same rules as the API's (jobrunner.schedules): runtime schedules are added and removed
here, code schedules (`@task(cron=...)`) only paused and resumed. Additions are recorded as
made by `cli:<login name>` (created_by). Times are shown in UTC.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from datetime import UTC, datetime

from jobrunner import schedules
from jobrunner.cli import console
from jobrunner.cli.common import database, out, settings_from
from jobrunner.cli.queues import who
from jobrunner.db.pool import Conn, connect
from jobrunner.db.queries import NewSchedule
from jobrunner.models import Schedule


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _outcome(schedule: Schedule) -> str:
    if schedule.last_error is not None:
        return "error"
    if schedule.last_job_state is not None:
        return schedule.last_job_state.value
    return "pruned" if schedule.last_job_id is not None else "-"


def _show(schedule: Schedule) -> str:
    state = "paused" if schedule.paused else "active"
    return (
        f"{schedule.name}: {state}, {schedule.source}, task {schedule.task}, cron "
        f"{schedule.cron or '(waiting for a worker)'!r} in {schedule.timezone}, next run "
        f"{_when(schedule.next_run_at)} UTC"
    )


async def _list(conn: Conn, as_json: bool) -> None:
    found = await schedules.list_all(conn)
    if as_json:
        for s in found:
            out(console.to_json(dataclasses.asdict(s), indent=None))
        return
    headers = ["NAME", "SOURCE", "STATE", "TASK", "CRON", "TIMEZONE", "NEXT_RUN (UTC)",
               "LAST_RUN (UTC)", "LAST_JOB"]  # fmt: skip
    rows = [
        [
            s.name,
            s.source,
            "paused" if s.paused else "active",
            s.task,
            s.cron or "-",
            s.timezone,
            _when(s.next_run_at),
            _when(s.last_run_at),
            _outcome(s),
        ]
        for s in found
    ]
    out(console.table(headers, rows))
    for s in found:
        if s.last_error is not None:
            out(f"{s.name}: last tick enqueued nothing: {s.last_error}")


def _new(args: argparse.Namespace) -> NewSchedule:
    return NewSchedule(
        name=args.name,
        task=args.task,
        args=args.args,
        cron=args.cron,
        timezone=args.timezone,
        queue=args.queue,
        priority=args.priority,
    )


async def _schedules(dsn: str, args: argparse.Namespace) -> int:
    conn: Conn = await connect(dsn, role="cli")
    try:
        action = args.schedules_command
        if action == "ls":
            await _list(conn, args.json)
        elif action == "add":
            out(_show(await schedules.add(conn, _new(args), by=who())))
        elif action == "pause":
            out(_show(await schedules.pause(conn, args.name)))
        elif action == "resume":
            out(_show(await schedules.resume(conn, args.name)))
        else:
            await schedules.remove(conn, args.name)
            out(f"removed schedule {args.name}")
        return 0
    finally:
        await conn.close()


def cmd_schedules(args: argparse.Namespace) -> int:
    with database(settings_from({})) as db:
        return asyncio.run(_schedules(db.dsn, args))
