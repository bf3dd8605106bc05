from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.errors import InvalidArguments, JobrunnerError, UnknownTask
from jobrunner.models import JobState
from jobrunner.testing import assert_enqueued
from tests.support import tasks
from tests.support.waiting import rang_nothing


async def test_bad_arguments_raise_at_enqueue_and_leave_no_row(pool: Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(InvalidArguments) as caught:
            await client.enqueue("test.add", {"a": 1, "b": "not a number"}, conn=conn)
        assert caught.value.details[0]["loc"] == ("b",)
        with pytest.raises(InvalidArguments):
            await client.enqueue("test.add", {"a": 1}, conn=conn)
        with pytest.raises(InvalidArguments):
            await client.enqueue("test.add", {"a": 1, "b": 2, "c": 3}, conn=conn)
        with pytest.raises(UnknownTask):
            await client.enqueue("no.such.task", {}, conn=conn)
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_task_enqueue_uses_the_registered_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await tasks.fail_until.enqueue(conn=conn, key="k", succeed_on=1)
    assert job.task == "test.fail_until"
    assert job.max_attempts == 5
    assert job.args == {"key": "k", "succeed_on": 1}


async def test_a_rolled_back_enqueue_leaves_no_job_and_rings_no_doorbell(
    pool: Pool, rung: asyncio.Queue[str]
) -> None:
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="q-rolled")
        await tx.rollback()
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="q-committed")
        assert (
            await conn.fetchval("SELECT count(*) FROM jobrunner.jobs WHERE queue = 'q-rolled'") == 0
        )
    # Notifications arrive in commit order: the first one rung is the committed job's.
    assert await asyncio.wait_for(rung.get(), timeout=10) == "q-committed"


async def test_one_doorbell_per_queue_per_transaction(pool: Pool, rung: asyncio.Queue[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for _ in range(5):
            await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="bell")
    async with pool.acquire() as conn:
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="marker")
    assert await asyncio.wait_for(rung.get(), timeout=10) == "bell"
    assert await asyncio.wait_for(rung.get(), timeout=10) == "marker"


async def test_an_enqueue_in_its_own_transaction_rings_just_after_its_commit(
    pool: Pool, rung: asyncio.Queue[str]
) -> None:
    await client.configure(pool)
    doorbell = client.default_doorbell()
    assert doorbell is not None
    # No conn: the insert commits alone and rings as it commits (jobrunner.doorbell).
    job = await client.enqueue("test.add", {"a": 1, "b": 2}, queue="own-tx")
    assert await asyncio.wait_for(rung.get(), timeout=10) == "own-tx"
    # A conn in no transaction, with the caller's doorbell: the same.
    async with pool.acquire() as conn:
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, doorbell=doorbell,
                             queue="given-bell")  # fmt: skip
    assert await asyncio.wait_for(rung.get(), timeout=10) == "given-bell"
    # A scheduled job rings nobody.
    await client.enqueue("test.add", {"a": 1, "b": 2}, queue="later", delay=60)
    await client.enqueue("test.add", {"a": 1, "b": 2}, queue="marker")
    assert await asyncio.wait_for(rung.get(), timeout=10) == "marker"
    await doorbell.flush()
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("SELECT state::text FROM jobrunner.jobs WHERE id = $1", job.id)
            == "queued"
        )


async def test_close_rings_what_is_waiting_then_closes_the_pool(
    db_dsn: str, rung: asyncio.Queue[str]
) -> None:
    pool = await client.configure(db_dsn)
    await client.enqueue("test.add", {"a": 1, "b": 2}, queue="at-exit")
    await client.close()  # at once: the ring may not have gone out yet
    assert await asyncio.wait_for(rung.get(), timeout=10) == "at-exit"
    assert pool.is_closing()
    with pytest.raises(JobrunnerError):
        client.default_pool()


async def test_enqueue_many_names_the_job_whose_arguments_are_bad(pool: Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(InvalidArguments) as caught:
            await client.enqueue_many("test.add", [{"a": 1, "b": 2}, {"a": 1, "b": "x"}], conn=conn)
        assert caught.value.details[0]["loc"] == (1, "b")
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0
        assert await client.enqueue_many("test.add", [], conn=conn) == []


async def test_dedup_key_returns_the_live_job_then_allows_a_new_one(pool: Pool) -> None:
    async with pool.acquire() as conn:
        first = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, dedup_key="once")
        second = await client.enqueue("test.add", {"a": 5, "b": 5}, conn=conn, dedup_key="once")
        assert second.id == first.id
        await client.cancel_job(first.id, conn=conn)
        third = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, dedup_key="once")
        assert third.id != first.id


async def test_delay_and_run_at_schedule_in_database_time(pool: Pool) -> None:
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        delayed = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, delay=60)
        assert delayed.state is JobState.SCHEDULED
        assert delayed.run_at >= now + timedelta(seconds=59)
        past = await client.enqueue(
            "test.add", {"a": 1, "b": 2}, conn=conn, run_at=datetime(2000, 1, 1, tzinfo=UTC)
        )
        assert past.state is JobState.QUEUED
        with pytest.raises(InvalidArguments):
            await client.enqueue(
                "test.add", {"a": 1, "b": 2}, conn=conn, run_at=datetime(2030, 1, 1)
            )


async def test_enqueue_many_inserts_all_in_one_call(pool: Pool) -> None:
    async with pool.acquire() as conn:
        ids = await client.enqueue_many(
            "test.add", [{"a": i, "b": i} for i in range(2000)], conn=conn
        )
        assert len(set(ids)) == 2000
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 2000
        with pytest.raises(InvalidArguments):
            await client.enqueue_many("test.add", [{"a": 1, "b": 1}, {"a": "x", "b": 1}], conn=conn)
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 2000


async def test_ids_are_time_ordered(pool: Pool) -> None:
    async with pool.acquire() as conn:
        ids = [
            (await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)).id for _ in range(20)
        ]
    # Version 7: the first 48 bits are the creation millisecond.
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis)
    assert all(i.version == 7 for i in ids)


async def test_assert_enqueued_finds_a_waiting_job(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await client.enqueue("test.add", {"a": 7, "b": 8}, conn=conn)
        job = await assert_enqueued(conn, task="test.add", args={"a": 7})
        assert job.args == {"a": 7, "b": 8}
        with pytest.raises(AssertionError):
            await assert_enqueued(conn, task="test.add", args={"a": 9})


async def test_check_constraints_keep_rows_honest(pool: Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO jobrunner.jobs (task, state) VALUES ('x', 'succeeded')")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO jobrunner.jobs (task, state) VALUES ('x', 'running')")


async def test_task_enqueue_many_returns_ids_in_order(pool: Pool) -> None:
    async with pool.acquire() as conn:
        ids = await tasks.add.enqueue_many([{"a": i, "b": 0} for i in range(3)], conn=conn)
        rows = await conn.fetch(
            "SELECT args->>'a' AS a FROM jobrunner.jobs WHERE id = ANY($1) ORDER BY id", ids
        )
    assert len(ids) == 3 and sorted(r["a"] for r in rows) == ["0", "1", "2"]


async def test_enqueue_many_ids_follow_the_given_order_and_the_database_clock(
    pool: Pool,
) -> None:
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT clock_timestamp()")
        ids = await tasks.add.enqueue_many([{"a": i, "b": 0} for i in range(500)], conn=conn)
        after = await conn.fetchval("SELECT clock_timestamp()")
        in_id_order = await conn.fetch("SELECT args->>'a' AS a FROM jobrunner.jobs ORDER BY id")
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    assert [r["a"] for r in in_id_order] == [str(i) for i in range(500)]
    millis = {i.int >> 80 for i in ids}
    assert int(before.timestamp() * 1000) <= min(millis) <= max(millis)
    assert max(millis) <= int(after.timestamp() * 1000)


async def test_enqueue_many_delayed_is_scheduled_in_database_time_and_rings_nothing(
    pool: Pool, rung: asyncio.Queue[str]
) -> None:
    async with pool.acquire() as conn:
        now = await conn.fetchval("SELECT now()")
        ids = await tasks.add.enqueue_many(
            [{"a": 1, "b": 2}] * 3, conn=conn, delay=60, queue="q-later"
        )
        rows = await conn.fetch("SELECT state, run_at FROM jobrunner.jobs WHERE id = ANY($1)", ids)
        await tasks.add.enqueue_many([{"a": 1, "b": 2}], conn=conn, queue="q-now")
    assert {r["state"] for r in rows} == {"scheduled"}
    assert all(r["run_at"] >= now + timedelta(seconds=59) for r in rows)
    assert await asyncio.wait_for(rung.get(), timeout=10) == "q-now"
    assert await rang_nothing(pool, rung)


async def test_a_refused_enqueue_many_leaves_no_row_no_ring_and_the_callers_transaction(
    pool: Pool, rung: asyncio.Queue[str]
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            kept = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="q-kept")
            # jsonb refuses a NUL character, so the COPY fails on the last row.
            rows = [{"key": "fine", "succeed_on": 1}] * 100 + [{"key": "\x00", "succeed_on": 1}]
            with pytest.raises(asyncpg.UntranslatableCharacterError):
                await tasks.fail_until.enqueue_many(rows, conn=conn, queue="q-refused")
        assert await conn.fetchval("SELECT array_agg(id) FROM jobrunner.jobs") == [kept.id]
        await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, queue="q-after")
    assert await asyncio.wait_for(rung.get(), timeout=10) == "q-kept"
    assert await asyncio.wait_for(rung.get(), timeout=10) == "q-after"


async def test_enqueue_many_takes_run_at_and_timeout_as_enqueue_does(pool: Pool) -> None:
    async with pool.acquire() as conn:
        at = await conn.fetchval("SELECT date_trunc('second', now()) + interval '1 hour'")
        later = await tasks.add.enqueue_many(
            [{"a": 1, "b": 2}] * 2, conn=conn, run_at=at, timeout=7.5, max_attempts=4
        )
        past = await tasks.add.enqueue_many(
            [{"a": 1, "b": 2}], conn=conn, run_at=datetime(2000, 1, 1, tzinfo=UTC)
        )
        rows = await conn.fetch(
            "SELECT id, state, run_at, timeout, max_attempts FROM jobrunner.jobs ORDER BY id"
        )
        for bad in ({"run_at": at, "delay": 5}, {"run_at": datetime(2030, 1, 1)}):
            with pytest.raises(InvalidArguments):
                await tasks.add.enqueue_many([{"a": 1, "b": 2}], conn=conn, **bad)
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 3
    assert [r["id"] for r in rows] == later + past
    assert [(r["state"], r["run_at"]) for r in rows[:2]] == [("scheduled", at)] * 2
    assert {(r["timeout"], r["max_attempts"]) for r in rows[:2]} == {(timedelta(seconds=7.5), 4)}
    # A start in the past is now: queued, as enqueue does.
    assert rows[2]["state"] == "queued" and rows[2]["run_at"] > at - timedelta(hours=2)
