"""The dashboard in real headless Chromium: log in, submit a job, watch it succeed live.

Runs `jobrunner up` as a user would (API, worker and dashboard in one process) against this
test's database. Skips, saying why, when no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from pathlib import Path

import httpx
import pytest

from jobrunner import accounts
from jobrunner.db.pool import Pool
from tests.dashboard.chromium import chromium_page, find_chromium
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


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found (apt-get install chromium)")
async def test_log_in_submit_and_watch_a_job_succeed(cli: Cli, pool: Pool, tmp_path: Path) -> None:
    assert CHROMIUM is not None
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
        async with chromium_page(CHROMIUM, tmp_path / "chromium") as page:
            await page.goto(f"{base}/dashboard")
            await page.wait_for("location.pathname === '/dashboard/login'")
            await page.wait_for("document.querySelector('input[name=password]') !== null")
            await page.evaluate(
                "document.querySelector('input[name=username]').value = 'ada';"
                f"document.querySelector('input[name=password]').value = {json.dumps(PASSWORD)};"
                "document.querySelector('form').submit(); true"
            )
            await page.wait_for("location.pathname === '/dashboard'")
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
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.communicate(), timeout=30)
    assert server.returncode == 0
