"""Schedules over HTTP: GET/POST /schedules, pause, resume, DELETE; admins only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jobrunner.db.pool import Pool
from jobrunner.registry import _registry
from jobrunner.schedules import MAX_ARGS_BYTES
from jobrunner.tasks import task
from jobrunner.worker.periodic import fire_due_schedules, sync_code_schedules
from tests.support.api import Login

NIGHTLY = {
    "name": "nightly-sums",
    "task": "square_sum",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "args": {"data": [1, 2, 3]},
    "queue": "reports",
    "priority": 5,
}


@pytest.fixture
def code_task() -> Iterator[str]:
    @task(name="test.api_every_minute", cron="* * * * *")
    async def every_minute() -> None:
        return None

    yield "test.api_every_minute"
    del _registry["test.api_every_minute"]


async def test_an_admin_adds_lists_pauses_resumes_and_removes_a_schedule(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root = await login("root", admin=True)
    made = await http.post("/schedules", json=NIGHTLY, headers=root.headers)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/schedules/nightly-sums"
    shown = made.json()
    assert {k: shown[k] for k in NIGHTLY} == NIGHTLY
    assert shown["source"] == "runtime" and shown["created_by"] == "root"
    assert shown["paused"] is False and shown["next_run_at"] is not None
    assert shown["last_run_at"] is None and shown["last_job_state"] is None

    # A tick fires; the listing shows the last run and its job's state.
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobrunner.schedules SET next_run_at = now()")
        assert await fire_due_schedules(conn) == 1
    [listed] = (await http.get("/schedules", headers=root.headers)).json()
    assert listed["name"] == "nightly-sums" and listed["last_run_at"] is not None
    assert listed["last_job_state"] == "queued" and listed["last_job_id"] is not None
    assert listed["next_run_at"] > listed["last_run_at"]

    paused = await http.post("/schedules/nightly-sums/pause", headers=root.headers)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = await http.post("/schedules/nightly-sums/resume", headers=root.headers)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False

    gone = await http.delete("/schedules/nightly-sums", headers=root.headers)
    assert gone.status_code == 204
    assert (await http.get("/schedules", headers=root.headers)).json() == []
    again = await http.delete("/schedules/nightly-sums", headers=root.headers)
    assert again.status_code == 404 and "nightly-sums" in again.json()["detail"]


async def test_users_are_refused_every_schedule_route(
    http: httpx.AsyncClient, login: Login
) -> None:
    root = await login("root", admin=True)
    ada = await login("ada")
    assert (await http.post("/schedules", json=NIGHTLY, headers=root.headers)).status_code == 201
    calls = [
        http.get("/schedules", headers=ada.headers),
        http.post("/schedules", json={**NIGHTLY, "name": "mine"}, headers=ada.headers),
        http.post("/schedules/nightly-sums/pause", headers=ada.headers),
        http.post("/schedules/nightly-sums/resume", headers=ada.headers),
        http.delete("/schedules/nightly-sums", headers=ada.headers),
    ]
    for call in calls:
        answer = await call
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
    assert (await http.get("/schedules")).status_code == 401
    [still] = (await http.get("/schedules", headers=root.headers)).json()
    assert still["paused"] is False


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "*/5 * * * * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"task": "has spaces"}, "task"),
        ({"task": "jobrunner.deliver_webhook"}, "task"),
        ({"name": "no/slashes"}, "name"),
        ({"args": [1, 2]}, "args"),
        ({"args": "x"}, "args"),
        ({"args": {"blob": "x" * MAX_ARGS_BYTES}}, "args"),
        ({"args": {"data": "not a list"}}, "data"),  # square_sum's own signature
        ({"priority": 101}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"queue": "bad queue"}, "queue"),
        ({"surprise": 1}, "surprise"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    http: httpx.AsyncClient, login: Login, change: dict[str, Any], field: str
) -> None:
    root = await login("root", admin=True)
    answer = await http.post("/schedules", json={**NIGHTLY, **change}, headers=root.headers)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert any(field in map(str, e["loc"]) for e in body["errors"]), body
    assert (await http.get("/schedules", headers=root.headers)).json() == []


async def test_a_taken_name_is_a_409_and_a_task_unknown_here_is_accepted(
    http: httpx.AsyncClient, login: Login
) -> None:
    root = await login("root", admin=True)
    assert (await http.post("/schedules", json=NIGHTLY, headers=root.headers)).status_code == 201
    taken = await http.post("/schedules", json=NIGHTLY, headers=root.headers)
    assert taken.status_code == 409 and "exists" in taken.json()["detail"]
    # A task this API process does not register may be a worker's: accepted, args unchecked.
    elsewhere = {**NIGHTLY, "name": "elsewhere", "task": "billing.invoice", "args": {"n": 1}}
    made = await http.post("/schedules", json=elsewhere, headers=root.headers)
    assert made.status_code == 201, made.text


async def test_a_code_schedule_is_paused_not_removed(
    http: httpx.AsyncClient, login: Login, pool: Pool, code_task: str
) -> None:
    root = await login("root", admin=True)
    async with pool.acquire() as conn:
        await sync_code_schedules(conn, by="worker:test")
    [code] = (await http.get("/schedules", headers=root.headers)).json()
    assert code["name"] == code_task and code["source"] == "code"
    refused = await http.delete(f"/schedules/{code_task}", headers=root.headers)
    assert refused.status_code == 409
    assert "remove the cron" in refused.json()["detail"] and "pause" in refused.json()["detail"]
    taken = await http.post("/schedules", json={**NIGHTLY, "name": code_task}, headers=root.headers)
    assert taken.status_code == 409
    paused = await http.post(f"/schedules/{code_task}/pause", headers=root.headers)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    for path in ("/schedules/nope/pause", "/schedules/nope/resume"):
        assert (await http.post(path, headers=root.headers)).status_code == 404
