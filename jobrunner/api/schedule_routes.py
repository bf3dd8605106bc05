"""/schedules: periodic jobs, listed with their next and last run and the last job's state;
admins add runtime schedules, pause, resume and remove them (jobrunner.schedules).

Thin: each route calls jobrunner.schedules once. Admins only: a schedule enqueues jobs owned
by nobody, on any queue, with any priority.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from jobrunner import schedules
from jobrunner.api.deps import AdminDep, ConnDep
from jobrunner.api.schemas import ScheduleCreate, SchedulePublic

router = APIRouter(prefix="/schedules", tags=["schedules"])

ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "Admins only"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such schedule"}}
# Any name a schedule may have (a code schedule's is its task's); check() holds new ones to
# the stricter schedules.NAME.
ScheduleName = Annotated[str, Path(min_length=1, max_length=256)]


@router.get("", responses=ADMIN_ONLY)
async def list_schedules(_: AdminDep, conn: ConnDep) -> list[SchedulePublic]:
    """Every schedule (from code and added at run time), by name, with its next run, last
    run, and the state of the job its last tick enqueued."""
    return [SchedulePublic.of(s) for s in await schedules.list_all(conn)]


@router.post(
    "",
    status_code=201,
    responses={**ADMIN_ONLY, 409: {"description": "The name is taken"}, 422: {}},
)
async def add_schedule(
    body: ScheduleCreate, response: Response, me: AdminDep, conn: ConnDep
) -> SchedulePublic:
    """Add a runtime schedule: each tick of `cron`, read in `timezone`, enqueues `task` with
    `args` (and the task's defaults, but `queue` and `priority` when given). Exactly one job
    per tick, however many workers run; the first tick is the next after now."""
    added = await schedules.add(conn, body.new(), by=me.username)
    response.headers["Location"] = f"/schedules/{added.name}"
    return SchedulePublic.of(added)


@router.post("/{name}/pause", responses={**ADMIN_ONLY, **NOT_FOUND})
async def pause_schedule(name: ScheduleName, _: AdminDep, conn: ConnDep) -> SchedulePublic:
    """No tick fires until it is resumed (code schedules too: a worker's sync keeps it)."""
    return SchedulePublic.of(await schedules.pause(conn, name))


@router.post("/{name}/resume", responses={**ADMIN_ONLY, **NOT_FOUND})
async def resume_schedule(name: ScheduleName, _: AdminDep, conn: ConnDep) -> SchedulePublic:
    """Fire again from the next tick after now (the ticks missed while paused are skipped)."""
    return SchedulePublic.of(await schedules.resume(conn, name))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={
        **ADMIN_ONLY,
        **NOT_FOUND,
        409: {"description": "A code schedule: remove its cron from code, or pause it"},
    },
)
async def remove_schedule(name: ScheduleName, _: AdminDep, conn: ConnDep) -> None:
    """Remove a runtime schedule (the jobs it enqueued stay)."""
    await schedules.remove(conn, name)
