"""The dashboard's job lists (issue 15, item 7): short ids find their job, users see their
recent and succeeded jobs, lists show results and run times, sort, and page on; charts have
axes; one time format; a retry says what it gives."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from jobrunner import client
from jobrunner.dashboard import html as view
from jobrunner.db.pool import Pool
from jobrunner.models import ThroughputMinute
from jobrunner.settings import Settings
from jobrunner.testing import drain


async def test_the_short_ids_shown_find_their_job(user: httpx.AsyncClient, pool: Pool) -> None:
    async with pool.acquire() as conn:
        mine = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, owner="ada")
        other = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)  # nobody's
    short = str(mine.id)[:13]
    overview = await user.get("/dashboard")
    assert f">{short}…</a>" in overview.text  # what the lists show
    for typed in (short, f"{short}…", str(mine.id)[:8]):
        found = await user.get("/dashboard/jobs", params={"q": typed})
        assert found.status_code == 303, typed
        assert found.headers["location"] == f"/dashboard/jobs/{mine.id}"
    theirs = await user.get("/dashboard/jobs", params={"q": str(other.id)[:13]})
    assert theirs.status_code == 200  # not theirs: not found, not shown
    assert f"/dashboard/jobs/{other.id}" not in theirs.text


async def test_a_user_sees_their_recent_and_succeeded_jobs(
    user: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        done = await client.enqueue("square_sum", {"data": [1, 2, 3]}, conn=conn, owner="ada")
        waiting = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, owner="ada",
                                       queue="nobody-serves")  # fmt: skip
    await drain(pool, settings=settings)
    overview = await user.get("/dashboard")
    recent = overview.text[overview.text.index('id="recent"') :]
    assert "Your recent jobs" in recent
    assert str(done.id)[:13] in recent and str(waiting.id)[:13] in recent
    assert "<code>14</code>" in recent  # the result column
    succeeded = await user.get("/dashboard/jobs", params={"state": "succeeded"})
    assert str(done.id)[:13] in succeeded.text and str(waiting.id)[:13] not in succeeded.text
    assert 'aria-current="page">succeeded</a>' in succeeded.text  # the state tabs
    head = re.search(r'<table class="sortable" id="jobs"><thead><tr>(.*?)</tr>', succeeded.text)
    assert head is not None
    assert re.findall(r">(\w+)</th>", head[1]) == [
        "job", "state", "task", "queue", "tags", "attempt", "created", "ran", "result", "owner",
    ]  # fmt: skip
    assert re.search(r'<td data-sort="\d+\.\d+">\d+ ms</td>', succeeded.text)  # its run time


async def test_the_jobs_list_pages_on_past_its_first_page(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        ids = await client.enqueue_many("test.add", [{"a": i, "b": 0} for i in range(60)],
                                        conn=conn, queue="paged")  # fmt: skip
    first = await admin.get("/dashboard/jobs", params={"queue": "paged"})
    shown = set(re.findall(r'data-sort="([0-9a-f-]{36})"', first.text))
    assert len(shown) == 50
    older = re.search(r'<a id="older" href="([^"]+)"', first.text)
    assert older is not None
    second = await admin.get(older[1].replace("&amp;", "&"))
    rest = set(re.findall(r'data-sort="([0-9a-f-]{36})"', second.text))
    assert shown | rest == {str(i) for i in ids} and not shown & rest
    assert 'id="older"' not in second.text


def test_charts_have_axes() -> None:
    start = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    rows = [
        ThroughputMinute(
            minute=start + timedelta(minutes=m),
            queue="default",
            succeeded=n,
            failed=0,
            retried=0,
            cancelled=0,
        )
        for m, n in ((0, 4), (2, 8))
    ]
    chart = view.throughput_chart(rows)
    y_axis = re.search(r'<div class="y-axis"[^>]*>(.*?)</div>', chart)
    assert y_axis is not None and re.findall(r"<span>([^<]*)</span>", y_axis[1]) == ["8", "4", "0"]
    x_axis = re.search(r'<div class="x-axis"[^>]*>(.*?)</div>', chart)
    assert x_axis is not None
    assert re.findall(r"<span>([^<]*)</span>", x_axis[1]) == ["08:00", "08:01", "08:02"]
    assert chart.count('class="axis"') == 2 and "by minute (UTC)" in chart


async def test_times_read_one_way_and_a_retry_says_what_it_gives(
    user: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.always_fail", {}, conn=conn, owner="ada", max_attempts=1)
    await drain(pool, settings=settings)
    page = (await user.get(f"/dashboard/jobs/{job.id}")).text
    assert "+00:00 →" not in page and "T0" not in re.sub(r'"[^"]*"', "", page)  # no raw ISO
    shown = re.findall(r"<time [^>]*>([^<]*)</time>", page)
    assert shown and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in shown)
    assert "It goes back to its queue with exactly one more attempt." in page
