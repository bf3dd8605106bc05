"""Event streams hear a job's end from the outcome write's doorbell (jobrunner_outcomes), not
at the hub's next poll: each hub here polls once an hour, so only a ring can end a stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from jobrunner import client
from jobrunner.accounts import Principal
from jobrunner.api.events import EventHub
from jobrunner.db.pool import Pool, connect
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import Login
from tests.support.waiting import wait_for

HOUR = 3600.0


@contextlib.asynccontextmanager
async def _running(*coros: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _submit(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    made = await http.post("/jobs", json={"task": "noop", "args": {}}, headers=headers)
    assert made.status_code == 201, made.text
    job_id: str = made.json()["id"]
    return job_id


async def test_an_outcome_write_rings_the_outcomes_channel(
    pool: Pool, db_dsn: str, settings: Settings
) -> None:
    listener = await connect(db_dsn, role="test-listener")
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("jobrunner_outcomes", lambda *a: heard.put_nowait(a[3]))
    try:
        async with pool.acquire() as conn:
            await client.enqueue("noop", conn=conn)
        assert heard.empty()
        await drain(pool, settings=settings)
        assert await asyncio.wait_for(heard.get(), timeout=10) == ""
    finally:
        await listener.close()


async def test_a_job_end_reaches_its_stream_on_the_outcome_doorbell(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    job_id = await _submit(http, alice.headers)
    hub = EventHub(app.state.pool, interval=HOUR)
    assert settings.database_url is not None
    served, app.state.events = app.state.events, hub
    try:
        async with _running(hub.run(), hub.bell(settings.database_url).run()):
            await wait_for(lambda: hub.rings >= 1, what="the bell connected (it rings then)")
            stream = asyncio.create_task(http.get(f"/jobs/{job_id}/events", headers=alice.headers))
            await wait_for(lambda: hub.watched == 1)
            await drain(pool, settings=settings)
            answer = await asyncio.wait_for(stream, timeout=10)
    finally:
        app.state.events = served
    assert answer.status_code == 200
    assert "event: succeeded" in answer.text


@pytest.mark.parametrize("told", [True, False])
async def test_a_ring_heard_while_a_stream_opened_polls_again(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings, told: bool
) -> None:
    """The route reads the job, then opens its stream: a ring between the two found no watch
    of it. Told the rings it saw before its read, the hub polls again; not told, it cannot
    (and the stream would wait for the hourly poll)."""
    alice = await login("alice")
    job_id = await _submit(http, alice.headers)
    hub = EventHub(app.state.pool, interval=HOUR)
    async with _running(hub.run()):
        seen = hub.rings
        async with pool.acquire() as conn:
            job = await client.get_job(UUID(job_id), conn=conn)
        await drain(pool, settings=settings)  # the job ends after the route's read ...
        hub.ring()  # ... and its ring comes before the stream is open
        await wait_for(lambda: not hub.rung, what="the poller took the ring (no watch then)")
        me = Principal("alice", "user", UUID(int=1))
        events = hub.open(job, me, None, rings_seen=seen if told else None)
        assert hub.rung is told
        if told:
            text = "".join([e async for e in events])
            assert "event: succeeded" in text
