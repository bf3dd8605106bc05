"""The dashboard's Queues page: each queue's controls and jobs; admins pause, resume and set
limits through jobrunner.queues, as the API and the CLI do.

Forms follow the dashboard's rules (routes.py): same-origin posts only, SameSite=Strict
session cookies, and error messages from fixed keys. The page does not refresh itself, so
the form is not replaced while an admin types in it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from jobrunner import queues
from jobrunner.accounts import Principal
from jobrunner.api.deps import CodecDep, ConnDep, SettingsDep
from jobrunner.api.queue_routes import QueueCountsCache
from jobrunner.dashboard import html as view
from jobrunner.dashboard.routes import LoginRequired, _principal, _render, _same_origin
from jobrunner.db.pool import Conn
from jobrunner.errors import InvalidQueueControls
from jobrunner.models import RATE_PERIODS, QueueChanges, QueueControls, Rate

router = APIRouter(prefix="/dashboard/queues", include_in_schema=False)

QUEUE_ERRORS = {
    "limits": "Limits are whole numbers up to 1,000,000: max running from 0, the others "
    "from 1; empty for none.",
    "name": "A queue name is 1 to 128 of A-Z a-z 0-9 _ . : -",
}


@router.get("")
async def queues_page(
    request: Request, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    async def build(conn: Conn, me: Principal) -> str:
        if not me.is_admin:
            cap = settings.max_unfinished_jobs_per_user
            mine = await queues.list_open(conn, me.username, max_jobs=cap)
            table = view.queue_table([(v.controls, v.counts) for v in mine], admin=False)
            return "<h1>Queues open to you</h1>" + view.section("Your jobs in them", table)
        cache: QueueCountsCache = request.app.state.queue_counts
        every = await queues.list_all(conn, await cache.get())
        table = view.queue_table([(v.controls, v.counts) for v in every], admin=True)
        editing = await _editing(conn, request.query_params.get("queue", ""))
        error = QUEUE_ERRORS.get(request.query_params.get("error", ""), "")
        return (
            "<h1>Queues</h1>"
            + view.section("Controls and unfinished jobs", table, attrs='id="queues"')
            + view.section(
                "Set a queue's controls", view.queue_form(editing, error), attrs='id="queue-form"'
            )
        )

    return await _render(request, conn, codec, settings, "Queues", build, live=False)


async def _editing(conn: Conn, name: str) -> QueueControls:
    """The queue the form starts from (?queue=...), or a blank one."""
    if not queues.QUEUE_NAME.fullmatch(name):
        return QueueControls.unset("")
    return await queues.get(conn, name)


async def _admin(request: Request, conn: Conn, codec: CodecDep, settings: SettingsDep) -> str:
    """The admin posting this form; LoginRequired, or PermissionError for anyone else."""
    if not _same_origin(request):
        raise PermissionError("cross-site form post")
    me, _ = await _principal(request, conn, codec, settings)
    if not me.is_admin:
        raise PermissionError("admins only")
    return me.username


@router.post("/{name}/{verb}")
async def pause_or_resume(
    request: Request, name: str, verb: str, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    if verb not in ("pause", "resume"):
        return Response(status_code=404)
    try:
        by = await _admin(request, conn, codec, settings)
        act = queues.pause if verb == "pause" else queues.resume
        await act(conn, name, by=by)
    except LoginRequired:
        return RedirectResponse("/dashboard/login", status_code=303)
    except PermissionError:
        return Response(status_code=403)
    except InvalidQueueControls:
        return _back({"error": "name"})
    return _back({})


@router.post("")
async def set_controls(
    request: Request,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
    name: Annotated[str, Form()],
    max_running: Annotated[str, Form()] = "",
    max_running_per_owner: Annotated[str, Form()] = "",
    rate_limit: Annotated[str, Form()] = "",
    rate_per: Annotated[str, Form()] = "second",
    open_to_all: Annotated[str, Form()] = "",
) -> Response:
    """Every control from the form: an empty limit is none, an unticked box is closed."""
    try:
        by = await _admin(request, conn, codec, settings)
    except LoginRequired:
        return RedirectResponse("/dashboard/login", status_code=303)
    except PermissionError:
        return Response(status_code=403)
    if not queues.QUEUE_NAME.fullmatch(name):
        return _back({"error": "name"})
    try:
        changes = QueueChanges(
            open_to_all=open_to_all == "yes",
            max_running=_number(max_running),
            max_running_per_owner=_number(max_running_per_owner),
            rate=_rate(rate_limit, rate_per),
        )
        await queues.change(conn, name, changes, by=by)
    except (ValueError, InvalidQueueControls):
        return _back({"error": "limits", "queue": name})
    return _back({"queue": name})


def _number(text: str) -> int | None:
    return int(text) if text.strip() else None


def _rate(limit: str, per: str) -> Rate | None:
    if not limit.strip():
        return None
    if per not in RATE_PERIODS:
        raise ValueError(per)
    return Rate(int(limit), "minute" if per == "minute" else "second")


def _back(params: dict[str, str]) -> Response:
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(f"/dashboard/queues{query}", status_code=303)
