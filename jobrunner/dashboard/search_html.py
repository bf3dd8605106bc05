"""The jobs page's filter form, and its bulk form with the confirm step and the outcome.

    jobs page ─► filter form (GET, the page's own URL)
              └► bulk form (POST /dashboard/jobs/bulk, the filter in hidden fields)
                   ─► confirm: "N jobs match" (a dry run) ─► confirm (POST, confirm=yes)
                        ─► outcome: "N jobs cancelled", and a form to go on if it stopped

Nothing is changed before the confirm: the first post only counts. No `data-confirm` here
either: the count is the question, asked by the server.
"""

from __future__ import annotations

from urllib.parse import urlencode

from jobrunner import bulk
from jobrunner.bulk import BulkAction, BulkResult
from jobrunner.dashboard.html import h, section
from jobrunner.dashboard.job_filter import ListFilter

PAST: dict[BulkAction, str] = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}
WHICH: dict[BulkAction, str] = {
    "cancel": "unfinished ones (a running job is asked to stop)",
    "retry": "failed or cancelled ones (each counts as a submission)",
    "delete": "finished ones",
}


def filter_form(listing: ListFilter, error: str = "") -> str:
    """The filter, as a GET of the jobs page; the state stays what its tab says."""
    problem = f'<p class="error" id="filter-error">{h(error)}</p>' if error else ""
    state = (
        f'<input type="hidden" name="state" value="{h(listing.state)}">' if listing.state else ""
    )
    fields = (
        _field("Task", "q", "filter-task", listing.task, 16)
        + _field("Queue", "queue", "filter-queue", listing.queue, 12)
        + _field("Tags", "tag", "filter-tag", listing.tags, 20, "all of these, space-separated")
        + _field("Args contain (JSON)", "args", "filter-args", listing.args, 24, '{"user_id": 42}')
    )
    return (
        f'{problem}<form class="filter" id="filter" method="get" action="/dashboard/jobs">'
        f"{state}{fields}<button>Filter</button></form>"
    )


def _field(label: str, name: str, id_: str, value: str, size: int, hint: str = "") -> str:
    placeholder = f' placeholder="{h(hint)}"' if hint else ""
    return (
        f'<label>{h(label)} <input name="{name}" id="{id_}" value="{h(value)}" '
        f'size="{size}"{placeholder}></label> '
    )


def hidden(listing: ListFilter, **more: str) -> str:
    """The filter (and `more`) as hidden fields: a bulk form acts on what the page lists."""
    values = {**listing.params(), **more}
    return "".join(
        f'<input type="hidden" name="{h(name)}" value="{h(value)}">'
        for name, value in values.items()
    )


def bulk_form(listing: ListFilter) -> str:
    """Act on every job the filter matches; the first step only counts them."""
    options = "".join(f'<option value="{a}">{a}: {h(WHICH[a])}</option>' for a in bulk.ACTIONS)
    body = (
        f'<p class="hint">Filter: {h(listing.describe())}. Nothing changes until you confirm '
        "the count.</p>"
        f'<form class="bulk" id="bulk" method="post" action="/dashboard/jobs/bulk">'
        f"{hidden(listing)}"
        f'<label>Action <select name="action" id="bulk-action">{options}</select></label> '
        f'<button id="bulk-count">Count matching jobs</button></form>'
    )
    return section("Act on every job this filter matches", body, attrs='id="bulk-actions"')


def confirm(listing: ListFilter, action: BulkAction, count: int) -> str:
    """The dry run's count, and the button that does it."""
    back = _back(listing)
    if count == 0:
        body = f'<p id="bulk-count-result">No job matches: nothing to {action}.</p>{back}'
        return "<h1>Bulk action</h1>" + section(f"Bulk {action}", body, attrs='id="bulk-confirm"')
    jobs = _jobs(count)
    body = (
        f'<p id="bulk-count-result">{jobs} {_match(count)} this filter and can be '
        f"{PAST[action]}: {h(WHICH[action])}.</p>"
        f'<p class="hint">Filter: {h(listing.describe())}.</p>'
        f'<form method="post" action="/dashboard/jobs/bulk">'
        f"{hidden(listing, action=action, confirm='yes')}"
        f'<button id="bulk-do">{h(action.title())} {jobs}</button></form> {back}'
    )
    return "<h1>Bulk action</h1>" + section(f"Bulk {action}", body, attrs='id="bulk-confirm"')


def outcome(listing: ListFilter, result: BulkResult) -> str:
    """What was done; when it stopped early, why, and (for the per-call cap) a way on."""
    done = f"{_jobs(result.jobs)} {PAST[result.action]}."
    more = ""
    if result.stopped_by == "max_jobs" and result.next_cursor is not None:
        more = (
            "<div><p>More jobs may match: one go reads a capped number of them.</p>"
            f'<form class="inline" method="post" action="/dashboard/jobs/bulk">'
            f"{hidden(listing, action=result.action, confirm='yes', after=str(result.next_cursor))}"
            '<button id="bulk-go-on">Go on</button></form></div>'
        )
    elif result.stopped_by == "allowance":
        more = (
            '<p class="error">It stopped at your submission rate or your unfinished-jobs cap '
            "(retries count as submissions): retry the rest later.</p>"
        )
    body = f'<p id="bulk-done">{h(done)}</p>{more}{_back(listing)}'
    return "<h1>Bulk action</h1>" + section(f"Bulk {result.action}", body, attrs='id="bulk-result"')


def refused(listing: ListFilter, message: str) -> str:
    body = f'<p class="error" id="bulk-error">{h(message)}</p>{_back(listing)}'
    return "<h1>Bulk action</h1>" + section("Not done", body, attrs='id="bulk-result"')


def _back(listing: ListFilter) -> str:
    query = urlencode(listing.params())
    href = "/dashboard/jobs" + (f"?{query}" if query else "")
    return f'<p><a id="bulk-back" href="{h(href)}">← back to the jobs</a></p>'


def _jobs(count: int) -> str:
    return f"{count:,} job" + ("" if count == 1 else "s")


def _match(count: int) -> str:
    return "matches" if count == 1 else "match"
