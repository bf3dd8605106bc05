"""The jobs page searches by tag and args, shows each job's tags, and its bulk form counts the
jobs its filter matches, asks, then acts: on the user's own jobs only (issue 16, items 1, 3)."""

from __future__ import annotations

import re
from uuid import UUID

import httpx
import pytest

from jobrunner import accounts
from jobrunner.api import bulk_rules
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.bulk import count_jobs, insert_jobs

CAP = 12  # a user's unfinished jobs


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_unfinished_jobs_per_user": CAP})


@pytest.fixture
async def bob(pool: Pool) -> str:
    """Another user, whose jobs ada's forms must not touch."""
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username="bob", password="x" * 12)
    return "bob"


async def _ids(pool: Pool, *, owner: str, tag: str) -> set[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id FROM jobrunner.jobs WHERE owner = $1 AND $2 = ANY (tags)", owner, tag
        )
    return {str(r["id"]) for r in rows}


def _listed(page: str) -> set[str]:
    return set(re.findall(r'<td data-sort="([0-9a-f-]{36})">', page))


def _hidden(page: str, form_action: str = "/dashboard/jobs/bulk") -> dict[str, str]:
    """The named fields of the page's last form posting to `form_action`."""
    forms = re.findall(rf'<form[^>]*action="{form_action}"[^>]*>(.*?)</form>', page, re.S)
    assert forms, page
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', forms[-1])
    return {name: value.replace("&quot;", '"') for name, value in fields}


async def test_the_list_filters_by_tag_and_args_and_shows_tags(
    user: httpx.AsyncClient, pool: Pool, bob: str
) -> None:
    await insert_jobs(pool, 3, owner="ada", tags=["nightly", "eu"])
    await insert_jobs(pool, 2, owner="ada", tags=["hourly"])
    await insert_jobs(pool, 2, owner=bob, tags=["nightly"])
    nightly = await _ids(pool, owner="ada", tag="nightly")

    both = await user.get("/dashboard/jobs", params={"tag": "nightly eu"})
    assert both.status_code == 200 and _listed(both.text) == nightly
    assert 'href="/dashboard/jobs?tag=eu">eu</a>' in both.text  # each tag links to its jobs
    assert 'id="filter-tag" value="nightly eu"' in both.text  # the form keeps what was typed
    repeated = await user.get("/dashboard/jobs", params=[("tag", "nightly"), ("tag", "eu")])
    assert _listed(repeated.text) == nightly

    one = await user.get("/dashboard/jobs", params={"tag": "nightly", "args": '{"n": 2}'})
    assert len(_listed(one.text)) == 1 and _listed(one.text) <= nightly
    job = (await user.get(f"/dashboard/jobs/{_listed(one.text).pop()}")).text
    assert re.search(r"<th>tags</th><td>.*>nightly</a> .*>eu</a></td>", job)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"tag": "no spaces!"}, "is not 1-64 characters"),
        ({"args": "{nope"}, "args filter is not JSON"),
        ({"args": "[1, 2]"}, "args filter is a JSON object"),
        ({"tag": " ".join(f"t{i}" for i in range(17))}, "at most 16 tags"),
    ],
)
async def test_a_bad_filter_comes_back_as_typed_with_what_is_wrong(
    user: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    page = await user.get("/dashboard/jobs", params=params)
    assert page.status_code == 422
    error = re.search(r'<p class="error" id="filter-error">([^<]*)</p>', page.text)
    assert error is not None and says in error[1].replace("&#x27;", "'"), page.text
    assert 'id="filter-args"' in page.text and 'data-live="0"' in page.text


async def test_a_bulk_cancel_counts_asks_then_acts_on_the_users_jobs_only(
    user: httpx.AsyncClient, admin: httpx.AsyncClient, pool: Pool, bob: str
) -> None:
    await insert_jobs(pool, 3, owner="ada", tags=["nightly"])
    await insert_jobs(pool, 2, owner="ada", tags=["hourly"])
    await insert_jobs(pool, 4, owner=bob, tags=["nightly"])
    page = (await user.get("/dashboard/jobs", params={"tag": "nightly"})).text
    form = _hidden(page)
    assert form == {"tag": "nightly"}  # the bulk form carries the page's filter

    asked = await user.post("/dashboard/jobs/bulk", data={**form, "action": "cancel"})
    assert asked.status_code == 200
    assert "3 jobs match this filter and can be cancelled" in asked.text
    assert await count_jobs(pool, owner="ada", state="queued") == 5  # a count changes nothing
    confirm = _hidden(asked.text)
    assert confirm == {"tag": "nightly", "action": "cancel", "confirm": "yes"}

    done = await user.post("/dashboard/jobs/bulk", data=confirm)
    assert done.status_code == 200 and '<p id="bulk-done">3 jobs cancelled.</p>' in done.text
    assert await count_jobs(pool, owner="ada", state="cancelled") == 3
    assert await count_jobs(pool, owner="ada", state="queued") == 2
    assert await count_jobs(pool, owner=bob, state="queued") == 4  # not hers

    everyone = await admin.post("/dashboard/jobs/bulk", data=confirm)
    assert '<p id="bulk-done">4 jobs cancelled.</p>' in everyone.text
    async with pool.acquire() as conn:
        audit = await conn.fetch(
            "SELECT actor, dry_run, jobs, filter FROM jobrunner.bulk_actions ORDER BY id"
        )
    assert [(r["actor"], r["dry_run"], r["jobs"]) for r in audit] == [
        ("ada", True, 3), ("ada", False, 3), ("root", False, 4),
    ]  # fmt: skip


async def test_a_bulk_action_goes_on_past_the_per_call_cap(
    user: httpx.AsyncClient, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_rules, "MAX_JOBS_PER_CALL", 4)
    await insert_jobs(pool, 6, owner="ada", state="failed")
    data = {"state": "failed", "action": "delete", "confirm": "yes"}
    first = await user.post("/dashboard/jobs/bulk", data=data)
    assert '<p id="bulk-done">4 jobs deleted.</p>' in first.text and 'id="bulk-go-on"' in first.text
    go_on = _hidden(first.text)
    assert UUID(go_on.pop("after")) and go_on == data
    rest = await user.post("/dashboard/jobs/bulk", data=_hidden(first.text))
    assert '<p id="bulk-done">2 jobs deleted.</p>' in rest.text and "bulk-go-on" not in rest.text
    assert await count_jobs(pool, owner="ada", state="failed") == 0


async def test_a_users_bulk_retry_is_charged_and_refused_as_a_page_message(
    user: httpx.AsyncClient, pool: Pool
) -> None:
    await insert_jobs(pool, CAP, owner="ada", state="queued")
    await insert_jobs(pool, 3, owner="ada", state="failed")
    refused = await user.post("/dashboard/jobs/bulk", data={"action": "retry", "confirm": "yes"})
    assert refused.status_code == 429 and 'id="bulk-error"' in refused.text
    assert "not one job could be retried" in refused.text
    assert await count_jobs(pool, owner="ada", state="failed") == 3


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"action": "explode"}, "Choose cancel, retry or delete."),
        ({"action": "cancel", "args": "{"}, "args filter is not JSON"),
        ({"action": "cancel", "confirm": "yes", "after": "x"}, "not a job id"),
    ],
)
async def test_a_bad_bulk_post_is_a_page_message(
    user: httpx.AsyncClient, pool: Pool, data: dict[str, str], says: str
) -> None:
    await insert_jobs(pool, 2, owner="ada")
    answer = await user.post("/dashboard/jobs/bulk", data=data)
    assert answer.status_code == 422 and says in answer.text
    assert await count_jobs(pool, owner="ada", state="queued") == 2


async def test_a_cross_site_bulk_post_is_refused(user: httpx.AsyncClient, pool: Pool) -> None:
    await insert_jobs(pool, 2, owner="ada")
    answer = await user.post(
        "/dashboard/jobs/bulk",
        data={"action": "cancel", "confirm": "yes"},
        headers={"origin": "https://elsewhere.example"},
    )
    assert answer.status_code == 403
    assert await count_jobs(pool, owner="ada", state="queued") == 2
