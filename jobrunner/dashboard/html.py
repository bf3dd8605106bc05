"""The dashboard's HTML: small functions from values to escaped markup, no template engine.

Every value that came from a user or a job passes through `h()`. Page skeletons live in
`templates/*.html` (string.Template), the rest is built here.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from string import Template
from urllib.parse import quote, urlencode

from jobrunner.models import (
    Job,
    JobLink,
    JobLinks,
    JobState,
    QueueControls,
    QueueCounts,
    Schedule,
    ThroughputMinute,
    WebhookDelivery,
    WorkerInfo,
)
from jobrunner.progress import Progress

STATES = [s.value for s in JobState]


def h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def template(name: str) -> Template:
    text = resources.files("jobrunner.dashboard").joinpath("templates", name).read_text()
    return Template(text)


def page(
    title: str, main: str, *, who: str, query: str = "", live: bool = True, admin: bool = False
) -> str:
    """A whole page; `live`: its main part is fetched again every two seconds (not on a page
    with a form someone may be typing in)."""
    nav = (
        '<nav><a href="/dashboard/workers">Workers</a> '
        '<a href="/dashboard/schedules">Schedules</a></nav>'
        if admin
        else ""
    )
    return template("page.html").substitute(
        title=h(title),
        main=main,
        who=h(who),
        query=h(query),
        live="1" if live else "0",
        nav=nav,
    )


def login_page(error: str = "", username: str = "") -> str:
    return template("login.html").substitute(error=h(error), username=h(username))


def state(value: str) -> str:
    return f'<span class="state state-{h(value)}">{h(value)}</span>'


def when(value: datetime | str | None) -> str:
    """Every time on every page one way: `2026-12-05 08:23:35` in UTC (the ISO form, to the
    microsecond, in its title). Attempt times come as ISO text from the errors column."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return h(value)
    if value is None:
        return '<span class="muted">-</span>'
    utc = value.astimezone(UTC) if value.tzinfo else value
    iso = utc.isoformat()
    return f'<time datetime="{iso}" title="{iso}">{utc:%Y-%m-%d %H:%M:%S}</time>'


def seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def job_link(job_id: object) -> str:
    return f'<a class="mono" href="/dashboard/jobs/{h(job_id)}">{h(str(job_id)[:13])}…</a>'


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{h(empty)}</p>'
    head = "".join(f"<th>{h(x)}</th>" for x in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(title: str, body: str, *, attrs: str = "") -> str:
    return f"<section {attrs}><h2>{h(title)}</h2>{body}</section>"


RETRY_GIVES = {
    JobState.FAILED: "It goes back to its queue with exactly one more attempt.",
    JobState.CANCELLED: "It goes back to its queue with the attempts it had left (one at least).",
}


def action(job: Job, verb: str) -> str:
    question = f"{verb.title()} job {job.id}?"
    if verb == "retry":
        question += " " + RETRY_GIVES.get(job.state, "")
    return (
        f'<form class="inline" method="post" action="/dashboard/jobs/{h(job.id)}/{verb}" '
        f'data-confirm="{h(question.strip())}"><button>{h(verb)}</button></form>'
    )


# ----- overview -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitForm:
    """The submit form's fields, and what went wrong when it comes back refused."""

    task: str = ""
    args: str = "{}"
    error: str = ""


def submit_form(tasks: Sequence[str], form: SubmitForm) -> str:
    options = "".join(
        f'<option value="{h(t)}"{" selected" if t == form.task else ""}>{h(t)}</option>'
        for t in tasks
    )
    problem = f'<p class="error" id="submit-error">{h(form.error)}</p>' if form.error else ""
    return (
        f'{problem}<form class="submit" method="post" action="/dashboard/submit">'
        f'<label>Task <select name="task" id="submit-task">{options}</select></label> '
        f'<label>Arguments (JSON) <input name="args" id="submit-args" value="{h(form.args)}" '
        f'size="40"></label> <button>Submit</button></form>'
    )


def queue_counts(counts: Sequence[QueueCounts]) -> str:
    def cell(queue: QueueCounts, name: str) -> str:
        count = queue.states.get(name, 0)
        shown = f"{count}+" if queue.at_least(name) else str(count)
        link = f"/dashboard/jobs?queue={h(queue.queue)}&amp;state={name}"
        return f'<a href="{link}">{shown}</a>' if count else '<span class="muted">0</span>'

    rows = [[h(q.queue), *(cell(q, name) for name in STATES)] for q in counts]
    return table(["queue", *STATES], rows, "No jobs yet.")


def unknown_tasks(unknown: Mapping[str, int], known_now: Iterable[str] = ()) -> str:
    """Jobs waiting because the worker that claimed them did not know their task; `known_now`:
    the tasks among them that a live worker registers by now (a deploy that finished)."""
    known = set(known_now)
    rows = [
        [h(task), str(jobs), "yes: they run when due" if task in known else "no"]
        for task, jobs in unknown.items()
    ]
    note = (
        '<p class="error">A worker put these jobs back (attempts unspent): it does not '
        "register their task. Deploy the code that does (JOBRUNNER_TASKS), or cancel them.</p>"
    )
    return note + table(["task", "jobs waiting", "a live worker knows it now"], rows, "")


def unserved_queues(unserved: Mapping[str, int]) -> str:
    """Queues with queued jobs that no live worker serves: nothing will run them."""
    rows = [
        [f'<a href="/dashboard/jobs?queue={h(q)}&amp;state=queued">{h(q)}</a>', str(jobs)]
        for q, jobs in unserved.items()
    ]
    note = (
        '<p class="error">No live worker serves these queues, so their jobs wait: start a '
        "worker with them in JOBRUNNER_QUEUES, or cancel the jobs. Users cannot submit to a "
        "queue no worker has served for JOBRUNNER_SERVED_QUEUE_WINDOW (422).</p>"
    )
    return note + table(["queue", "jobs queued"], rows, "")


def held_snapshot(description: str, remedy: str) -> str:
    """A long transaction somewhere on the server holds back cleanup (jobrunner.horizon)."""
    return (
        f'<p class="error">{h(description)}. Until it ends, PostgreSQL keeps the dead rows of '
        "every job finished since it began, and every claim steps over them: pickup slows "
        f"and the queue can fall behind.</p><p>{h(remedy)}.</p>"
    )


def workers(found: Sequence[WorkerInfo]) -> str:
    """The worker registry: live workers first, then those stopped or gone."""
    rows = [
        [
            f'<span class="mono">{h(w.id)}</span>',
            state("live" if w.live else "stopped" if w.stopped_at else "gone"),
            h(w.host),
            str(w.pid),
            h(", ".join(w.queues)),
            f'<span title="{h(", ".join(w.tasks))}">{len(w.tasks)}</span>',
            f"{w.running}/{w.concurrency}",
            when(w.started_at),
            when(w.last_seen_at),
        ]
        for w in found
    ]
    headers = ["worker", "state", "host", "pid", "queues", "tasks", "running", "started", "seen"]
    return table(headers, rows, "No worker has registered yet.")


def bar_chart(points: Sequence[tuple[str, float, str]], unit: str) -> str:
    """An inline SVG bar per point (label, value, css class), with its axes: the value scale
    up the left (0, half, the highest), the minutes along the bottom; no chart library."""
    if not points:
        return '<p class="muted">Nothing finished in this window.</p>'
    top = max(value for _, value, _ in points) or 1.0
    width = 100.0 / len(points)
    bars = "".join(
        f'<rect class="{cls}" x="{i * width:.2f}%" width="{width * 0.8:.2f}%" '
        f'y="{100 - 100 * value / top:.1f}%" height="{100 * value / top:.1f}%">'
        f"<title>{h(label)}: {value:g} {h(unit)}</title></rect>"
        for i, (label, value, cls) in enumerate(points)
    )
    middle = points[len(points) // 2][0]
    y_axis = "".join(f"<span>{h(f'{v:.3g}')}</span>" for v in (top, top / 2, 0))
    x_axis = "".join(f"<span>{h(t)}</span>" for t in (points[0][0], middle, points[-1][0]))
    return (
        f'<figure class="chart"><div class="y-axis" aria-hidden="true">{y_axis}</div>'
        f'<svg role="img" aria-label="{h(unit)}, {h(points[0][0])} to {h(points[-1][0])}">'
        f'<line class="axis" x1="0" y1="100%" x2="100%" y2="100%"/>'
        f'<line class="axis" x1="0" y1="0" x2="0" y2="100%"/>{bars}</svg>'
        f'<div class="x-axis" aria-hidden="true">{x_axis}</div>'
        f'<figcaption class="muted">{h(unit)}, by minute (UTC); highest {top:g}</figcaption>'
        "</figure>"
    )


def _every_minute(values: dict[datetime, float]) -> list[tuple[datetime, float]]:
    """The minutes from the first to the last, with zero where nothing was recorded."""
    if not values:
        return []
    minute, last, filled = min(values), max(values), []
    while minute <= last:
        filled.append((minute, values.get(minute, 0.0)))
        minute += timedelta(minutes=1)
    return filled


def throughput_chart(rows: Sequence[ThroughputMinute]) -> str:
    succeeded: dict[datetime, float] = {}
    for row in rows:
        succeeded[row.minute] = succeeded.get(row.minute, 0.0) + row.succeeded
    points = [(f"{m:%H:%M}", n, "ok") for m, n in _every_minute(succeeded)]
    return bar_chart(points, "jobs succeeded")


def latency_chart(rows: Sequence[tuple[datetime, float, int]]) -> str:
    medians = {minute: round(p50, 4) for minute, p50, _ in rows}
    points = [(f"{m:%H:%M}", s, "lat") for m, s in _every_minute(medians)]
    return bar_chart(points, "median pickup, seconds")


def running_jobs(jobs: Sequence[Job], now: datetime) -> str:
    rows = [
        [
            job_link(j.id),
            h(j.task),
            h(j.queue),
            h(j.worker_id),
            seconds((now - j.started_at).total_seconds()) if j.started_at else "-",
            f"{j.attempt}/{j.max_attempts}",
        ]
        for j in jobs
    ]
    return table(["job", "task", "queue", "worker", "elapsed", "attempt"], rows, "Nothing running.")


def failed_jobs(jobs: Sequence[Job]) -> str:
    rows = [
        [
            job_link(j.id),
            h(j.task),
            when(j.finished_at),
            h((j.last_error or {}).get("error", ""))[:200],
            action(j, "retry"),
        ]
        for j in jobs
    ]
    return table(["job", "task", "failed at", "last error", ""], rows, "No failed jobs.")


def duration(job: Job, now: datetime) -> tuple[str, float | None]:
    """How long it ran (or has been running): shown, and in seconds for sorting."""
    if job.started_at is None:
        return '<span class="muted">-</span>', None
    took = ((job.finished_at or now) - job.started_at).total_seconds()
    return seconds(took), took


def short_json(value: object, limit: int = 80) -> str:
    text = json.dumps(value)
    return h(text if len(text) <= limit else text[: limit - 1] + "…")


def job_list(jobs: Sequence[Job], now: datetime, *, table_id: str = "jobs") -> str:
    """Jobs with their outcome and run time; a click on a heading sorts by it (the page's
    script; `data-sort` holds each cell's sortable value)."""
    if not jobs:
        return '<p class="muted">No jobs match.</p>'
    headers = [
        "job", "state", "task", "queue", "tags", "attempt", "created", "ran", "result", "owner",
    ]  # fmt: skip
    rows = []
    for j in jobs:
        ran, took = duration(j, now)
        if j.state is JobState.SUCCEEDED:
            result = f"<code>{short_json(j.result)}</code>"
        else:
            result = h(((j.last_error or {}).get("error") or "")[:80])
        cells = [
            (job_link(j.id), str(j.id)),
            (state(j.state), j.state.value),
            (h(j.task), j.task),
            (h(j.queue), j.queue),
            (tag_links(j.tags), " ".join(j.tags)),
            (f"{j.attempt}/{j.max_attempts}", str(j.attempt)),
            (when(j.created_at), j.created_at.isoformat()),
            (ran, "" if took is None else f"{took:.6f}"),
            (result, None),
            (h(j.owner or ""), j.owner or ""),
        ]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{shown}</td>" if key is None else f'<td data-sort="{h(key)}">{shown}</td>'
                for shown, key in cells
            )
            + "</tr>"
        )
    head = "".join(f'<th title="sort by {h(x)}">{h(x)}</th>' for x in headers)
    return (
        f'<table class="sortable" id="{h(table_id)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def tag_links(tags: Sequence[str]) -> str:
    """Each tag as a link to the jobs that carry it."""
    return " ".join(
        f'<a class="tag" href="/dashboard/jobs?{h(urlencode({"tag": t}))}">{h(t)}</a>' for t in tags
    )


def state_tabs(current: str | None, params: Mapping[str, str]) -> str:
    """Links to the same list in each state (and all of them)."""
    links = []
    for name in [None, *STATES]:
        query = {k: v for k, v in params.items() if v and k not in ("state", "before")}
        if name:
            query["state"] = name
        href = "/dashboard/jobs" + (f"?{urlencode(query)}" if query else "")
        label = name or "all"
        attrs = ' aria-current="page"' if name == current else ""
        links.append(f'<a href="{h(href)}"{attrs}>{h(label)}</a>')
    return f'<nav class="tabs">{" · ".join(links)}</nav>'


# ----- one job ------------------------------------------------------------------------


def job_page(
    job: Job, delivery: WebhookDelivery | None = None, links: JobLinks | None = None
) -> str:
    fields = [
        ("id", f'<span class="mono">{h(job.id)}</span>'),
        ("state", state(job.state)),
        ("task", h(job.task)),
        ("queue", h(job.queue)),
        ("priority", h(job.priority)),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("retry backoff", backoff(job)),
        ("owner", h(job.owner or "-")),
        ("tags", tag_links(job.tags) or '<span class="muted">-</span>'),
        ("args", f"<code>{h(json.dumps(job.user_args))}</code>"),
        ("created", when(job.created_at)),
        ("run at", when(job.run_at)),
        ("started", when(job.started_at)),
        ("finished", when(job.finished_at)),
        ("worker", h(job.worker_id or "-")),
        ("lease until", when(job.lease_expires_at)),
    ]
    if job.state is JobState.SUCCEEDED:
        fields.append(("result", f"<code>{h(json.dumps(job.result))}</code>"))
    if job.callback_url is not None:
        fields.append(("webhook", webhook(delivery)))
    if job.has_parents:
        fields.append(("waits for", waits_for(job)))
    if job.progress is not None:
        after_attempt = [name for name, _ in fields].index("attempt") + 1
        fields.insert(after_attempt, ("progress", progress(job.progress)))
    detail = "".join(f"<tr><th>{h(k)}</th><td>{v}</td></tr>" for k, v in fields)
    buttons = ""
    if not job.state.is_terminal:
        buttons = action(job, "cancel")
    elif job.state in (JobState.FAILED, JobState.CANCELLED):
        buttons = action(job, "retry") + f' <span class="hint">{h(RETRY_GIVES[job.state])}</span>'

    return (
        f"<h1>{h(job.task)} {state(job.state)}</h1>"
        + section("Job", f"<table>{detail}</table><p>{buttons}</p>", attrs='id="job"')
        + graph(links or JobLinks())
        + section("Attempts", attempts(job), attrs='id="attempts"')
    )


def progress(reported: Progress) -> str:
    """A bar, the percentage and the handler's words (the page refreshes every two seconds;
    the progress it shows is at most about a second older)."""
    words = f" {h(reported.message)}" if reported.message else ""
    data = f" <code>{h(short_json(reported.data))}</code>" if reported.data else ""
    return (
        f'<progress max="100" value="{reported.percent}">{reported.percent}%</progress> '
        f'<span class="progress-percent">{reported.percent}%</span>{words}{data}'
        f' <span class="hint">{when(reported.at)}</span>'
    )


def waits_for(job: Job) -> str:
    left = job.pending_parents or 0
    count = f"{left} parent{'' if left == 1 else 's'} still to end" if left else "nothing now"
    anyway = (
        "runs even if one fails" if job.on_parent_failure == "run" else "cancelled if one fails"
    )
    return h(f"{count}; {anyway}")


def graph(links: JobLinks) -> str:
    """The jobs this one waits for and those waiting for it: a list each, in order."""
    if not links.parents and not links.children:
        return ""

    def rows(found: Sequence[JobLink]) -> list[list[str]]:
        return [
            [job_link(link.id), h(link.task or "(pruned)"), state(link.state or "gone")]
            for link in found
        ]

    def more(shown: int, total: int) -> str:
        return f'<p class="muted">{total - shown} more not shown.</p>' if total > shown else ""

    body = ""
    if links.parents:
        body += "<h3>Waits for</h3>" + table(["job", "task", "state"], rows(links.parents), "")
        body += more(len(links.parents), links.parents_total)
    if links.children:
        body += "<h3>Waited for by</h3>" + table(["job", "task", "state"], rows(links.children), "")
        body += more(len(links.children), links.children_total)
    return section("Dependencies", body, attrs='id="dependencies"')


def webhook(delivery: WebhookDelivery | None) -> str:
    """How the job's webhook delivery (jobrunner's own job) stands."""
    if delivery is None:
        return '<span class="muted">sent once the job ends</span>'
    tries = f"{delivery.attempt} of {delivery.max_attempts} attempts"
    error = f": {h(delivery.last_error)}" if delivery.last_error else ""
    return f"{state(delivery.state)} {tries}{error}"


def backoff(job: Job) -> str:
    """How a failed attempt waits: the row's policy, or the worker's default."""
    if job.backoff_base is None or job.backoff_cap is None:
        return '<span class="muted">worker default</span>'
    base, cap = job.backoff_base.total_seconds(), job.backoff_cap.total_seconds()
    return h(f"doubling from {base:g}s up to {cap:g}s")


def attempts(job: Job) -> str:
    """Every attempt: failed ones from the errors array, then the current or final one."""
    items = []
    for error in job.errors:
        trace = error.get("traceback")
        items.append(
            f"<li><strong>attempt {h(error.get('attempt', '?'))}</strong> "
            f"{state(str(error.get('outcome', 'failed')))} on {h(error.get('worker', '?'))}, "
            f"{when(error.get('started_at'))} → {when(error.get('finished_at'))}: "
            f"{h(error.get('error', ''))}" + (f"<pre>{h(trace)}</pre>" if trace else "") + "</li>"
        )
    recorded = {e.get("attempt") for e in job.errors}
    if job.attempt and job.attempt not in recorded:
        items.append(
            f"<li><strong>attempt {job.attempt}</strong> {state(job.state)} on "
            f"{h(job.worker_id or '?')}, from {when(job.started_at)}</li>"
        )
    return f"<ol>{''.join(items)}</ol>" if items else '<p class="muted">Not started yet.</p>'


# ----- queues ---------------------------------------------------------------------------


def limit(value: int | None) -> str:
    return '<span class="muted">-</span>' if value is None else h(value)


def rate(queue: QueueControls) -> str:
    return h(queue.rate_text) if queue.rate_text else '<span class="muted">-</span>'


def queue_action(queue: QueueControls) -> str:
    verb = "resume" if queue.paused else "pause"
    return (
        f'<form class="inline" method="post" action="/dashboard/queues/{h(queue.name)}/{verb}">'
        f"<button>{verb}</button></form> "
        f'<a href="/dashboard/queues?queue={h(queue.name)}#queue-form">edit</a>'
    )


def queue_table(rows: Sequence[tuple[QueueControls, QueueCounts]], *, admin: bool) -> str:
    """Each queue's controls and its unfinished jobs (admins: everyone's, with buttons)."""
    live = [s.value for s in JobState if not s.is_terminal]

    def count(counts: QueueCounts, name: str) -> str:
        n = counts.states.get(name, 0)
        return f"{n}+" if counts.at_least(name) else str(n)

    def who(queue: QueueControls) -> str:
        return "everyone" if queue.open_to_all else h(", ".join(queue.granted_to)) or "admins"

    headers = ["queue", "state", "max running", "per owner", "rate", "open to", *live]
    body = [
        [
            h(q.name),
            state("paused") if q.paused else state("running"),
            limit(q.max_running),
            limit(q.max_running_per_owner),
            rate(q),
            who(q),
            *(count(c, name) for name in live),
            *([queue_action(q)] if admin else []),
        ]
        for q, c in rows
    ]
    return table([*headers, *([""] if admin else [])], body, "No queues yet.")


def queue_form(queue: QueueControls, error: str = "") -> str:
    """Set a queue's controls: every field is sent, and an empty limit is no limit."""

    def number(name: str, label: str, value: int | None, least: int) -> str:
        shown = "" if value is None else h(value)
        return (
            f'<label>{h(label)} <input name="{name}" type="number" min="{least}" '
            f'value="{shown}" size="8"></label> '
        )

    per = queue.rate_period.total_seconds() if queue.rate_period is not None else 1.0
    options = "".join(
        f'<option value="{p}"{" selected" if seconds == per else ""}>{p}</option>'
        for p, seconds in (("second", 1.0), ("minute", 60.0))
    )
    checked = " checked" if queue.open_to_all else ""
    problem = f'<p class="error" id="queue-error">{h(error)}</p>' if error else ""
    return (
        f'{problem}<form class="submit" method="post" action="/dashboard/queues">'
        f'<label>Queue <input name="name" value="{h(queue.name)}" required size="16"></label> '
        + number("max_running", "Max running", queue.max_running, 0)
        + number("max_running_per_owner", "Per owner", queue.max_running_per_owner, 1)
        + number("rate_limit", "Starts", queue.rate_limit, 1)
        + f'<label>per <select name="rate_per">{options}</select></label> '
        f'<label><input type="checkbox" name="open_to_all" value="yes"{checked}> open to '
        f"every user</label> <button>Save</button>"
        '<p class="hint">An empty limit is no limit. Workers obey a change within a '
        "second; a paused queue stays paused.</p></form>"
    )


# ----- schedules ------------------------------------------------------------------------


def schedule_action(schedule: Schedule) -> str:
    verb = "resume" if schedule.paused else "pause"
    return (
        f'<form class="inline" method="post" '
        f'action="/dashboard/schedules/{h(quote(schedule.name, safe=""))}/{verb}">'
        f"<button>{verb}</button></form>"
    )


def schedule_outcome(schedule: Schedule) -> str:
    """The job the last tick enqueued (link and state), or why it enqueued none."""
    if schedule.last_error is not None:
        return f'<span class="state state-failed" title="{h(schedule.last_error)}">error</span>'
    if schedule.last_job_id is None:
        return '<span class="muted">-</span>'
    if schedule.last_job_state is None:
        return '<span class="muted">pruned</span>'
    return f"{job_link(schedule.last_job_id)} {state(schedule.last_job_state.value)}"


def schedule_table(rows: Sequence[Schedule]) -> str:
    """Every schedule with its next and last run, the last job's state, and a button."""
    headers = ["name", "source", "state", "task", "cron", "time zone", "next run", "last run",
               "last job", ""]  # fmt: skip
    body = [
        [
            h(s.name),
            h(s.source),
            state("paused") if s.paused else state("active"),
            h(s.task),
            f'<span class="mono">{h(s.cron or "-")}</span>',
            h(s.timezone),
            when(s.next_run_at),
            when(s.last_run_at),
            schedule_outcome(s),
            schedule_action(s),
        ]
        for s in rows
    ]
    return table(headers, body, "No schedules yet: @task(cron=...) or POST /schedules adds one.")
