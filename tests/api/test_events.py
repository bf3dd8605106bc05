from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
from fastapi import FastAPI

from jobrunner.api.events import EventHub, derive_events
from jobrunner.db.pool import Pool
from jobrunner.models import Job, JobState
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import Login
from tests.support.waiting import wait_for


def _parse(stream: str) -> list[tuple[int, str, dict[str, object]]]:
    events = []
    for block in stream.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def test_events_stream_to_a_terminal_state_then_resume(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "square_sum", "args": {"data": [1, 2]}}, headers=alice.headers
    )
    job_id = made.json()["id"]
    hub: EventHub = app.state.events
    stream = asyncio.create_task(http.get(f"/jobs/{job_id}/events", headers=alice.headers))

    async def watching() -> bool:
        return hub.watched == 1

    await wait_for(watching)
    await drain(pool, settings=settings)
    answer = await asyncio.wait_for(stream, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = _parse(answer.text)
    assert [(i, name) for i, name, _ in events] == [(0, "queued"), (1, "running"), (2, "succeeded")]
    assert events[1][2]["attempt"] == 1
    assert hub.watched == 0  # the finished stream let go of its job

    resumed = await http.get(
        f"/jobs/{job_id}/events", headers={**alice.headers, "Last-Event-ID": "1"}
    )
    assert [(i, name) for i, name, _ in _parse(resumed.text)] == [(2, "succeeded")]


def _job(**changes: object) -> Job:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = Job(
        id=uuid4(),
        queue="default",
        task="t",
        args={},
        priority=0,
        state=JobState.QUEUED,
        attempt=0,
        max_attempts=3,
        run_at=now,
        created_at=now,
        started_at=None,
        finished_at=None,
        worker_id=None,
        lease_expires_at=None,
        timeout=None,
        cancel_requested_at=None,
        result=None,
        errors=[],
        dedup_key=None,
        owner=None,
        callback_url=None,
        backoff_base=None,
        backoff_cap=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_derived_events_grow_by_appending_only() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t = [t0 + timedelta(seconds=s) for s in range(6)]
    first_error = {
        "attempt": 1,
        "error": "boom",
        "outcome": "retrying",
        "started_at": t[1].isoformat(),
        "finished_at": t[2].isoformat(),
    }
    lives = [
        _job(),
        _job(state=JobState.RUNNING, attempt=1, started_at=t[1]),
        _job(
            state=JobState.RETRYING, attempt=1, started_at=t[1], errors=[first_error], run_at=t[3]
        ),
        _job(state=JobState.QUEUED, attempt=1, started_at=t[1], errors=[first_error], run_at=t[3]),
        _job(state=JobState.RUNNING, attempt=2, started_at=t[4], errors=[first_error], run_at=t[3]),
        _job(
            state=JobState.SUCCEEDED,
            attempt=2,
            started_at=t[4],
            finished_at=t[5],
            errors=[first_error],
            run_at=t[3],
            result=1,
        ),
    ]
    derived = [[(e.index, e.state, e.attempt) for e in derive_events(j)] for j in lives]
    for earlier, later in itertools.pairwise(derived):
        assert later[: len(earlier)] == earlier
    assert derived[-1] == [
        (0, "queued", 0),
        (1, "running", 1),
        (2, "retrying", 1),
        (3, "running", 2),
        (4, "succeeded", 2),
    ]
    scheduled = _job(state=JobState.SCHEDULED, run_at=t[3])
    assert [e.state for e in derive_events(scheduled)] == ["scheduled"]
    cancelled = _job(state=JobState.CANCELLED, finished_at=t[1])
    assert [e.state for e in derive_events(cancelled)] == ["queued", "cancelled"]


async def test_many_streams_share_one_poller_not_one_connection_each(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    job_ids = []
    for n in range(5):
        made = await http.post(
            "/jobs", json={"task": "echo", "args": {"message": n}}, headers=alice.headers
        )
        job_ids.append(made.json()["id"])
    hub: EventHub = app.state.events
    hub.limits = replace(hub.limits, per_user=200)  # the default cap is far below this
    api_pool: Pool = app.state.pool
    streams = [
        asyncio.create_task(http.get(f"/jobs/{job_ids[i % 5]}/events", headers=alice.headers))
        for i in range(200)
    ]

    async def all_open() -> bool:
        return hub.streams == 200

    await wait_for(all_open, timeout=30)
    assert hub.watched == 5
    # 200 open streams, and the API's pool is idle apart from (at most) the poller's query.
    # The process's other readers (served queues, access rules, housekeeping) take one now
    # and then for a moment, so this waits for a moment when they hold none: streams never do.

    async def idle_but_the_poller() -> bool:
        return api_pool.get_size() - api_pool.get_idle_size() <= 1

    await wait_for(idle_but_the_poller, timeout=10)
    assert api_pool.get_size() <= app.state.settings.pool_max_size
    await drain(pool, settings=settings)
    answers = await asyncio.wait_for(asyncio.gather(*streams), timeout=30)
    assert all(_parse(a.text)[-1][1] == "succeeded" for a in answers)
