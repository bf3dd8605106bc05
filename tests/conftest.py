from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jobrunner.db.pool import Pool, connect, create_pool
from jobrunner.logs import configure_logging
from jobrunner.registry import registered_tasks
from jobrunner.settings import Settings
from jobrunner.task_modules import load_task_modules
from tests.support.database import (
    Server,
    create_database,
    create_template,
    drop_database,
    find_server,
)
from tests.support.rows import insert_worker

configure_logging("warning", "console")
load_task_modules(["tests.support.tasks"])


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with find_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    # One template per xdist worker: each test then copies it, migrated, in milliseconds.
    # The pid keeps two test runs sharing one server (JOBRUNNER_TEST_DATABASE_URL) apart.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"jobrunner_template_{worker}_{os.getpid()}"
    create_template(pg_server, name)
    yield name
    drop_database(pg_server, name)


@pytest.fixture
def db_dsn(pg_server: Server, template_db: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = create_database(pg_server, template_db)
    yield pg_server.dsn_for(name)
    drop_database(pg_server, name)


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[Pool]:
    pool = await create_pool(db_dsn, role="test", min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture
def settings(db_dsn: str, tmp_path: Path) -> Settings:
    """Millisecond timings, so behaviour that takes seconds in production takes moments here."""
    return Settings(
        database_url=db_dsn,
        data_dir=tmp_path,
        poll_interval=0.05,
        lease_seconds=2.0,
        heartbeat_interval=0.2,
        drain_timeout=2.0,
        maintenance_interval=0.05,
        backoff_base=0.01,
        backoff_cap=0.05,
        reconnect_max_delay=0.2,
        concurrency=10,
        dev_mode=True,
    )


# Queues tests submit to besides their tasks' own (JobCreate's `queue`).
AD_HOC_QUEUES = ("default", "other", "reports", "slow")


@pytest.fixture
async def served_queues(pool: Pool) -> frozenset[str]:
    """A worker's row in the registry serving every task's queue and AD_HOC_QUEUES, as if a
    worker ran: the API refuses users' submissions to a queue no worker serves (api.served),
    and most API tests submit with no worker running. Tests of the refusal use another queue."""
    queues = frozenset({t.queue for t in registered_tasks()} | set(AD_HOC_QUEUES))
    async with pool.acquire() as conn:
        await insert_worker(
            conn,
            "tests:served",
            queues=sorted(queues),
            tasks=[t.name for t in registered_tasks()],
        )
    return queues


@pytest.fixture
async def rung(db_dsn: str) -> AsyncIterator[asyncio.Queue[str]]:
    """The queue names rung on the doorbell channel, in the order their commits landed, as
    workers hear them. To show that something did not ring, ring `barrier` yourself and see
    that it comes first (tests.support.waiting.rang_nothing)."""
    listener = await connect(db_dsn, role="test-listener")
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("jobrunner_jobs", lambda *a: heard.put_nowait(a[3]))
    try:
        yield heard
    finally:
        await listener.close()
