"""The fences of dependencies, each race played out in a fixed order on two connections: a
child made while its parent's outcome is written (either one first), two parents ending at
once, a parent retried by hand, and pruning beside a waiting child."""

from __future__ import annotations

import asyncio
from uuid import UUID

from jobrunner import client, dependencies
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.models import ClaimedJob, Job, JobState, Outcome, OutcomeKind
from jobrunner.webhooks import delivery_rows
from tests.support.waiting import wait_for

POLICY = queries.OutcomePolicy(
    backoff_base=0.01, backoff_cap=0.05, max_deferrals=20, delivery=delivery_rows()
)


async def _claim(conn: Conn, worker: str, limit: int = 1) -> list[ClaimedJob]:
    return await queries.job_claim(
        conn, queues=["default"], worker_id=worker, limit=limit, lease_seconds=30
    )


def _done(job: ClaimedJob, kind: OutcomeKind = OutcomeKind.SUCCEEDED) -> Outcome:
    result = "1" if kind is OutcomeKind.SUCCEEDED else None
    error = None if kind is OutcomeKind.SUCCEEDED else '{"error": "no"}'
    return Outcome(job.id, job.attempt, kind, result_json=result, error_json=error)


async def _blocked(pool: Pool, conn: Conn) -> bool:
    """Is `conn`'s backend waiting for a lock?"""
    pid = conn.get_server_pid()
    async with pool.acquire() as probe:
        waiting = await probe.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
    return bool(waiting)


async def _job(pool: Pool, job_id: UUID) -> Job:
    async with pool.acquire() as conn:
        return await client.get_job(job_id, conn=conn)


async def test_a_child_made_while_its_parent_ends_waits_for_the_row_and_is_seen(
    pool: Pool,
) -> None:
    """The child's insert holds the parent's row; the one-statement outcome write waits for
    it, then sees the parent has a child and leaves it; the transactional write settles it."""
    async with pool.acquire() as a, pool.acquire() as b:
        parent = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=a)
        [claimed] = await _claim(a, "w")
        making = b.transaction()
        await making.start()
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=b, depends_on=[parent])
        assert child.state is JobState.WAITING
        write = asyncio.create_task(
            queries.job_record_outcomes(a, [_done(claimed)], worker_id="w", policy=POLICY)
        )
        await wait_for(lambda: _blocked(pool, a), what="the outcome write waits for the row")
        await making.commit()
        assert await write == {}  # it has a child now: not for the one-statement write
        recorded = await dependencies.record_with_children(
            a, [_done(claimed)], worker_id="w", policy=POLICY
        )
    assert recorded[parent.id].state is JobState.SUCCEEDED
    parent_now, child_now = await _job(pool, parent.id), await _job(pool, child.id)
    assert child_now.state is JobState.QUEUED and child_now.pending_parents == 0
    assert child_now.run_at == parent_now.finished_at  # released in the parent's transaction


async def test_a_child_made_while_its_parent_ends_sees_the_end_when_the_outcome_is_first(
    pool: Pool,
) -> None:
    async with pool.acquire() as a, pool.acquire() as b:
        parent = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=a)
        [claimed] = await _claim(a, "w")
        writing = a.transaction()
        await writing.start()
        await queries.job_record_outcomes(a, [_done(claimed)], worker_id="w", policy=POLICY)
        making = asyncio.create_task(
            client.enqueue("test.add", {"a": 1, "b": 1}, conn=b, depends_on=[parent])
        )
        await wait_for(lambda: _blocked(pool, b), what="the child's insert waits for the row")
        await writing.commit()
        child = await making
    assert child.state is JobState.QUEUED and child.pending_parents == 0


async def test_two_parents_ending_at_once_release_their_child_once(pool: Pool) -> None:
    async with pool.acquire() as a, pool.acquire() as b:
        p1 = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=a)
        p2 = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=a)
        # Each parent gains a child first: their ends go through the transactional write.
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=a, depends_on=[p1, p2])
        [c1] = await _claim(a, "w1")
        [c2] = await _claim(b, "w2")
        first = a.transaction()
        await first.start()
        await dependencies.record_with_children(a, [_done(c1)], worker_id="w1", policy=POLICY)
        assert (await client.get_job(child.id, conn=a)).pending_parents == 1
        second = asyncio.create_task(
            dependencies.record_with_children(b, [_done(c2)], worker_id="w2", policy=POLICY)
        )
        await wait_for(lambda: _blocked(pool, b), what="the second settle waits for the child")
        await first.commit()
        await second
    child_now = await _job(pool, child.id)
    assert child_now.state is JobState.QUEUED and child_now.pending_parents == 0
    async with pool.acquire() as conn:
        unresolved = await conn.fetchval(
            "SELECT count(*) FROM jobrunner.job_dependencies WHERE resolved_at IS NULL"
        )
    assert unresolved == 0


async def test_a_parent_retried_by_hand_is_not_counted_twice(pool: Pool) -> None:
    async with pool.acquire() as conn:
        flaky = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, max_attempts=1)
        later = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=3600)
        child = await client.enqueue(
            "test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[flaky, later],
            on_parent_failure="run",
        )  # fmt: skip
        for _ in range(2):  # fails, is retried by hand, fails again
            [claimed] = await _claim(conn, "w")
            await dependencies.record_with_children(
                conn, [_done(claimed, OutcomeKind.FAILED)], worker_id="w", policy=POLICY
            )
            assert (await client.get_job(flaky.id, conn=conn)).state is JobState.FAILED
            now = await client.get_job(child.id, conn=conn)
            assert now.state is JobState.WAITING and now.pending_parents == 1
            await client.retry_job(flaky.id, conn=conn)


async def test_pruning_keeps_a_parent_while_a_child_waits_then_takes_both(pool: Pool) -> None:
    async with pool.acquire() as conn:
        done = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
        later = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=3600)
        [claimed] = await _claim(conn, "w")
        await queries.job_record_outcomes(conn, [_done(claimed)], worker_id="w", policy=POLICY)
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn,
                                     depends_on=[done, later])  # fmt: skip
        await conn.execute(
            "UPDATE jobrunner.jobs SET finished_at = now() - interval '1 hour',"
            " child_added_at = now() - interval '1 hour' WHERE id = $1",
            done.id,
        )

        async def prune() -> int:
            return await queries.job_prune(conn, state=JobState.SUCCEEDED, older_than=60, limit=100)

        assert await prune() == 0  # its child still waits, and will want its result
        await client.cancel_job(later.id, conn=conn)  # the child is cancelled with it
        assert (await client.get_job(child.id, conn=conn)).state is JobState.CANCELLED
        assert await prune() == 1
        await conn.execute(
            "UPDATE jobrunner.jobs SET finished_at = now() - interval '1 hour',"
            " child_added_at = child_added_at - interval '1 hour' WHERE id = ANY($1)",
            [later.id, child.id],
        )
        pruned = await queries.job_prune(conn, state=JobState.CANCELLED, older_than=60, limit=100)
        assert pruned == 2
        links = await conn.fetchval("SELECT count(*) FROM jobrunner.job_dependencies")
    assert links == 0


async def test_a_child_added_to_an_old_parent_restarts_its_retention(pool: Pool) -> None:
    async with pool.acquire() as conn:
        done = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
        [claimed] = await _claim(conn, "w")
        await queries.job_record_outcomes(conn, [_done(claimed)], worker_id="w", policy=POLICY)
        await conn.execute(
            "UPDATE jobrunner.jobs SET finished_at = now() - interval '1 hour' WHERE id = $1",
            done.id,
        )
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[done])
        assert child.state is JobState.QUEUED
        [run] = await _claim(conn, "w")
        await queries.job_record_outcomes(conn, [_done(run)], worker_id="w", policy=POLICY)
        # Both ended; the parent gained its child a moment ago: kept for its retention.
        assert await queries.job_prune(conn, state=JobState.SUCCEEDED, older_than=60,
                                       limit=100) == 0  # fmt: skip
