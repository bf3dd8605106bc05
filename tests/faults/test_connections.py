"""PostgreSQL out of connections while workers and the API run: another client holds every
connection the database allows, and everything jobrunner had open is cut. Workers stay up and
back off, the API answers 503 with a problem body (never 500), jobs enqueued meanwhile wait,
and once the connections are freed every job completes and the API answers 201 again.

Superusers are exempt from connection limits, so jobrunner connects here as a plain role of
its own. The limit is the test database's (`ALTER DATABASE ... CONNECTION LIMIT`), and the
"other client" is a hog of that role's connections opened before the limit came down.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from jobrunner import accounts
from jobrunner.api.app import create_app
from jobrunner.settings import Settings
from tests.faults.checks import Db, assert_nothing_lost, assert_repeats_explained
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions, WorkerProcess
from tests.support.waiting import equals, wait_for

PASSWORD = "correct horse battery"
REFUSED = "too many connections"
# Connections jobrunner may open here at most: per worker its pool (JOBRUNNER_POOL_MAX_SIZE=4),
# the client pool its handlers use (10), the listener and the heartbeat; plus the API's pool
# (4). The limit is the hog's size, so once the hog lets go there is room for all of them.
WORKERS = 2
MOST_CONNECTIONS = WORKERS * (4 + 10 + 1 + 1) + 4
HOG = MOST_CONNECTIONS + 4
DURING = 100  # jobs the test enqueues while the database is full
WINDOW = 1.5  # seconds the database stays full once the refusals are seen


def _as_role(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


@pytest.fixture
async def app_dsn(fault_dsn: str, db: Db, procs: Processes) -> AsyncIterator[str]:
    """A DSN for a non-superuser role of this test's own, with rights on the jobrunner tables."""
    database = urlsplit(fault_dsn).path.lstrip("/")
    role = f"{database}_app"
    for statement in (
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE ON SCHEMA jobrunner TO {role}",
        f"GRANT ALL ON ALL TABLES IN SCHEMA jobrunner, public TO {role}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA jobrunner, public TO {role}",
    ):
        await db.execute(statement)
    try:
        yield _as_role(fault_dsn, role)
    finally:
        procs.close()  # its processes connect as the role: gone before the role is
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await db.execute(f"DROP OWNED BY {role}")
        await db.execute(f"DROP ROLE {role}")


@dataclass
class Submitter:
    """Posts `fault.record` jobs one after another until stopped, sorting the answers."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[UUID] = field(default_factory=list)
    odd_answers: list[str] = field(default_factory=list)  # a 503 without a problem body
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {"task": "fault.record", "args": {"n": n}, "max_attempts": 50}
            try:
                answer = await self.http.post("/jobs", json=body, headers=self.headers)
            except httpx.HTTPError:  # the app itself raised: counted as the 500 it would be
                self.statuses[599] += 1
                continue
            self.statuses[answer.status_code] += 1
            if answer.status_code == 201:
                self.accepted.append(UUID(answer.json()["id"]))
            else:
                self._check_problem(answer)
            await asyncio.sleep(0.01)

    def refused(self, count: int) -> bool:
        """At least `count` answers were 503s; fails at once on any status but 201 and 503."""
        assert set(self.statuses) <= {201, 503}, self.statuses
        return self.statuses[503] >= count

    def _check_problem(self, answer: httpx.Response) -> None:
        try:
            problem = answer.json()
        except ValueError:
            problem = None
        if (
            not answer.headers.get("content-type", "").startswith("application/problem+json")
            or not isinstance(problem, dict)
            or problem.get("status") != answer.status_code
            or "Retry-After" not in answer.headers
        ):
            self.odd_answers.append(f"{answer.status_code} {answer.headers} {answer.text[:200]}")


class Hog:
    """Another client holding connections of the role: the database is full while it does."""

    def __init__(self) -> None:
        self.conns: list[asyncpg.Connection[asyncpg.Record]] = []

    async def open(self, dsn: str, count: int) -> list[int]:
        for _ in range(count):
            self.conns.append(await asyncpg.connect(dsn, timeout=10))
        return [c.get_server_pid() for c in self.conns]

    async def close(self) -> None:
        conns, self.conns = self.conns, []
        await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


async def _role_backends(db: Db, role: str) -> int:
    value: int = await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
        role,
    )
    return value


async def _exhaust(db: Db, hog: Hog, app_dsn: str) -> int:
    """Fill the database with the hog and cut every other connection of the role; returns how
    many were cut."""
    role = urlsplit(app_dsn).username
    pids = await hog.open(app_dsn, HOG)
    database = urlsplit(db.dsn).path.lstrip("/")
    await db.execute(f"ALTER DATABASE {database} CONNECTION LIMIT {HOG}")
    cut: int = await db.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE usename = $1 AND datname = current_database() AND pid <> all($2::int[])",
        role, pids,
    )  # fmt: skip
    return cut


def _refusals(log: str) -> int:
    return sum(REFUSED in line for line in log.splitlines())


@dataclass
class Window:
    """What the test saw while the database was full."""

    in_use: int = 0  # connections of the role just before
    cut: int = 0
    probes: dict[str, int] = field(default_factory=dict)
    refusals_logged: int = 0
    full_at: float = 0.0
    freed_at: float = 0.0


async def _full_window(
    db: Db, app_dsn: str, submitter: Submitter, workers: list[WorkerProcess]
) -> tuple[Window, list[UUID]]:
    """Fill the database, check what answers meanwhile, then free it. Returns the window and
    the jobs enqueued (by a superuser, exempt from the limit) while it was full."""
    window = Window(in_use=await _role_backends(db, urlsplit(app_dsn).username or ""))
    hog = Hog()
    try:
        window.cut = await _exhaust(db, hog, app_dsn)
        window.full_at = time.monotonic()
        refused_before = submitter.statuses[503]
        await wait_for(lambda: submitter.refused(refused_before + 3), timeout=30,
                       what="the API answers 503")  # fmt: skip
        await wait_for(lambda: all(_refusals(w.log()) for w in workers), timeout=30,
                       what="every worker refused a connection")  # fmt: skip
        during = await db.enqueue_many(
            "fault.record", [{"n": 1_000_000 + i} for i in range(DURING)], max_attempts=50
        )
        window.probes = await _probe(submitter.http, submitter.headers, submitter.accepted[0])
        await asyncio.sleep(WINDOW)  # the fault window: the database stays full
        # Nobody could claim them: the hog holds every connection there is.
        assert await db.count(during, "queued") == DURING
        assert all(w.alive() for w in workers), "a worker died while refused"
        window.refusals_logged = sum(_refusals(w.log()) for w in workers)
    finally:
        await hog.close()
    window.freed_at = time.monotonic()
    return window, during


async def test_connection_exhaustion_workers_back_off_api_answers_503(
    app_dsn: str, db: Db, procs: Processes, figures: Figures, tmp_path: Path
) -> None:
    options = WorkerOptions(
        concurrency=4, lease_seconds=10.0, heartbeat_interval=0.5,
        env={"JOBRUNNER_DATABASE_URL": app_dsn, "JOBRUNNER_POOL_MAX_SIZE": "4"},
    )  # fmt: skip
    workers = [procs.start_worker(f"w{i}", options) for i in range(WORKERS)]
    await wait_for(db.serves, timeout=60, what="a worker registered")  # else users get 422
    settings = Settings(
        database_url=app_dsn, data_dir=tmp_path, jwt_secret=SecretStr("s" * 48),
        tasks=["tests.support.fault_tasks"], pool_min_size=1, pool_max_size=4,
        submit_rate_per_minute=1_000_000, submit_burst=1_000_000,
    )  # fmt: skip
    await accounts.create_user(await db.conn(), username="alice", password=PASSWORD)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            login = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
            assert login.status_code == 200, login.text
            submitter = Submitter(http, {"Authorization": f"Bearer {login.json()['access_token']}"})
            submitting = asyncio.create_task(submitter.run())
            try:
                await wait_for(lambda: _done_at_least(db, submitter.accepted, 50), timeout=60,
                               what="jobs submitted and done")  # fmt: skip
                window, during = await _full_window(db, app_dsn, submitter, workers)
                accepted_at_free = len(submitter.accepted)
                freed = time.monotonic()
                await wait_for(
                    lambda: len(submitter.accepted) >= accepted_at_free + 20, timeout=60,
                    what="201s again",
                )  # fmt: skip
                api_back = time.monotonic() - freed
            finally:
                submitter.stop.set()
                await submitting
    await wait_for(lambda: db.all_done(during), timeout=60, what="jobs of the window done")
    window_done = time.monotonic() - window.freed_at
    ids = [*submitter.accepted, *during]
    await wait_for(lambda: db.all_done(ids), timeout=60, what="every job done")
    all_done = time.monotonic() - window.freed_at
    await wait_for(lambda: equals(db.unfinished(), 0), timeout=60, what="nothing left unfinished")

    assert all(w.alive() for w in workers), "a worker died instead of waiting for a connection"
    await assert_nothing_lost(db, ids)
    repeats = await assert_repeats_explained(db)
    assert set(submitter.statuses) <= {201, 503}, submitter.statuses  # never a 500
    assert submitter.odd_answers == []
    assert window.probes == {
        "GET /healthz": 200, "GET /readyz": 503, "POST /auth/token": 503,
        "GET /jobs/{id}": 503, "GET /history": 503,
    }  # fmt: skip
    # Backing off, not spinning: a loop retrying at once would log thousands a second.
    full_seconds = window.freed_at - window.full_at
    refusals_per_second = window.refusals_logged / WORKERS / full_seconds
    assert refusals_per_second < 200, f"{refusals_per_second:.0f} refusals/s per worker"
    figures(
        hog_connections=HOG, role_connections_before=window.in_use, connections_cut=window.cut,
        api_statuses={str(k): v for k, v in sorted(submitter.statuses.items())},
        full_seconds=full_seconds, refusals_logged_per_worker_second=refusals_per_second,
        api_201_after_free_seconds=api_back, window_jobs_done_after_free_seconds=window_done,
        all_done_after_free_seconds=all_done, jobs=len(ids), jobs_retried_after_cut=repeats,
    )  # fmt: skip


async def _probe(http: httpx.AsyncClient, headers: dict[str, str], job_id: UUID) -> dict[str, int]:
    """Other routes while no connection can be had: liveness needs none, the rest answer 503
    with a problem body (an odd body counts as 0)."""
    login = {"username": "alice", "password": PASSWORD}
    answers = {
        "GET /healthz": await http.get("/healthz"),
        "GET /readyz": await http.get("/readyz"),
        "POST /auth/token": await http.post("/auth/token", json=login),
        "GET /jobs/{id}": await http.get(f"/jobs/{job_id}", headers=headers),
        "GET /history": await http.get("/history", headers=headers),
    }
    statuses = {}
    for route, answer in answers.items():
        problem = answer.headers.get("content-type", "").startswith("application/problem+json")
        statuses[route] = answer.status_code if answer.is_success or problem else 0
    return statuses


async def _done_at_least(db: Db, ids: list[UUID], count: int) -> bool:
    return len(ids) >= count and await db.count(ids[:count], "succeeded") == count
