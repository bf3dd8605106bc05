"""Plain submissions written together (api.submit_batch.SubmitBatcher): one statement for
those waiting, yet each submission gets its own job or its own error."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from jobrunner.api.submit_batch import SubmitBatcher
from jobrunner.auth import InvalidToken
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.doorbell import Doorbell
from jobrunner.job_rows import JobRows, make_rows
from jobrunner.models import Job
from jobrunner.options import JobOptions
from tests.support.api import Account, Login
from tests.support.waiting import rang_nothing


def _session_of(app: FastAPI, account: Account) -> UUID:
    token = account.headers["Authorization"].removeprefix("Bearer ")
    session_id: UUID = app.state.codec.decode(token, "access").sid
    return session_id


def _job(owner: str, message: Any = None) -> JobRows:
    return make_rows("echo", [{"message": message}], JobOptions(owner=owner))


@pytest.fixture
async def alice(login: Login) -> Account:
    return await login("alice")


@pytest.fixture
def one_writer(pool: Pool) -> SubmitBatcher:
    """A batcher with one write in flight at most: whatever waits meanwhile goes together."""
    return SubmitBatcher(pool, None, writers=1)


async def _transactions_of(pool: Pool, jobs: list[Job]) -> int:
    """How many transactions wrote these jobs (rows written together share their xmin)."""
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM jobrunner.jobs WHERE id = ANY($1)",
            [job.id for job in jobs],
        )
    return count


async def test_waiting_submissions_share_one_statement_and_each_gets_its_own_job(
    app: FastAPI, alice: Account, one_writer: SubmitBatcher, pool: Pool
) -> None:
    session = _session_of(app, alice)
    jobs = await asyncio.gather(*(one_writer.submit(session, _job("alice", n)) for n in range(50)))
    assert [job.args for job in jobs] == [{"message": n} for n in range(50)]
    assert {job.owner for job in jobs} == {"alice"}
    assert len({job.id for job in jobs}) == 50
    assert await _transactions_of(pool, jobs) == 1


async def test_a_submission_whose_session_ended_fails_alone(
    app: FastAPI,
    alice: Account,
    login: Login,
    one_writer: SubmitBatcher,
    pool: Pool,
    http: httpx.AsyncClient,
) -> None:
    bob = await login("bob")
    assert (await http.post("/auth/logout", headers=bob.headers)).status_code == 204
    answers = await asyncio.gather(
        one_writer.submit(_session_of(app, alice), _job("alice", "alice")),
        one_writer.submit(_session_of(app, bob), _job("bob", "bob")),
        # A live session of someone else is no session of alice's.
        one_writer.submit(_session_of(app, alice), _job("bob", "not bob")),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Job) and answers[0].args == {"message": "alice"}
    assert isinstance(answers[1], InvalidToken) and isinstance(answers[2], InvalidToken)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 1


async def test_only_sessions_not_checked_on_the_way_are_checked_with_the_batch(
    app: FastAPI,
    alice: Account,
    login: Login,
    one_writer: SubmitBatcher,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []
    session_live_many = queries.session_live_many

    async def counted(conn: Any, pairs: list[tuple[UUID, str]]) -> list[bool]:
        asked.append(len(pairs))
        return await session_live_many(conn, pairs)

    monkeypatch.setattr(queries, "session_live_many", counted)
    session = _session_of(app, alice)
    checked = await asyncio.gather(
        *(one_writer.submit(session, _job("alice", n), session_checked=True) for n in range(5))
    )
    assert len(checked) == 5 and asked == []  # no statement but the insert
    bob = await login("bob")
    assert (await http.post("/auth/logout", headers=bob.headers)).status_code == 204
    answers = await asyncio.gather(
        one_writer.submit(session, _job("alice", "checked"), session_checked=True),
        one_writer.submit(_session_of(app, bob), _job("bob", "ended")),
        one_writer.submit(session, _job("alice", "unchecked")),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Job) and isinstance(answers[2], Job)
    assert isinstance(answers[1], InvalidToken)
    assert sum(asked) == 2  # the two unchecked ones, whatever the batches


async def test_a_row_the_database_refuses_fails_only_its_own_submission(
    app: FastAPI, alice: Account, one_writer: SubmitBatcher
) -> None:
    session = _session_of(app, alice)
    # jsonb cannot hold a NUL character: the API refuses it before this point, but any row
    # the database refuses must cost only its own submission.
    refused = dataclasses.replace(_job("alice"), args=[{"message": "nul\u0000"}])
    answers = await asyncio.gather(
        one_writer.submit(session, _job("alice", 1)),
        one_writer.submit(session, refused),
        one_writer.submit(session, _job("alice", 3)),
        return_exceptions=True,
    )
    assert isinstance(answers[0], Job) and answers[0].args == {"message": 1}
    assert isinstance(answers[1], asyncpg.DataError)
    assert isinstance(answers[2], Job) and answers[2].args == {"message": 3}


async def test_a_submission_abandoned_before_its_write_is_not_written(
    app: FastAPI, alice: Account, one_writer: SubmitBatcher, pool: Pool
) -> None:
    session = _session_of(app, alice)
    abandoned = asyncio.create_task(one_writer.submit(session, _job("alice", 1)))
    await asyncio.sleep(0)  # one step: it is waiting for the writer, which has not run yet
    abandoned.cancel()
    kept = await one_writer.submit(session, _job("alice", 2))
    with pytest.raises(asyncio.CancelledError):
        await abandoned
    async with pool.acquire() as conn:
        args = await conn.fetch("SELECT args FROM jobrunner.jobs")
    assert [row["args"] for row in args] == [kept.args]


async def test_drain_waits_for_the_writes_under_way(
    app: FastAPI, alice: Account, pool: Pool
) -> None:
    batcher = SubmitBatcher(pool, None, writers=2)
    pending = [
        asyncio.create_task(batcher.submit(_session_of(app, alice), _job("alice", n)))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # one step: all of them are waiting
    await batcher.drain()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 20
    assert len(await asyncio.gather(*pending)) == 20


async def test_a_job_with_a_dedup_key_is_refused_before_anything_is_written(
    app: FastAPI, alice: Account, one_writer: SubmitBatcher, pool: Pool
) -> None:
    deduplicated = dataclasses.replace(_job("alice"), dedup_key="once")
    with pytest.raises(ValueError, match="dedup key"):
        await one_writer.submit(_session_of(app, alice), deduplicated)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_a_lone_submission_rings_in_its_insert(
    app: FastAPI, alice: Account, pool: Pool, rung: asyncio.Queue[str]
) -> None:
    doorbell = Doorbell(pool)
    batcher = SubmitBatcher(pool, doorbell, writers=1)
    rows = make_rows("echo", [{"message": 1}], JobOptions(owner="alice", queue="lone"))
    await batcher.submit(_session_of(app, alice), rows)
    # Heard at the insert's commit: nothing was left for the doorbell's second statement.
    assert doorbell.idle()
    assert await asyncio.wait_for(rung.get(), timeout=10) == "lone"
    assert await rang_nothing(pool, rung)
