"""Dependencies over HTTP: depends_on on POST /jobs, graphs in one request, parents and
children on GET /jobs/{id}, the `waiting` event, the links kept in /history, and tenancy."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import httpx
from fastapi import FastAPI

from jobrunner.api.events import EventHub
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import Login
from tests.support.waiting import wait_for


def _events(stream: str) -> list[tuple[str, dict[str, object]]]:
    found = []
    for block in stream.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


async def test_a_job_waits_for_its_parents_and_shows_the_links(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    parent = (await http.post("/jobs", json={"task": "square_sum", "args": {"data": [1, 2]}},
                              headers=alice.headers)).json()  # fmt: skip
    made = await http.post(
        "/jobs",
        json={"task": "echo", "args": {"message": 1}, "depends_on": [parent["id"]]},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    child = made.json()
    assert child["state"] == "waiting" and child["pending_parents"] == 1
    assert child["on_parent_failure"] == "cancel" and child["args"] == {"message": 1}

    shown = (await http.get(f"/jobs/{child['id']}", headers=alice.headers)).json()
    assert shown["parents"] == [{"id": parent["id"], "task": "square_sum", "state": "queued"}]
    shown = (await http.get(f"/jobs/{parent['id']}", headers=alice.headers)).json()
    assert shown["children"] == [{"id": child["id"], "task": "echo", "state": "waiting"}]
    assert shown["children_total"] == 1 and shown["parents"] == []

    hub: EventHub = app.state.events
    stream = asyncio.create_task(http.get(f"/jobs/{child['id']}/events", headers=alice.headers))
    await wait_for(lambda: hub.watched == 1, what="the stream watches the child")
    await drain(pool, settings=settings)
    events = _events((await asyncio.wait_for(stream, timeout=10)).text)
    assert [name for name, _ in events] == ["waiting", "queued", "running", "succeeded"]

    history = (await http.get("/history", headers=alice.headers)).json()["items"]
    by_id = {item["id"]: item for item in history}
    assert by_id[child["id"]]["parents"] == [parent["id"]]
    assert by_id[parent["id"]]["has_children"] is True and by_id[parent["id"]]["parents"] == []


async def test_a_user_may_depend_only_on_their_own_jobs(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice, bob = await login("alice"), await login("bob")
    hers = (await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)).json()
    async with pool.acquire() as conn:
        before = await conn.fetchval("SELECT count(*) FROM jobrunner.jobs")
    for parent in (hers["id"], str(uuid4())):
        refused = await http.post(
            "/jobs", json={"task": "echo", "depends_on": [parent]}, headers=bob.headers
        )
        assert refused.status_code == 422, refused.text
        assert parent in refused.json()["detail"]
    graph = await http.post(
        "/jobs/graph",
        json={"jobs": [{"name": "mine", "task": "echo"},
                       {"name": "theirs", "task": "echo", "depends_on": ["mine", hers["id"]]}]},
        headers=bob.headers,
    )  # fmt: skip
    assert graph.status_code == 422, graph.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == before
    # Their own job they may wait for, and a job cancelled meanwhile cancels its waiter.
    child = await http.post(
        "/jobs", json={"task": "echo", "depends_on": [hers["id"]]}, headers=alice.headers
    )
    assert child.status_code == 201 and child.json()["state"] == "waiting"
    assert (await http.post(f"/jobs/{hers['id']}/cancel", headers=alice.headers)).is_success
    after = (await http.get(f"/jobs/{child.json()['id']}", headers=alice.headers)).json()
    assert after["state"] == "cancelled"
    assert after["errors"][-1]["error"] == f"parent {hers['id']} cancelled"


async def test_a_graph_is_written_whole_with_its_ids(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs/graph",
        json={
            "jobs": [
                {"name": "total", "task": "echo", "depends_on": ["a", "b"],
                 "on_parent_failure": "run"},
                {"name": "a", "task": "square_sum", "args": {"data": [1, 2]}},
                {"name": "b", "task": "cube_sum", "args": {"data": [2]}, "depends_on": ["a"]},
            ]
        },
        headers=alice.headers,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    jobs = {job["name"]: job for job in made.json()["jobs"]}
    assert [job["name"] for job in made.json()["jobs"]] == ["total", "a", "b"]
    assert jobs["a"]["state"] == "queued" and jobs["b"]["state"] == "waiting"
    assert jobs["total"]["pending_parents"] == 2 and jobs["total"]["on_parent_failure"] == "run"
    detail = (await http.get(f"/jobs/{jobs['total']['id']}", headers=alice.headers)).json()
    assert [p["id"] for p in detail["parents"]] == [jobs["a"]["id"], jobs["b"]["id"]]
    await drain(pool, settings=settings)
    done = (await http.get(f"/jobs/{jobs['b']['id']}/result", headers=alice.headers)).json()
    assert done["state"] == "succeeded"


async def test_bad_graphs_are_422_and_write_nothing(
    http: httpx.AsyncClient, login: Login, pool: Pool, api_settings: Settings, app: FastAPI
) -> None:
    alice = await login("alice")
    cases = {
        "cycle": [{"name": "x", "task": "echo", "depends_on": ["y"]},
                  {"name": "y", "task": "echo", "depends_on": ["x"]}],
        "unknown name": [{"name": "x", "task": "echo", "depends_on": ["nobody"]}],
        "twice": [{"name": "x", "task": "echo"}, {"name": "x", "task": "echo"}],
        "bad args": [{"name": "x", "task": "square_sum", "args": {"data": "no"}}],
        "internal": [{"name": "x", "task": "jobrunner.deliver_webhook"}],
        "empty": [],
        "policy alone": [{"name": "x", "task": "echo", "on_parent_failure": "run"}],
        "too big": [{"name": f"j{i}", "task": "echo"}
                    for i in range(api_settings.max_graph_jobs + 1)],
    }  # fmt: skip
    for what, jobs in cases.items():
        answer = await http.post("/jobs/graph", json={"jobs": jobs}, headers=alice.headers)
        assert answer.status_code == 422, (what, answer.text)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_a_graph_counts_each_job_against_the_limits(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    settings: Settings = app.state.settings
    app.state.settings = settings.model_copy(update={"max_unfinished_jobs_per_user": 3})
    alice = await login("alice")
    jobs = [{"name": f"j{i}", "task": "echo"} for i in range(4)]
    answer = await http.post("/jobs/graph", json={"jobs": jobs}, headers=alice.headers)
    assert answer.status_code == 429, answer.text
    answer = await http.post("/jobs/graph", json={"jobs": jobs[:3]}, headers=alice.headers)
    assert answer.status_code == 201, answer.text


async def test_the_readme_graph_adds_up_its_parents(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs/graph",
        json={
            "jobs": [
                {"name": "squares", "task": "square_sum", "args": {"data": [1, 2, 3]}},
                {"name": "cubes", "task": "cube_sum", "args": {"data": [1, 2, 3]}},
                {"name": "sum", "task": "total", "depends_on": ["squares", "cubes"]},
            ]
        },
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    total = made.json()["jobs"][-1]
    assert total["state"] == "waiting" and total["pending_parents"] == 2
    await drain(pool, settings=settings)
    result = (await http.get(f"/jobs/{total['id']}/result", headers=alice.headers)).json()
    assert result["state"] == "succeeded" and result["result"] == 50
