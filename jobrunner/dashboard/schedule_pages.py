"""The dashboard's Schedules page (admins): every schedule with its next and last run and
the last job's state, and a pause or resume button, through jobrunner.schedules as the API
and the CLI do. Forms are posted through routes._form_poster (same origin, logged in)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from jobrunner import schedules
from jobrunner.accounts import Principal
from jobrunner.api.deps import CodecDep, ConnDep, SettingsDep
from jobrunner.dashboard import html as view
from jobrunner.dashboard.routes import _form_poster, _render
from jobrunner.db.pool import Conn

router = APIRouter(prefix="/dashboard/schedules", include_in_schema=False)


@router.get("")
async def schedules_page(
    request: Request, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    async def build(conn: Conn, me: Principal) -> str:
        if not me.is_admin:
            return '<h1>Schedules</h1><p class="muted">Schedules are for admins.</p>'
        table = view.schedule_table(await schedules.list_all(conn))
        return "<h1>Schedules</h1>" + view.section(
            "Periodic jobs (times in UTC)", table, attrs='id="schedules"'
        )

    return await _render(request, conn, codec, settings, "Schedules", build)


@router.post("/{name}/{verb}")
async def pause_or_resume(
    request: Request, name: str, verb: str, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    if verb not in ("pause", "resume"):
        return Response(status_code=404)
    me = await _form_poster(request, conn, codec, settings)
    if isinstance(me, Response):
        return me
    if not me.is_admin:
        return Response(status_code=403)
    act = schedules.pause if verb == "pause" else schedules.resume
    try:
        await act(conn, name)
    except schedules.ScheduleNotFound:
        return Response(status_code=404)
    except schedules.InvalidSchedule:  # a cron edited by hand in psql: it stays paused
        return Response(status_code=422)
    return RedirectResponse("/dashboard/schedules", status_code=303)
