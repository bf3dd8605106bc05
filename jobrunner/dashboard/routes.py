"""The dashboard at /dashboard: what Flower is to Celery, inside the API process.

Server-rendered pages over the same library calls as the API (`jobrunner.client`,
`jobrunner.accounts`), with the same accounts: logging in opens an API session whose tokens
are kept in HttpOnly, SameSite=Strict cookies, refreshed when the access token runs out.
Admins see every job and the queue overview; users see their own jobs. A little JavaScript
re-fetches the page's main part every two seconds. Counts are capped per state (no
full-table count), charts read the per-minute throughput table and a bounded sample.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, cast
from urllib.parse import urlencode, urlsplit
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from jobrunner import accounts, client, fleet, horizon
from jobrunner.accounts import AccountDisabled, LoginFailed, Principal, TokenPair
from jobrunner.api import limits
from jobrunner.api.deps import CodecDep, ConnDep, SettingsDep
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import JobCreate, LoginCreate
from jobrunner.api.served import QueueUnserved
from jobrunner.api.submit import INTERNAL_TASK_PREFIX, Submitter, submit_job
from jobrunner.auth import InvalidToken
from jobrunner.dashboard import html as view
from jobrunner.dashboard import search_html
from jobrunner.dashboard.job_filter import ListFilter
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.errors import (
    InvalidArguments,
    JobNotFound,
    JobrunnerError,
    JobStateConflict,
    UnknownTask,
    describe_details,
)
from jobrunner.models import WorkerInfo
from jobrunner.queues import QueueAccessDenied
from jobrunner.registry import registered_tasks
from jobrunner.search import InvalidFilter
from jobrunner.settings import Settings

router = APIRouter(prefix="/dashboard", include_in_schema=False)

ACCESS_COOKIE, REFRESH_COOKIE = "jobrunner_access", "jobrunner_refresh"
COUNT_CAP = 10_000
WINDOW_MINUTES = 30
RECENT = 20  # jobs in the overview's recent list
PAGE = 50  # jobs per page of the jobs list
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}


Build = Callable[[Conn, Principal], Awaitable[str]]


class LoginRequired(Exception):
    """No valid session: send the browser to the login page."""


# ----- sessions in cookies ------------------------------------------------------------


async def _principal(
    request: Request, conn: Conn, codec: CodecDep, settings: Settings
) -> tuple[Principal, TokenPair | None]:
    """Who is logged in; refreshes an expired access token (returning the new pair). Two
    tabs refreshing with the same cookie at once both get the same pair (the grace)."""
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            return await accounts.authenticate(conn, codec, access), None
        except InvalidToken:
            pass
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        raise LoginRequired
    try:
        pair = await accounts.refresh(conn, codec, refresh, grace=settings.refresh_reuse_grace)
        return await accounts.authenticate(conn, codec, pair.access_token), pair
    except InvalidToken:
        raise LoginRequired from None


def _secure(request: Request, settings: Settings) -> bool:
    """JOBRUNNER_COOKIE_SECURE: auto (https requests only), always, never."""
    if settings.cookie_secure == "auto":
        return request.url.scheme == "https"
    return settings.cookie_secure == "always"


def _set_cookies(response: Response, request: Request, pair: TokenPair, settings: Settings) -> None:
    common = dict(
        httponly=True, samesite="strict", secure=_secure(request, settings), path="/dashboard"
    )
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, **common)  # type: ignore[arg-type]
    max_age = int(settings.refresh_token_ttl)
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=max_age, **common)  # type: ignore[arg-type]


def _same_origin(request: Request) -> bool:
    """Refuse cross-site form posts (SameSite=Strict already keeps the cookies away).

    Hosts are compared, not schemes: behind a TLS-terminating proxy the browser says https
    while this process may see http.
    """
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


async def _form_poster(
    request: Request, conn: Conn, codec: CodecDep, settings: Settings
) -> Principal | Response:
    """Who posts this form: a 403 for a cross-site post, the login page for nobody."""
    if not _same_origin(request):
        return Response(status_code=403)
    try:
        me, _ = await _principal(request, conn, codec, settings)
    except LoginRequired:
        return RedirectResponse("/dashboard/login", status_code=303)
    return me


async def _render(
    request: Request,
    conn: Conn,
    codec: CodecDep,
    settings: SettingsDep,
    title: str,
    build: Build,
    *,
    live: bool = True,
    status: int = 200,
) -> Response:
    try:
        me, pair = await _principal(request, conn, codec, settings)
    except LoginRequired:
        if request.headers.get("x-partial"):
            return Response(status_code=401)
        return RedirectResponse("/dashboard/login", status_code=303)
    main = await build(conn, me)
    if request.headers.get("x-partial"):
        response: Response = HTMLResponse(main)
    else:
        who = f"{me.username} ({me.role})"
        query = request.query_params.get("q", "")
        response = HTMLResponse(
            view.page(title, main, who=who, query=query, live=live, admin=me.is_admin),
            status_code=status,
        )
    if pair is not None:
        _set_cookies(response, request, pair, settings)
    return response


# ----- pages --------------------------------------------------------------------------


@router.get("")
async def overview(
    request: Request, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    return await _render(request, conn, codec, settings, "Overview", _overview(settings))


def _overview(settings: Settings, form: view.SubmitForm | None = None) -> Build:
    """The overview; `form`: the submit form as it was sent back, with what went wrong."""

    async def build(conn: Conn, me: Principal) -> str:
        running = await client.list_jobs(
            conn=conn,
            user=me.username,
            admin=me.is_admin,
            where=queries.JobFilter(state="running"),
            limit=50,
        )
        failed = await client.list_jobs(
            conn=conn,
            user=me.username,
            admin=me.is_admin,
            where=queries.JobFilter(state="failed"),
            limit=20,
        )
        recent = await client.list_jobs(
            conn=conn,
            user=me.username,
            admin=me.is_admin,
            limit=RECENT,
            include=queries.Include(result=True),
        )
        now = await queries.clock_now(conn)
        parts = await _admin_overview(conn, settings) if me.is_admin else []
        tasks = [t.name for t in registered_tasks() if not t.name.startswith(INTERNAL_TASK_PREFIX)]
        body = view.submit_form(tasks, form or view.SubmitForm())
        parts.append(view.section("Submit a job", body, attrs='id="submit"'))
        parts.append(view.section("Running", view.running_jobs(running, now), attrs='id="running"'))
        parts.append(view.section("Failed", view.failed_jobs(failed), attrs='id="failed"'))
        title = "Recent jobs" if me.is_admin else "Your recent jobs"
        more = '<p><a href="/dashboard/jobs">every job, by state →</a></p>'
        body = view.job_list(recent, now, table_id="recent-jobs") + more
        parts.append(view.section(title, body, attrs='id="recent"'))
        return "".join(parts)

    return build


async def _admin_overview(conn: Conn, settings: Settings) -> list[str]:
    counts = await client.count_jobs(conn=conn, cap=COUNT_CAP)
    rows = await client.throughput(conn=conn, minutes=WINDOW_MINUTES)
    pickup = await queries.job_pickup_by_minute(conn, minutes=WINDOW_MINUTES)
    parts = await _fleet_warnings(conn, settings)
    parts.append(view.section("Queues", view.queue_counts(counts), attrs='id="queues"'))
    parts.append(
        '<div class="grid">'
        + view.section(
            f"Throughput, last {WINDOW_MINUTES} min",
            view.throughput_chart(rows),
            attrs='id="throughput"',
        )
        + view.section("Pickup latency", view.latency_chart(pickup), attrs='id="latency"')
        + "</div>"
    )
    return parts


async def _fleet_warnings(
    conn: Conn, settings: Settings, workers: list[WorkerInfo] | None = None
) -> list[str]:
    """For admins: queues no live worker serves, and tasks a worker did not know."""
    if workers is None:
        workers = await fleet.list_workers(conn, seen_timeout=settings.worker_seen_timeout)
    parts = []
    unserved = await fleet.unserved_queues(conn, workers)
    if unserved:
        body = view.unserved_queues(unserved)
        parts.append(view.section("Queues no worker serves", body, attrs='id="unserved"'))
    unknown = await client.unknown_tasks(conn=conn)
    if unknown:
        body = view.unknown_tasks(unknown, known_now=fleet.known_tasks(workers))
        parts.append(view.section("Tasks no worker knew", body, attrs='id="unknown"'))
    held = await horizon.read(conn, warn_after=settings.snapshot_warn_seconds)
    if held.holder is not None and held.too_old:
        body = view.held_snapshot(horizon.describe(held.holder), horizon.remedy(held.holder))
        parts.append(view.section("Cleanup held back", body, attrs='id="horizon"'))
    return parts


@router.get("/workers")
async def workers_page(
    request: Request, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    async def build(conn: Conn, me: Principal) -> str:
        if not me.is_admin:
            return '<h1>Workers</h1><p class="muted">Only admins see the workers.</p>'
        workers = await fleet.list_workers(conn, seen_timeout=settings.worker_seen_timeout)
        parts = ["<h1>Workers</h1>", *await _fleet_warnings(conn, settings, workers)]
        title = f"{sum(w.live for w in workers)} live, of {len(workers)} registered"
        parts.append(view.section(title, view.workers(workers), attrs='id="workers"'))
        return "".join(parts)

    return await _render(request, conn, codec, settings, "Workers", build)


@router.get("/jobs")
async def search(
    request: Request,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
    q: str = "",
    state: str | None = None,
    queue: str | None = None,
    before: UUID | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    args: str = "",
) -> Response:
    """Jobs newest first, a page at a time (`before`: the last id of the page before). `q`
    is a job id, the start of one (the short ids the lists show), or a task name; `tag` and
    `args` search as GET /jobs does. The bulk form acts on the jobs the filter matches."""
    q = q.strip().rstrip("…").strip()
    with contextlib.suppress(ValueError):
        return RedirectResponse(f"/dashboard/jobs/{UUID(q)}", status_code=303)
    if q and (only := await _only_job_starting(request, conn, codec, settings, q)):
        return RedirectResponse(f"/dashboard/jobs/{only}", status_code=303)
    listing = ListFilter.of(q, state, queue, tag or [], args)
    state, params = listing.state or None, listing.params()
    try:
        where = listing.job_filter()
    except InvalidFilter as exc:  # the form comes back as typed, with what is wrong
        refused = search_html.filter_form(listing, f"Not a filter: {exc}.")
        return await _render(
            request, conn, codec, settings, "Jobs", _static("<h1>Jobs</h1>" + refused),
            live=False, status=422,
        )  # fmt: skip

    async def build(conn: Conn, me: Principal) -> str:
        found = await client.find_by_id_prefix(
            q, conn=conn, user=me.username, admin=me.is_admin, limit=PAGE
        )
        if found:
            title = f"Jobs whose id starts with {q}"
            listed = view.job_list(found, await queries.clock_now(conn))
            return f"<h1>{view.h(title)}</h1>" + view.section("Newest first", listed)
        jobs, cut = await client.list_jobs_page(
            conn=conn,
            user=me.username,
            admin=me.is_admin,
            where=where,
            before=before,
            page=queries.Page(PAGE + 1, queries.Include(result=True), settings.list_max_page_bytes),
        )
        shown = jobs[:PAGE]
        older = ""
        if (cut or len(jobs) > PAGE) and shown:
            link = "/dashboard/jobs?" + urlencode({**params, "before": str(shown[-1].id)})
            older = f'<p><a id="older" href="{view.h(link)}">older jobs →</a></p>'
        title = f"Jobs{' of task ' + q if q else ''}{' in ' + queue if queue else ''}"
        page = "newest first" if before is None else "older"
        listed = view.job_list(shown, await queries.clock_now(conn))
        return (
            f"<h1>{view.h(title)}</h1>"
            + view.state_tabs(state, params)
            + search_html.filter_form(listing)
            + view.section(f"{state or 'all states'}, {page}", listed + older)
            + search_html.bulk_form(listing)
        )

    return await _render(request, conn, codec, settings, "Jobs", build)


def _static(main: str) -> Build:
    async def build(conn: Conn, me: Principal) -> str:
        return main

    return build


async def _only_job_starting(
    request: Request, conn: Conn, codec: CodecDep, settings: Settings, prefix: str
) -> UUID | None:
    """The one job the caller may see whose id starts with `prefix`, if exactly one does."""
    try:
        me, _ = await _principal(request, conn, codec, settings)
    except LoginRequired:
        return None  # the page itself sends the browser to log in
    found = await client.find_by_id_prefix(
        prefix, conn=conn, user=me.username, admin=me.is_admin, limit=2
    )
    return found[0].id if len(found) == 1 else None


@router.get("/jobs/{job_id}")
async def job_page(
    request: Request, job_id: UUID, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    async def build(conn: Conn, me: Principal) -> str:
        try:
            job = await client.get_job(job_id, conn=conn, user=me.username, admin=me.is_admin)
        except JobNotFound:
            return f"<h1>No job {view.h(job_id)}</h1>"
        delivery = await client.webhook_delivery(job, conn=conn)
        links = await client.job_links(job, conn=conn, user=me.username, admin=me.is_admin)
        return view.job_page(job, delivery, links)

    return await _render(request, conn, codec, settings, "Job", build)


@router.post("/submit")
async def submit(
    request: Request,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
    task: Annotated[str, Form()],
    args: Annotated[str, Form()] = "{}",
) -> Response:
    """A job from the form, through the API's own submit path (limits, caps, validation)."""
    me = await _form_poster(request, conn, codec, settings)
    if isinstance(me, Response):
        return me
    try:
        body = JobCreate.model_validate({"task": task, "args": _parse_args(args)})
        await limits.check_submit(conn, settings, me.username)
        submitter = Submitter(me.username, me.session_id, session_checked=True)
        context = request.app.state.submit_context
        job, _ = await submit_job(context, settings, submitter, body, None)
    except (ValueError, JobrunnerError) as exc:  # bad JSON, bad arguments, limits
        # The form comes back as it was sent, with what went wrong, on a page that does not
        # refresh itself (its URL is this POST's): nothing typed is lost.
        status, message = _submit_error(exc)
        form = view.SubmitForm(task=task, args=args, error=message)
        overview = _overview(settings, form)
        return await _render(
            request, conn, codec, settings, "Overview", overview, live=False, status=status
        )
    return RedirectResponse(f"/dashboard/jobs/{job.id}", status_code=303)


def _parse_args(text: str) -> object:
    try:
        return json.loads(text or "{}")
    except RecursionError:  # json's parser recurses once per level of nesting
        raise ValueError("nested too deeply") from None


def _submit_error(exc: Exception) -> tuple[int, str]:
    """The status and message for a refused submission, in words a person reads."""
    if isinstance(exc, json.JSONDecodeError):
        return (
            422,
            f"The arguments are not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).",
        )
    if str(exc) == "nested too deeply":
        return 422, "The arguments are nested too deeply."
    if isinstance(exc, UnknownTask):
        return 422, f"{str(exc).capitalize()}."
    if isinstance(exc, QueueAccessDenied):
        return 403, "This task's queue is not open to you: an admin can open it."
    if isinstance(exc, QueueUnserved):
        return 422, "No running worker serves this task's queue: nothing would run the job."
    if isinstance(exc, ApiProblem):
        if exc.status == 429:
            return 429, "Too many submissions or unfinished jobs: try again later."
        return exc.status, "The job could not be submitted."
    if isinstance(exc, InvalidArguments):
        return 422, f"Invalid arguments for {exc.task}: {describe_details(exc.details)}."
    if isinstance(exc, ValidationError):  # JobCreate's own checks (the task name, the args)
        details = cast("list[dict[str, object]]", exc.errors(include_url=False))
        return 422, f"Invalid submission: {describe_details(details)}."
    return 422, "The job could not be submitted."


@router.post("/jobs/{job_id}/{verb}")
async def job_action(
    request: Request,
    job_id: UUID,
    verb: str,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
) -> Response:
    if verb not in ("retry", "cancel"):
        return Response(status_code=403)
    me = await _form_poster(request, conn, codec, settings)
    if isinstance(me, Response):
        return me
    act = client.retry_job if verb == "retry" else client.cancel_job
    if verb == "retry":  # a retry is a submission: the same rate limit and cap (a 429)
        unfinished = request.app.state.submit_context.unfinished
        await limits.charge_resubmission(conn, settings, unfinished, me.username)
    with contextlib.suppress(JobNotFound, JobStateConflict):  # the job page shows its state
        await act(job_id, conn=conn, user=me.username, admin=me.is_admin)
    return RedirectResponse(f"/dashboard/jobs/{job_id}", status_code=303)


# ----- logging in and out ---------------------------------------------------------------


@router.get("/login")
async def login_form() -> HTMLResponse:
    return HTMLResponse(view.login_page())


@router.post("/login")
async def login(
    request: Request,
    conn: ConnDep,
    codec: CodecDep,
    settings: SettingsDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
) -> Response:
    if not _same_origin(request):
        return Response(status_code=403)
    try:  # the API's own rules for names and passwords, checked before anything is looked up
        LoginCreate.model_validate({"username": username, "password": password})
    except ValidationError:
        return HTMLResponse(view.login_page(LOGIN_INVALID), status_code=422)
    address = request.client.host if request.client else "unknown"
    try:
        pair = await limits.login(
            conn, codec, settings, username=username, password=password, address=address
        )
    except (LoginFailed, AccountDisabled, ApiProblem) as exc:
        status = exc.status if isinstance(exc, ApiProblem) else 401
        status = 403 if isinstance(exc, AccountDisabled) else status
        return HTMLResponse(view.login_page(str(exc), username), status_code=status)
    response = RedirectResponse("/dashboard", status_code=303)
    _set_cookies(response, request, pair, settings)
    return response


LOGIN_INVALID = "A username is 3 to 64 letters, digits, '_', '.' or '-'; a password at most 1024."


@router.post("/logout")
async def logout(
    request: Request, conn: ConnDep, codec: CodecDep, settings: SettingsDep
) -> Response:
    if not _same_origin(request):
        return Response(status_code=403)
    try:
        me, _ = await _principal(request, conn, codec, settings)
        await accounts.logout(conn, me)
    except LoginRequired:
        pass
    response = RedirectResponse("/dashboard/login", status_code=303)
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path="/dashboard")
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    from importlib import resources

    if name not in STATIC:
        return Response(status_code=404)
    body = resources.files("jobrunner.dashboard").joinpath("static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})
