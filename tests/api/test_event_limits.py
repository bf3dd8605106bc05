"""What a hostile user can do with event streams: slow the API, pile up streams, keep a
stream after logout, hold one open for ever. Each is reproduced over HTTP."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import replace
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import client
from jobrunner.accounts import Principal
from jobrunner.api.events import EventHub
from jobrunner.db.pool import Conn, Pool, create_pool
from jobrunner.settings import Settings
from tests.support.api import SECRET, Account, Login
from tests.support.waiting import wait_for


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """As tests/api/conftest.py's, with sessions re-checked every tenth of a second."""
    return settings.model_copy(
        update={
            "jwt_secret": SecretStr(SECRET),
            "dev_mode": False,
            "pool_min_size": 1,
            "sse_session_check_interval": 0.1,
        }
    )


async def _far_future_job(http: httpx.AsyncClient, who: Account, args: object = None) -> str:
    made = await http.post(
        "/jobs",
        json={"task": "echo", "args": {"message": args}, "delay_seconds": 86400},
        headers=who.headers,
    )
    assert made.status_code == 201, made.text
    job_id: str = made.json()["id"]
    return job_id


def _open(http: httpx.AsyncClient, who: Account, job_id: str) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(http.get(f"/jobs/{job_id}/events", headers=who.headers))


async def _close(streams: list[asyncio.Task[httpx.Response]]) -> None:
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)


async def test_streams_are_capped_per_user_and_per_process(
    app: FastAPI, http: httpx.AsyncClient, login: Login
) -> None:
    hub: EventHub = app.state.events
    hub.limits = replace(hub.limits, per_user=2, total=3)
    alice, bob = await login("alice"), await login("bob")
    job_a, job_b = await _far_future_job(http, alice), await _far_future_job(http, bob)
    streams = [_open(http, alice, job_a), _open(http, alice, job_a)]

    async def opened(n: int) -> bool:
        return hub.streams == n

    await wait_for(lambda: opened(2))
    refused = await http.get(f"/jobs/{job_a}/events", headers=alice.headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in refused.headers
    streams.append(_open(http, bob, job_b))  # bob has his own allowance...
    await wait_for(lambda: opened(3))
    full = await http.get(f"/jobs/{job_b}/events", headers=bob.headers)
    assert full.status_code == 429  # ...but the process's cap is reached
    assert "server" in full.json()["detail"]

    await _close(streams[:1])
    await wait_for(lambda: opened(2))  # a closed stream gives its place back
    streams.append(_open(http, alice, job_a))
    await wait_for(lambda: opened(3))
    await _close(streams)
    await wait_for(lambda: opened(0))
    assert hub.watched == 0


async def test_a_stream_ends_soon_after_its_session_does(
    app: FastAPI, http: httpx.AsyncClient, login: Login
) -> None:
    hub: EventHub = app.state.events
    alice = await login("alice")
    job_id = await _far_future_job(http, alice)
    stream = _open(http, alice, job_id)

    async def watching() -> bool:
        return hub.streams == 1

    await wait_for(watching)
    assert (await http.post("/auth/logout", headers=alice.headers)).status_code == 204
    answer = await asyncio.wait_for(stream, timeout=10)
    assert answer.text.startswith("id: 0\nevent: scheduled")
    assert answer.text.endswith(": session ended\n\n")
    assert hub.streams == 0


async def test_a_stream_closes_at_its_longest_with_a_retry_hint(
    app: FastAPI, http: httpx.AsyncClient, login: Login
) -> None:
    hub: EventHub = app.state.events
    hub.limits = replace(hub.limits, max_seconds=0.3)
    alice = await login("alice")
    job_id = await _far_future_job(http, alice)
    answer = await asyncio.wait_for(
        http.get(f"/jobs/{job_id}/events", headers=alice.headers), timeout=10
    )
    assert answer.status_code == 200
    assert "\nretry: 10000\n" in f"\n{answer.text}"
    assert hub.streams == 0
    # Reconnecting with Last-Event-ID resumes after the last event seen: nothing repeated.
    resumed = await asyncio.wait_for(
        http.get(f"/jobs/{job_id}/events", headers={**alice.headers, "Last-Event-ID": "0"}),
        timeout=10,
    )
    assert "event:" not in resumed.text
    assert "retry: 10000" in resumed.text


async def _toast_blocks_read(conn: Conn, job_table: str = "jobrunner.jobs") -> int:
    """TOAST blocks of the jobs table read so far (this connection's counts flushed first)."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    read: int = await conn.fetchval(
        "SELECT coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0)"
        " FROM pg_statio_all_tables WHERE relid = $1::regclass",
        job_table,
    )
    return read


async def test_watching_a_job_does_not_read_its_args(
    app: FastAPI, http: httpx.AsyncClient, login: Login, db_dsn: str
) -> None:
    """A job with 0.9 MB of args (incompressible, so stored out of line) costs the poll
    nothing of them: the jobs table's TOAST is not read however often it is polled."""
    alice = await login("alice")
    bulky = base64.b64encode(os.urandom(675_000)).decode()  # 900,000 characters
    job_id = await _far_future_job(http, alice, bulky)
    stream = _open(http, alice, job_id)
    hub: EventHub = app.state.events

    async def watching() -> bool:
        return hub.watched == 1

    await wait_for(watching)
    # A hub of our own on one connection, so that connection's statistics can be flushed.
    single: Pool = await create_pool(db_dsn, role="test", min_size=1, max_size=1)
    try:
        mine = EventHub(single)
        async with single.acquire() as conn:
            full = await client.get_job(UUID(job_id), conn=conn)
            before = await _toast_blocks_read(conn)
        watched = mine.open(full, Principal("alice", "user", UUID(int=1)), None)
        for _ in range(20):
            await mine.poll_once()
        async with single.acquire() as conn:
            after_polls = await _toast_blocks_read(conn)
            await client.get_job(UUID(job_id), conn=conn)  # the measure can see a read
            after_get = await _toast_blocks_read(conn)
        del watched  # never iterated: nothing to close
    finally:
        await single.close()
    assert after_polls == before
    assert after_get > after_polls
    await _close([stream])


async def test_watching_a_job_reads_its_attempt_history_only_when_it_moves(
    app: FastAPI, http: httpx.AsyncClient, login: Login, db_dsn: str
) -> None:
    """Tracebacks pile up in `errors` (up to max_attempts of them): a job that has not moved
    since the last poll costs nothing of them; one that moved has them read once."""
    alice = await login("alice")
    job_id = await _far_future_job(http, alice)
    single: Pool = await create_pool(db_dsn, role="test", min_size=1, max_size=1)
    try:
        async with single.acquire() as conn:
            traceback = base64.b64encode(os.urandom(300_000)).decode()  # stored out of line
            await conn.execute(
                "UPDATE jobrunner.jobs SET errors = jsonb_build_array(jsonb_build_object("
                "'attempt', 1, 'outcome', 'retrying', 'error', 'boom', 'traceback', $2::text))"
                " WHERE id = $1",
                UUID(job_id),
                traceback,
            )
            full = await client.get_job(UUID(job_id), conn=conn)
        mine = EventHub(single)
        watched = mine.open(full, Principal("alice", "user", UUID(int=1)), None)
        async with single.acquire() as conn:
            before = await _toast_blocks_read(conn)
        for _ in range(20):
            await mine.poll_once()
        async with single.acquire() as conn:
            after_polls = await _toast_blocks_read(conn)
            await conn.execute(
                "UPDATE jobrunner.jobs SET state = 'queued', run_at = now() WHERE id = $1",
                UUID(job_id),
            )
        await mine.poll_once()  # it moved: its history is read, once
        async with single.acquire() as conn:
            after_move = await _toast_blocks_read(conn)
        del watched
    finally:
        await single.close()
    assert after_polls == before
    assert after_move > after_polls
