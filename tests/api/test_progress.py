"""A handler's progress over HTTP: in GET /jobs/{id}, and as `progress` events of
/jobs/{id}/events in time order with the state changes. The attempt is played by hand
(claim, progress, outcome: the statements a worker runs), so the test says when each lands."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import httpx
from fastapi import FastAPI

from jobrunner.api.events import EventHub
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.models import ClaimedJob, Outcome, OutcomeKind
from jobrunner.progress import ProgressReport
from jobrunner.webhooks import delivery_rows
from tests.support.api import Login
from tests.support.waiting import wait_for

WORKER = "w-api-progress"
POLICY = queries.OutcomePolicy(
    backoff_base=0.01, backoff_cap=0.05, max_deferrals=20, delivery=delivery_rows()
)


def _events(stream: str) -> list[tuple[str | None, str, dict[str, object]]]:
    """(id or None, event, data) of each event, comments left out."""
    events = []
    for block in stream.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events


async def _claim(pool: Pool) -> ClaimedJob:
    async with pool.acquire() as conn:
        (claimed,) = await queries.job_claim(
            conn, queues=["default"], worker_id=WORKER, limit=1, lease_seconds=30
        )
    return claimed


async def _report(pool: Pool, job: ClaimedJob, fraction: float, message: str) -> None:
    report = ProgressReport(job.id, job.attempt, fraction, message, '{"rows": 40}')
    async with pool.acquire() as conn:
        assert await queries.progress_write_many(conn, [report], worker_id=WORKER) == {job.id: True}


async def test_progress_is_shown_by_get_and_streamed_before_the_end(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "echo", "args": {"message": 1}}, headers=alice.headers
    )
    job_id = made.json()["id"]
    assert made.json()["progress"] is None
    hub: EventHub = app.state.events
    stream = asyncio.create_task(http.get(f"/jobs/{job_id}/events", headers=alice.headers))

    async def watching() -> bool:
        return hub.watched == 1

    await wait_for(watching)
    claimed = await _claim(pool)
    assert claimed.id == UUID(job_id)
    await _report(pool, claimed, 0.4, "40 of 100")

    shown = (await http.get(f"/jobs/{job_id}", headers=alice.headers)).json()["progress"]
    assert (shown["fraction"], shown["message"], shown["data"]) == (0.4, "40 of 100", {"rows": 40})
    async with pool.acquire() as conn:
        outcome = Outcome(claimed.id, claimed.attempt, OutcomeKind.SUCCEEDED, result_json="1")
        await queries.job_record_outcomes(conn, [outcome], worker_id=WORKER, policy=POLICY)

    events = _events((await asyncio.wait_for(stream, timeout=10)).text)
    assert [(i, name) for i, name, _ in events] == [
        ("0", "queued"),
        ("1", "running"),
        (None, "progress"),  # no id: Last-Event-ID counts state changes
        ("2", "succeeded"),
    ]
    progress = events[2][2]
    assert (progress["progress"], progress["message"], progress["attempt"]) == (0.4, "40 of 100", 1)

    resumed = await http.get(
        f"/jobs/{job_id}/events", headers={**alice.headers, "Last-Event-ID": "1"}
    )
    assert [name for _, name, _ in _events(resumed.text)] == ["progress", "succeeded"]


async def test_a_progress_report_alone_wakes_a_stream(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "echo", "args": {"message": 2}}, headers=alice.headers
    )
    job_id = made.json()["id"]
    claimed = await _claim(pool)
    hub: EventHub = app.state.events
    stream = asyncio.create_task(http.get(f"/jobs/{job_id}/events", headers=alice.headers))

    async def watching() -> bool:
        return hub.watched == 1

    await wait_for(watching)
    await _report(pool, claimed, 0.5, "half")
    # The poll sees only progress_at move (the state stays `running`) and reads just that.
    await wait_for(lambda: _seen_by_hub(hub, claimed.id), what="the hub saw the progress")
    await _report(pool, claimed, 0.9, "nearly")
    await wait_for(lambda: _seen_by_hub(hub, claimed.id, 0.9), what="the hub saw the next")
    async with pool.acquire() as conn:
        outcome = Outcome(claimed.id, claimed.attempt, OutcomeKind.SUCCEEDED, result_json="1")
        await queries.job_record_outcomes(conn, [outcome], worker_id=WORKER, policy=POLICY)
    events = _events((await asyncio.wait_for(stream, timeout=10)).text)
    progress = [data["message"] for _, name, data in events if name == "progress"]
    assert progress == ["half", "nearly"]
    assert events[-1][1] == "succeeded"


def _seen_by_hub(hub: EventHub, job_id: UUID, fraction: float = 0.5) -> bool:
    latest = hub.latest(job_id)
    return (
        latest is not None and latest.progress is not None and latest.progress.fraction == fraction
    )
