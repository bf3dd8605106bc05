"""The dashboard's Queues page: controls and counts, pause and resume, the limits form."""

from __future__ import annotations

from typing import Any

import httpx

from jobrunner import client, queues
from jobrunner.db.pool import Pool


async def _row(pool: Pool, name: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM jobrunner.queues WHERE name = $1", name)
    return dict(row) if row is not None else None


async def test_admins_see_controls_and_counts_and_pause_and_resume(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        for _ in range(2):
            await client.enqueue("echo", {}, conn=conn, queue="reports")
    page = await admin.get("/dashboard/queues")
    assert page.status_code == 200
    assert 'id="queues"' in page.text and 'id="queue-form"' in page.text
    assert 'data-live="0"' in page.text  # the form is not replaced while someone types
    assert "<td>reports</td>" in page.text and "<td>2</td>" in page.text
    assert 'action="/dashboard/queues/reports/pause"' in page.text

    paused = await admin.post("/dashboard/queues/reports/pause")
    assert paused.status_code == 303 and paused.headers["location"] == "/dashboard/queues"
    row = await _row(pool, "reports")
    assert row is not None and row["paused_at"] is not None and row["updated_by"] == "root"
    page = await admin.get("/dashboard/queues")
    assert "state-paused" in page.text
    assert 'action="/dashboard/queues/reports/resume"' in page.text
    assert (await admin.post("/dashboard/queues/reports/resume")).status_code == 303
    row = await _row(pool, "reports")
    assert row is not None and row["paused_at"] is None

    foreign = await admin.post(
        "/dashboard/queues/reports/pause", headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    row = await _row(pool, "reports")
    assert row is not None and row["paused_at"] is None


async def test_the_form_sets_limits_and_an_empty_one_is_none(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    form = {
        "name": "emails",
        "max_running": "20",
        "max_running_per_owner": "5",
        "rate_limit": "600",
        "rate_per": "minute",
        "open_to_all": "yes",
    }
    saved = await admin.post("/dashboard/queues", data=form)
    assert (
        saved.status_code == 303 and saved.headers["location"] == "/dashboard/queues?queue=emails"
    )
    row = await _row(pool, "emails")
    assert row is not None and (row["max_running"], row["max_running_per_owner"]) == (20, 5)
    assert row["rate_limit"] == 600 and row["rate_period"].total_seconds() == 60
    assert row["open_to_all"] is True
    editing = await admin.get(saved.headers["location"])
    assert 'name="max_running" type="number" min="0" value="20"' in editing.text
    assert '<option value="minute" selected>' in editing.text

    cleared = await admin.post("/dashboard/queues", data={"name": "emails", "max_running": "3"})
    assert cleared.status_code == 303
    row = await _row(pool, "emails")
    assert row is not None and row["max_running"] == 3 and row["rate_limit"] is None
    assert row["max_running_per_owner"] is None and row["open_to_all"] is False

    for bad in ({"max_running": "-1"}, {"rate_limit": "many"}, {"max_running_per_owner": "0"}):
        refused = await admin.post("/dashboard/queues", data={"name": "emails", **bad})
        assert refused.headers["location"] == "/dashboard/queues?error=limits&queue=emails"
    shown = await admin.get("/dashboard/queues", params={"error": "limits"})
    assert 'id="queue-error"' in shown.text and "whole numbers" in shown.text
    row = await _row(pool, "emails")
    assert row is not None and row["max_running"] == 3  # nothing written by the bad ones
    bad_name = await admin.post("/dashboard/queues", data={"name": "no spaces"})
    assert bad_name.headers["location"] == "/dashboard/queues?error=name"


async def test_users_see_their_open_queues_and_may_not_change_them(
    user: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        await queues.grant(conn, "reports", "ada", by="test")
        await queues.pause(conn, "secret", by="test")
    page = await user.get("/dashboard/queues")
    assert page.status_code == 200 and "Queues open to you" in page.text
    assert "<td>reports</td>" in page.text and "<td>default</td>" in page.text
    assert "secret" not in page.text and "/pause" not in page.text
    assert (await user.post("/dashboard/queues/reports/pause")).status_code == 403
    assert (await user.post("/dashboard/queues", data={"name": "reports"})).status_code == 403
    row = await _row(pool, "reports")
    assert row is not None and row["paused_at"] is None


async def test_the_submit_form_obeys_queue_access(user: httpx.AsyncClient, pool: Pool) -> None:
    sent = await user.post("/dashboard/submit", data={"task": "test.with_defaults"})
    assert sent.status_code == 403 and "queue is not open to you" in sent.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0
        await queues.grant(conn, "defaults-q", "ada", by="test")
    allowed = await user.post("/dashboard/submit", data={"task": "test.with_defaults"})
    assert allowed.headers["location"].startswith("/dashboard/jobs/")
