"""The dashboard in real headless Chromium: log in, submit a job, watch it succeed live, then
(as an admin) pause a schedule and see a running job's progress; filter the jobs by tag and
cancel them all through the bulk form's confirm step.

Runs `jobrunner up` as a user would (API, worker and dashboard in one process) against this
test's database. Skips, saying why, when no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from jobrunner import accounts, client, schedules
from jobrunner.db.pool import Pool
from jobrunner.db.queries import NewSchedule
from tests.dashboard.chromium import Page, chromium_page, find_chromium
from tests.support.cli import Cli
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser
CHROMIUM = find_chromium()
PASSWORD = "correct horse battery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def _up(cli: Cli, pool: Pool) -> AsyncIterator[str]:
    """`jobrunner up` on a free port, once it answers and its worker has registered; its
    base URL. Stops it after, and checks that it stopped cleanly."""
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username="ada", password=PASSWORD)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = await cli.start("up", "--port", str(port))
    try:
        async with httpx.AsyncClient(base_url=base) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, timeout=60)

        async def registered() -> bool:  # a user's submission to a queue nobody serves is 422
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT EXISTS (SELECT FROM jobrunner.workers)"))

        await wait_for(registered, timeout=60, what="up's worker registered")
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.communicate(), timeout=30)
    assert server.returncode == 0


async def _log_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/dashboard")
    await page.wait_for("location.pathname === '/dashboard/login'")
    await page.wait_for("document.querySelector('input[name=password]') !== null")
    await page.evaluate(
        "document.querySelector('input[name=username]').value = 'ada';"
        f"document.querySelector('input[name=password]').value = {json.dumps(PASSWORD)};"
        "document.querySelector('form').submit(); true"
    )
    await page.wait_for("location.pathname === '/dashboard'")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)")
async def test_log_in_submit_and_watch_a_job_succeed(cli: Cli, pool: Pool, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    async with _up(cli, pool) as base, chromium_page(CHROMIUM, tmp_path / "chromium") as page:
        await _log_in(page, base)
        await page.wait_for("document.getElementById('submit-task') !== null")
        await page.evaluate(
            "document.getElementById('submit-task').value = 'square_sum';"
            "document.getElementById('submit-args').value = '{\"data\": [1, 2, 3]}';"
            "document.querySelector('form.submit').submit(); true"
        )
        await page.wait_for("location.pathname.startsWith('/dashboard/jobs/')")
        # The page refreshes itself: no reload here, just wait for the state to change.
        await page.wait_for("document.querySelector('#job .state-succeeded') !== null")
        text = await page.evaluate("document.getElementById('job').innerText")
        assert "square_sum" in text and "14" in text
        attempts = await page.evaluate("document.getElementById('attempts').innerText")
        assert "attempt 1" in attempts

        # Made an admin (the role is read at every request), ada pauses a schedule.
        async with pool.acquire() as conn:
            await conn.execute("UPDATE jobrunner.users SET role = 'admin' WHERE username = 'ada'")
            new = NewSchedule("new-year", "echo", {}, "0 0 1 1 *", "Europe/Berlin", None, None)
            await schedules.add(conn, new, by="test")
        await page.goto(f"{base}/dashboard/schedules")
        pause = "form[action='/dashboard/schedules/new-year/pause'] button"
        await page.wait_for(f"document.querySelector({json.dumps(pause)}) !== null")
        listed = await page.evaluate("document.getElementById('schedules').innerText")
        assert "new-year" in listed and "Europe/Berlin" in listed
        await page.evaluate(f"document.querySelector({json.dumps(pause)}).click(); true")
        await page.wait_for("document.querySelector('#schedules .state-paused') !== null")
        async with pool.acquire() as conn:
            assert (await schedules.get(conn, "new-year")).paused

        # A running job's page shows how far its handler says it got (job.progress).
        async with pool.acquire() as conn:
            running = await conn.fetchval("""
                INSERT INTO jobrunner.jobs (task, owner, state, attempt, worker_id, started_at,
                                            lease_expires_at, progress, progress_message,
                                            progress_at)
                VALUES ('echo', 'ada', 'running', 1, 'elsewhere', now(), now() + interval '1 hour',
                        0.4, 'resized 40 of 100', now())
                RETURNING id""")
        await page.goto(f"{base}/dashboard/jobs/{running}")
        await page.wait_for("document.querySelector('#job progress') !== null")
        shown = await page.evaluate("document.getElementById('job').innerText")
        assert "40%" in shown and "resized 40 of 100" in shown, shown


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)")
async def test_filter_by_tag_and_bulk_cancel_through_the_confirm_step(
    cli: Cli, pool: Pool, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    async with _up(cli, pool) as base, chromium_page(CHROMIUM, tmp_path / "chromium") as page:
        async with pool.acquire() as conn:  # a queue no worker serves: they stay queued
            for tags in (["nightly"], ["nightly", "eu"], ["nightly"], ["hourly"]):
                await client.enqueue(
                    "test.add", {"a": 1, "b": 2}, conn=conn, owner="ada", queue="parked",
                    tags=tags,
                )  # fmt: skip
        await _log_in(page, base)
        await page.goto(f"{base}/dashboard/jobs")
        await page.wait_for("document.getElementById('filter-tag') !== null")
        await page.evaluate(
            "document.getElementById('filter-tag').value = 'nightly';"
            "document.getElementById('filter').submit(); true"
        )
        await page.wait_for("new URLSearchParams(location.search).get('tag') === 'nightly'")
        rows = await page.wait_for("document.querySelectorAll('#jobs tbody tr').length")
        assert rows == 3
        await page.evaluate(
            "document.getElementById('bulk-action').value = 'cancel';"
            "document.getElementById('bulk-count').click(); true"
        )
        asked = await page.wait_for("document.getElementById('bulk-count-result')?.innerText")
        assert "3 jobs match" in asked
        await page.evaluate("document.getElementById('bulk-do').click(); true")
        done = await page.wait_for("document.getElementById('bulk-done')?.innerText")
        assert done == "3 jobs cancelled."
    async with pool.acquire() as conn:
        states = await conn.fetch(
            "SELECT state::text, 'nightly' = ANY (tags) AS nightly, count(*)"
            " FROM jobrunner.jobs GROUP BY 1, 2 ORDER BY 1"
        )
    assert [tuple(r) for r in states] == [("cancelled", True, 3), ("queued", False, 1)]
