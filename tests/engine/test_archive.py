"""The archive (migration 0020): finished jobs leave jobs for the partitioned job_history
JOBRUNNER_ARCHIVE_AFTER after they finish; a live job never does; a retry or a cancel
racing the archiver loses nothing; partitions are made ahead and dropped whole once past
retention; a child still gets an archived parent's result; the claim never reads the
archive, and a job is read by id with one index probe per partition."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from uuid import UUID

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.db.queries import QUERIES
from jobrunner.models import JobState
from jobrunner.settings import Settings
from jobrunner.worker.maintenance import Maintenance
from tests.engine.test_dependencies import ReadJob, _ended
from tests.support.archive import archive_now, archived_count, insert_finished_job, where
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker

LIVE = ("queued", "scheduled", "running", "retrying", "waiting")


async def test_history_has_the_columns_of_jobs_in_the_same_order(pool: Pool) -> None:
    read = """
        SELECT array_agg(column_name::text || ' ' || data_type || coalesce(' ' || domain_name, '')
                         ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_schema = 'jobrunner' AND table_name = $1"""
    async with pool.acquire() as conn:
        jobs = await conn.fetchval(read, "jobs")
        assert await conn.fetchval(read, "job_history") == jobs
        assert await conn.fetchval(read, "all_jobs") == jobs


async def test_the_archiver_moves_finished_jobs_past_archive_after_and_never_a_live_one(
    pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, state, attempt, started_at, finished_at,
                                        worker_id, lease_expires_at, run_at)
            SELECT 'noop', s::jobrunner.job_state, 1, now() - interval '2 hours',
                   CASE WHEN s IN ('succeeded', 'failed', 'cancelled')
                        THEN now() - interval '1 hour' END,
                   CASE WHEN s = 'running' THEN 'w' END,
                   CASE WHEN s = 'running' THEN now() + interval '1 hour' END,
                   CASE WHEN s IN ('scheduled', 'retrying') THEN now() + interval '1 hour'
                        ELSE now() END
            FROM unnest(ARRAY['queued', 'scheduled', 'running', 'retrying', 'waiting',
                              'succeeded', 'failed', 'cancelled']) AS s,
                 generate_series(1, 3)""")
        # finished just now: younger than archive_after, so it stays
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, state, attempt, finished_at)
            VALUES ('noop', 'succeeded', 1, now())""")
    tuned = settings.model_copy(update={"archive_after": 600.0, "archive_batch": 4})
    result = await Maintenance(pool, tuned).run_once()
    assert result is not None and result.archived == 9  # three batches, the last short
    async with pool.acquire() as conn:
        kept = await conn.fetch(
            "SELECT state::text, count(*) FROM jobrunner.jobs GROUP BY 1 ORDER BY 1"
        )
        moved = await conn.fetch(
            "SELECT state::text, count(*) FROM jobrunner.job_history GROUP BY 1 ORDER BY 1"
        )
        assert {r[0]: r[1] for r in kept} == {**dict.fromkeys(LIVE, 3), "succeeded": 1}
        assert {r[0]: r[1] for r in moved} == {"cancelled": 3, "failed": 3, "succeeded": 3}
        # the history view shows the archived jobs and the recent one alike
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.history") == 10


async def test_retries_and_cancels_racing_the_archiver_lose_nothing(
    pool: Pool, settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, state, attempt, started_at, finished_at)
            SELECT 'noop', 'failed', 1, now() - interval '1 minute', now() - interval '1 minute'
            FROM generate_series(1, 150)""")
        await conn.execute(
            "INSERT INTO jobrunner.jobs (task) SELECT 'noop' FROM generate_series(1, 150)"
        )
        failed = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM jobrunner.jobs WHERE state = 'failed' ORDER BY id"
            )
        ]
        queued = [
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM jobrunner.jobs WHERE state = 'queued' ORDER BY id"
            )
        ]
    tuned = settings.model_copy(update={"archive_after": 0.001, "archive_batch": 7})
    keeper = Maintenance(pool, tuned)
    done = asyncio.Event()

    async def archiver() -> int:
        moved = 0
        while not done.is_set():
            result = await keeper.run_once()
            moved += result.archived if result is not None else 0
            await asyncio.sleep(0)
        return moved

    async def retry(job_id: UUID) -> None:
        async with pool.acquire() as conn:
            await client.retry_job(job_id, conn=conn)

    async def cancel(job_id: UUID) -> None:
        async with pool.acquire() as conn:
            await client.cancel_job(job_id, conn=conn)

    running = asyncio.create_task(archiver())
    try:
        await asyncio.gather(*(retry(i) for i in failed), *(cancel(i) for i in queued))
    finally:
        done.set()
        assert await running > 0
    async with pool.acquire() as conn:
        for job_id in failed:  # each retried exactly once, back in the live table
            assert await where(conn, job_id) == ["jobs"]
        states = await conn.fetch(
            "SELECT id, state::text, max_attempts FROM jobrunner.all_jobs WHERE id = ANY($1)",
            [*failed, *queued],
        )
        by_id = {r["id"]: r["state"] for r in states}
        assert len(states) == 300 and set(by_id) == {*failed, *queued}
        assert {by_id[i] for i in failed} == {"queued"}
        assert {by_id[i] for i in queued} == {"cancelled"}


async def test_partitions_are_made_ahead_and_dropped_whole_past_retention(
    pool: Pool, settings: Settings
) -> None:
    keeper = Maintenance(pool, settings.model_copy(update={"retention_failed": 2 * 86400.0}))
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        # a month ago, by the database's clock: the partitions of that time, and jobs in them
        assert await keeper.keep_partitions(conn, now=now - timedelta(days=30)) == (11, 0)
        await conn.execute("""
            INSERT INTO jobrunner.job_history (task, state, attempt, finished_at, created_at,
                                               child_added_at)
            SELECT 'noop', 'succeeded', 1, now() - interval '30 days' + g * interval '1 hour',
                   now() - interval '31 days', now() - interval '30 days'
            FROM generate_series(1, 48) AS g""")
        old = await conn.fetchval("SELECT min(id::text)::uuid FROM jobrunner.job_history")
        await conn.execute(
            "INSERT INTO jobrunner.job_dependencies (parent_id, child_id, resolved_at)"
            " VALUES ($1, gen_random_uuid(), now())",
            old,
        )
        assert await keeper.keep_partitions(conn) == (11, 11)
        assert await archived_count(conn) == 0
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.job_dependencies") == 0
        names = [name for name, _ in await queries.job_history_partitions_list(conn)]
        # one a day from the longest retention (7 days) back to three days ahead, in UTC
        assert len(names) == 1 + 7 + 1 + 3, names
        ahead = (now + timedelta(days=3)).astimezone(UTC)
        assert f"job_history_p{ahead:%Y%m%d}_0000" in names and "job_history_default" in names
        # a second call makes and drops nothing
        assert await keeper.keep_partitions(conn) == (0, 0)


async def test_a_state_kept_shorter_is_deleted_from_the_archive_in_batches(
    pool: Pool, settings: Settings
) -> None:
    tuned = settings.model_copy(update={"retention_failed": 3600.0, "prune_batch": 10})
    async with pool.acquire() as conn:
        await Maintenance(pool, tuned).keep_partitions(conn)
        await conn.execute("""
            INSERT INTO jobrunner.job_history (task, state, attempt, finished_at)
            SELECT 'noop', s::jobrunner.job_state, 1, now() - interval '2 hours'
            FROM unnest(ARRAY['failed', 'succeeded']) AS s, generate_series(1, 25)""")
    result = await Maintenance(pool, tuned).run_once()
    assert result is not None and result.history_pruned == 25
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM jobrunner.job_history WHERE state = 'succeeded'"
            )
            == 25
        )


async def test_a_child_of_an_archived_parent_gets_its_result(
    pool: Pool, settings: Settings, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        parent = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        waiting = await client.enqueue("test.add", {"a": 0, "b": 0}, conn=conn)
        early = await client.enqueue("test.parents", {}, conn=conn, depends_on=[waiting])
    await start_worker()
    await _ended(job_state, parent.id, waiting.id, early.id)
    assert await archive_now(pool, settings) == 3
    async with pool.acquire() as conn:
        assert await where(conn, parent.id) == ["job_history"]
        # a new child of an archived job brings it back to jobs, where it is marked
        child = await client.enqueue("test.parents", {}, conn=conn, depends_on=[parent])
        assert await where(conn, parent.id) == ["jobs"]
    assert child.state is JobState.QUEUED
    (done,) = await _ended(job_state, child.id)
    assert done.result == [["test.add", "succeeded", 3, None]]
    # a parent is kept while a child is unfinished, or gained one within archive_after
    async with pool.acquire() as conn:
        await conn.execute(
            "UPDATE jobrunner.jobs SET child_added_at = now() - interval '1 hour' WHERE id = $1",
            parent.id,
        )
    await archive_now(pool, settings)
    async with pool.acquire() as conn:
        assert await where(conn, parent.id) == ["job_history"]
        assert await where(conn, child.id) == ["job_history"]
        # the history view keeps the links; the dependency rows stay for the job's page
        assert await conn.fetchval(
            "SELECT has_children FROM jobrunner.history WHERE id = $1", parent.id
        )
        parents = await conn.fetchval(
            "SELECT parents FROM jobrunner.history WHERE id = $1", child.id
        )
        assert parents == [str(parent.id)]
        links = await client.job_links(await client.get_job(parent.id, conn=conn), conn=conn)
        assert [c.id for c in links.children] == [child.id]


async def test_the_claim_never_reads_the_archive_and_a_read_by_id_probes_each_partition(
    pool: Pool, settings: Settings
) -> None:
    for name in ("job_claim", "job_claim_from_positions", "job_record_outcomes", "job_heartbeat"):
        sql = QUERIES[name]
        assert "job_history" not in sql and "all_jobs" not in sql, name
    async with pool.acquire() as conn:
        await Maintenance(pool, settings).keep_partitions(conn)
        await conn.execute("""
            INSERT INTO jobrunner.job_history (task, state, attempt, finished_at)
            SELECT 'noop', 'succeeded', 1, now() - g * interval '1 minute'
            FROM generate_series(1, 20000) AS g;
            ANALYZE jobrunner.job_history""")
        job_id = await conn.fetchval("SELECT id FROM jobrunner.job_history LIMIT 1")
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) " + QUERIES["job_get_visible"], job_id, None, True
        )
        nodes: list[dict[str, object]] = []

        def walk(node: dict[str, object]) -> None:
            nodes.append(node)
            for child in node.get("Plans", []):  # type: ignore[attr-defined]
                walk(child)

        walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
        scans = [n for n in nodes if "Relation Name" in n]
        filled = [n for n in scans if str(n["Relation Name"]).startswith("job_history_p2")]
        kinds = {str(n["Relation Name"]): n["Node Type"] for n in filled}
        scanned = [name for name, kind in kinds.items() if kind == "Seq Scan"]
        pages = await conn.fetchval(
            "SELECT coalesce(max(relpages), 0) FROM pg_class"
            " WHERE relnamespace = 'jobrunner'::regnamespace AND relname = ANY($1)",
            scanned,
        )
        # An index probe in each partition, but the planner may read a partition of a few
        # pages whole: the range's two edge days are only partly filled, by how much depends
        # on the hour the test runs (3 pages were seen).
        assert len(kinds) > 5 and pages <= 8, kinds
        found = await client.get_job(job_id, conn=conn)
        assert found.state is JobState.SUCCEEDED


async def test_the_archiver_walks_on_from_where_it_reached_behind_a_held_snapshot(
    pool: Pool, settings: Settings
) -> None:
    """Behind a snapshot held elsewhere, the index entries of moved jobs stay in
    jobs_finished_idx; a tick walks on from where the last move reached (less
    ARCHIVE_SLACK), not over all of them again, and a full pass (a fresh instance, or every
    ARCHIVE_FULL_PASS seconds) still finds a job finished before that point."""
    ticks = Maintenance(pool, settings.model_copy(update={"archive_after": 0.001}))
    async with pool.acquire() as holder, pool.acquire() as conn:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await holder.fetchval("SELECT count(*) FROM jobrunner.jobs")  # the snapshot is taken
        try:
            # 5,000 jobs finished over 50 s, ten minutes ago
            await conn.execute("""
                INSERT INTO jobrunner.jobs (task, state, attempt, run_at, finished_at)
                SELECT 'noop', 'succeeded', 1, now() - interval '1 hour',
                       now() - interval '10 minutes' + g * interval '10 ms'
                FROM generate_series(1, 5000) AS g""")
            assert (await wait_for(ticks.run_once, what="the lock")).archived == 5000
            straggler = await insert_finished_job(conn, finished_ago=3600)  # before the point
            fresh = await insert_finished_job(conn, finished_ago=1)
            positioned = await _archive_buffers(conn, since=ticks._archive_from)
            whole = await _archive_buffers(conn, since=None)
            assert positioned * 3 < whole, (positioned, whole)
            assert (await wait_for(ticks.run_once, what="the lock")).archived == 1
            assert await where(conn, fresh) == ["job_history"]
            assert await where(conn, straggler) == ["jobs"]
        finally:
            await holder.execute("ROLLBACK")
    assert await archive_now(pool, settings) == 1  # a full pass
    async with pool.acquire() as conn:
        assert await where(conn, straggler) == ["job_history"]


async def _archive_buffers(conn: Conn, *, since: datetime | None) -> int:
    """Buffers the archiver statement's delete from jobs reads, planned as on a worker's
    connections (jobrunner.db.pool: no bitmap scans); the statement is rolled back."""
    explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + QUERIES["job_archive"]
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        plan = [row[0] for row in await conn.fetch(explain, 0.001, 5000, since)]
    finally:
        await transaction.rollback()
    deleting = next(i for i, line in enumerate(plan) if "Delete on jobs" in line)
    assert "jobs_pkey on jobs " in "\n".join(plan[deleting:]), plan  # found by key only
    # The delete's own (its walk and key lookups; the insert into job_history's first use in
    # a session reads the catalog, and is no part of the walk)
    buffers = next(line for line in plan[deleting:] if "Buffers:" in line)
    return sum(int(n) for n in re.findall(r"(?:hit|read)=(\d+)", buffers))
