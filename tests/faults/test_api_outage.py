"""Jobs submitted through the HTTP API while PostgreSQL restarts: the API answers 503 (never
500) while the database is away, and every job that got a 201 completes.

The API runs in this process (its ASGI app, through httpx); the workers are real processes.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import httpx
from pydantic import SecretStr

from jobrunner import accounts
from jobrunner.api.app import create_app
from jobrunner.cli.embedded import EmbeddedPostgres
from jobrunner.settings import Settings
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import wait_for

PASSWORD = "correct horse battery"


async def _submit_until(
    http: httpx.AsyncClient, headers: dict[str, str], stop: asyncio.Event,
    statuses: Counter[int], accepted: list[UUID],
) -> None:  # fmt: skip
    n = 0
    while not stop.is_set():
        n += 1
        try:
            answer = await http.post(
                "/jobs", json={"task": "fault.record", "args": {"n": n}, "max_attempts": 50},
                headers=headers,
            )  # fmt: skip
        except httpx.HTTPError:  # the app itself raised: counted as the 500 it would be
            statuses[599] += 1
            continue
        statuses[answer.status_code] += 1
        if answer.status_code == 201:
            accepted.append(UUID(answer.json()["id"]))
        await asyncio.sleep(0.01)


async def test_api_answers_503_while_postgres_restarts(
    fault_server: EmbeddedPostgres, fault_dsn: str, db: Db, procs: Processes,
    figures: Figures, tmp_path: Path,
) -> None:  # fmt: skip
    settings = Settings(
        database_url=fault_dsn, data_dir=tmp_path, jwt_secret=SecretStr("s" * 48),
        tasks=["tests.support.fault_tasks"], pool_min_size=1,
        submit_rate_per_minute=1_000_000, submit_burst=1_000_000,
    )  # fmt: skip
    await accounts.create_user(await db.conn(), username="alice", password=PASSWORD)
    procs.start_worker("w", WorkerOptions(lease_seconds=10.0, heartbeat_interval=0.5))
    await wait_for(db.serves, timeout=60, what="a worker registered")  # else users get 422
    app = create_app(settings)
    statuses: Counter[int] = Counter()
    accepted: list[UUID] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            login = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            stop = asyncio.Event()
            submitting = asyncio.create_task(_submit_until(http, headers, stop, statuses, accepted))
            try:
                await wait_for(lambda: len(accepted) >= 50, timeout=30, what="submissions flow")
                await asyncio.to_thread(fault_server.stop, "fast")
                down = time.monotonic()
                await wait_for(lambda: statuses[503] >= 3, timeout=30, what="503 while away")
                await asyncio.sleep(1.0)  # the database stays away a while longer
                await asyncio.to_thread(fault_server.start)
                up = time.monotonic()
                before = len(accepted)
                await wait_for(lambda: len(accepted) >= before + 50, timeout=60,
                               what="201s again")  # fmt: skip
                back = time.monotonic() - up
            finally:
                stop.set()
                await submitting
    await wait_for(lambda: db.all_done(accepted), timeout=60, what="every 201 job done")
    await assert_nothing_lost(db, accepted)
    assert set(statuses) <= {201, 503}, statuses  # never a 500
    figures(statuses={str(k): v for k, v in sorted(statuses.items())},
            outage_seconds=up - down, api_201_again_after_start_seconds=back)  # fmt: skip
