from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID

import pytest

from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.models import Job
from jobrunner.settings import Settings
from jobrunner.worker.worker import Worker
from tests.support.workers import StartWorker


@pytest.fixture
async def start_worker(settings: Settings, db_dsn: str, pool: Pool) -> AsyncIterator[StartWorker]:
    """Start in-process workers against the test database; all are stopped at teardown."""
    await client.configure(pool)
    running: list[tuple[Worker, asyncio.Task[Any]]] = []

    async def start(**overrides: Any) -> Worker:
        worker_settings = settings.model_copy(update=overrides.pop("settings", {}))
        worker = Worker(worker_settings, dsn=db_dsn, **overrides)
        running.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, _ in running:
        worker.request_stop()
        worker.request_stop()
    await asyncio.gather(*(task for _, task in running))


@pytest.fixture
def job_state(pool: Pool) -> Callable[[UUID], Awaitable[Job]]:
    async def read(job_id: UUID) -> Job:
        async with pool.acquire() as conn:
            return await client.get_job(job_id, conn=conn)

    return read
