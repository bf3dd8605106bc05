"""The worker registry: a worker's own row (registered, kept seen, stopped), what is read of
the rows (live workers, their running jobs, queues nobody serves), and the pruning."""

from __future__ import annotations

import os
import socket

import asyncpg
import pytest

from jobrunner import client, fleet
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.models import WorkerInfo
from jobrunner.settings import Settings
from jobrunner.worker.maintenance import Maintenance
from jobrunner.worker.worker import Worker
from tests.support.rows import insert_worker
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker

SEEN_TIMEOUT = 60.0


async def _worker(pool: Pool, worker_id: str) -> WorkerInfo | None:
    async with pool.acquire() as conn:
        found = await fleet.list_workers(conn, seen_timeout=SEEN_TIMEOUT)
    return next((w for w in found if w.id == worker_id), None)


async def test_a_burst_worker_registers_before_claiming_and_is_stopped_after(
    settings: Settings, db_dsn: str, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="alpha")
    worker = Worker(settings, dsn=db_dsn, queues=["alpha", "beta"], worker_id="w-burst")
    await worker.run(burst=True)
    row = await _worker(pool, "w-burst")
    assert row is not None
    assert (row.host, row.pid, row.queues) == (socket.gethostname(), os.getpid(), ["alpha", "beta"])
    assert "test.add" in row.tasks and row.concurrency == settings.concurrency
    assert row.stopped_at is not None and not row.live and row.running == 0
    assert row.started_at <= row.last_seen_at == row.stopped_at
    async with pool.acquire() as conn:
        ran = await client.get_job(job.id, conn=conn)
        # Registered before its first claim: the row is older than the job's start.
        assert ran.started_at is not None and row.started_at <= ran.started_at


async def test_a_running_worker_is_seen_again_and_again_until_it_stops(
    start_worker: StartWorker, pool: Pool
) -> None:
    worker = await start_worker(worker_id="w-live", settings={"worker_seen_interval": 0.05})
    await wait_for(worker.presence.registered.is_set, what="registered")
    first = await _worker(pool, "w-live")
    assert first is not None and first.live and first.stopped_at is None

    async def seen_later() -> bool:
        now = await _worker(pool, "w-live")
        return now is not None and now.last_seen_at > first.last_seen_at

    await wait_for(seen_later, what="last_seen_at moved on")
    worker.request_stop()

    async def stopped() -> WorkerInfo | None:
        row = await _worker(pool, "w-live")
        return row if row is not None and row.stopped_at is not None else None

    row = await wait_for(stopped, what="stopped_at set")
    assert not row.live and row.started_at == first.started_at


async def test_a_worker_whose_row_was_deleted_writes_it_again(
    start_worker: StartWorker, pool: Pool
) -> None:
    worker = await start_worker(worker_id="w-pruned", settings={"worker_seen_interval": 0.05})
    await wait_for(worker.presence.registered.is_set, what="registered")
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM jobrunner.workers WHERE id = 'w-pruned'")
    row = await wait_for(lambda: _worker(pool, "w-pruned"), what="the row written again")
    assert row.live and row.queues == worker.queues


async def test_the_list_counts_each_workers_running_jobs(
    start_worker: StartWorker, pool: Pool
) -> None:
    await start_worker(worker_id="w-busy")
    async with pool.acquire() as conn:
        jobs = [await client.enqueue("test.sleep", {"seconds": 60}, conn=conn) for _ in range(2)]

    async def running_two() -> WorkerInfo | None:
        row = await _worker(pool, "w-busy")
        return row if row is not None and row.running == 2 else None

    await wait_for(running_two, what="two running jobs counted")
    async with pool.acquire() as conn:
        for job in jobs:
            await client.cancel_job(job.id, conn=conn)


async def test_live_means_not_stopped_and_seen_within_the_timeout(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_worker(conn, "fresh", queues=["a"], seen_ago=1)
        await insert_worker(conn, "silent", queues=["b"], seen_ago=SEEN_TIMEOUT + 5)
        await insert_worker(conn, "stopped", queues=["c"], seen_ago=1, stopped=True)
        found = await fleet.list_workers(conn, seen_timeout=SEEN_TIMEOUT)
    assert [(w.id, w.live) for w in found] == [
        ("fresh", True),
        ("stopped", False),
        ("silent", False),
    ]
    assert fleet.served_queues(found) == {"a"}


async def test_queues_with_queued_jobs_and_no_live_worker_are_unserved(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_worker(conn, "live", queues=["served"])
        await insert_worker(conn, "gone", queues=["orphan"], seen_ago=SEEN_TIMEOUT + 5)
        for queue in ("served", "orphan", "orphan", "nobody"):
            await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, queue=queue)
        await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, queue="later", delay=3600)
        assert await queries.job_queues_waiting(conn, cap=10) == {
            "nobody": 1,
            "orphan": 2,
            "served": 1,
        }
        workers = await fleet.list_workers(conn, seen_timeout=SEEN_TIMEOUT)
        assert await fleet.unserved_queues(conn, workers) == {"nobody": 1, "orphan": 2}
        assert await queries.job_queues_waiting(conn, cap=1, max_queues=2) == {
            "nobody": 1,
            "orphan": 1,
        }
        assert await queries.job_queues_waiting(conn, cap=10, skip=["served", "nobody"]) == {
            "orphan": 2
        }


async def test_waiting_queues_are_found_by_probing_the_claim_index(db_dsn: str) -> None:
    """doctor, the dashboard and `jobrunner up` read them: beside a big table the read must
    cost a probe per queue (and the capped count), not a scan."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs (queue, task, state, run_at, finished_at)
            SELECT 'q' || (n % 3), 'noop', 'succeeded', now(), now()
            FROM generate_series(1, 200000) AS n;
            INSERT INTO jobrunner.jobs (queue, task, state, run_at)
            SELECT 'q' || (n % 3), 'noop', 'queued', now() FROM generate_series(1, 3000) AS n;
            ANALYZE jobrunner.jobs;
            """
        )
        rows = await conn.fetch(
            "EXPLAIN " + queries.QUERIES["job_queues_waiting"], 100, 1000, ["q9"]
        )
        text = "\n".join(r[0] for r in rows)
        assert "jobs_claim_idx" in text, text
        assert "Seq Scan on jobs" not in text, text
        waiting = await queries.job_queues_waiting(conn, cap=100)
        assert waiting == {"q0": 100, "q1": 100, "q2": 100}
    finally:
        await conn.close()


async def test_maintenance_prunes_workers_gone_longer_than_the_retention(
    pool: Pool, settings: Settings
) -> None:
    week = settings.worker_retention
    async with pool.acquire() as conn:
        await insert_worker(conn, "old-stopped", queues=["a"], seen_ago=week + 60, stopped=True)
        await insert_worker(conn, "old-vanished", queues=["a"], seen_ago=week + 60)
        await insert_worker(conn, "recent-stopped", queues=["a"], seen_ago=60, stopped=True)
        await insert_worker(conn, "live", queues=["a"])
    result = await Maintenance(pool, settings).run_once()
    assert result is not None and result.workers_pruned == 2
    async with pool.acquire() as conn:
        left = await fleet.list_workers(conn, seen_timeout=SEEN_TIMEOUT)
    assert {w.id for w in left} == {"recent-stopped", "live"}


def test_a_worker_must_be_seen_more_often_than_it_is_counted_gone() -> None:
    with pytest.raises(ValueError, match="worker_seen_interval"):
        Settings(worker_seen_interval=60, worker_seen_timeout=60)
    with pytest.raises(ValueError, match="worker_seen_interval"):
        Settings(worker_seen_interval=30, worker_seen_timeout=60, served_queue_window=20)
