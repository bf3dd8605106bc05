"""The jobs page's bulk form: cancel, retry or delete every job its filter matches.

A post without `confirm` counts (a dry run) and asks; with `confirm=yes` it acts. Both go
through jobrunner.api.bulk_rules, as POST /jobs/bulk does: a user touches only their own
jobs, an admin every user's, one go reads a capped number of jobs (the outcome offers to go
on), and a user's retries are charged as submissions. Forms follow the dashboard's rules
(routes.py): same-origin posts only, SameSite=Strict session cookies. Whatever goes wrong
comes back as a page message with a 4xx, never a 500.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from jobrunner import bulk
from jobrunner.accounts import Principal
from jobrunner.api import bulk_rules
from jobrunner.api.deps import CodecDep, ConnDep, SettingsDep
from jobrunner.api.problems import ApiProblem
from jobrunner.dashboard import search_html
from jobrunner.dashboard.job_filter import ListFilter
from jobrunner.dashboard.routes import (
    _form_poster,
    _render,
    _static,
)
from jobrunner.db.pool import Conn
from jobrunner.search import InvalidFilter

router = APIRouter(prefix="/dashboard/jobs", include_in_schema=False)

Text = Annotated[str, Form()]
Tags = Annotated[list[str] | None, Form()]


@router.post("/bulk")
async def bulk_action(
    request: Request,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
    action: Text = "",
    q: Text = "",
    state: Text = "",
    queue: Text = "",
    tag: Tags = None,  # may repeat, and each may hold several
    args: Text = "",
    confirm: Text = "",
    after: Text = "",
) -> Response:
    me = await _form_poster(request, conn, codec, settings)
    if isinstance(me, Response):
        return me
    listing = ListFilter.of(q, state, queue, tag or [], args)
    status, main = await _step(conn, settings, me, listing, action, confirm == "yes", after)
    return await _render(
        request, conn, codec, settings, "Bulk action", _static(main), live=False, status=status
    )


async def _step(
    conn: Conn,
    settings: SettingsDep,
    me: Principal,
    listing: ListFilter,
    action: str,
    confirmed: bool,
    after: str,
) -> tuple[int, str]:
    """The status and main part of the page: the count to confirm, the outcome, or why not."""
    if action not in bulk.ACTIONS:
        return 422, search_html.refused(listing, "Choose cancel, retry or delete.")
    try:
        where = listing.job_filter()
        cursor = UUID(after) if after else None
    except InvalidFilter as exc:
        return 422, search_html.refused(listing, f"The filter is not one to act by: {exc}.")
    except ValueError:
        return 422, search_html.refused(listing, "The place to go on from is not a job id.")
    try:
        result = await bulk_rules.act(
            conn, settings, me, action=action, where=where, dry_run=not confirmed, after=cursor
        )
    except ApiProblem as exc:  # a user's retry with no room left under their limits
        message = "Too many submissions or unfinished jobs: not one job could be retried."
        return exc.status, search_html.refused(listing, message + " Try again later.")
    if not confirmed:
        return 200, search_html.confirm(listing, action, result.jobs)
    return 200, search_html.outcome(listing, result)
