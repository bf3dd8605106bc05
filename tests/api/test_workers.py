"""GET /workers, and the 422 for a user's submission to a queue no worker serves (api.served)
on every path a submission takes, with nothing written."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from jobrunner.api.deps import get_settings
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import Login
from tests.support.rows import insert_worker
from tests.support.waiting import wait_for

UNSERVED = "nowhere"
JOB = {"task": "square_sum", "args": {"data": [1, 2]}, "queue": UNSERVED}


async def _count_jobs(pool: Pool) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM jobrunner.jobs")
    return count


@pytest.fixture(autouse=True)
async def open_queue(pool: Pool) -> None:
    """UNSERVED is open to every user (queue controls, migration 0008): what refuses them
    there is that no worker serves it, nothing else."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO jobrunner.queues (name, open_to_all) VALUES ($1, true)", UNSERVED
        )


@pytest.fixture
def via_route(app: FastAPI, api_settings: Settings) -> Iterator[None]:
    """A dependency override: the direct path (api.direct_submit) stands aside."""
    app.dependency_overrides[get_settings] = lambda: api_settings
    yield
    app.dependency_overrides.clear()


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Entity"
    assert problem["detail"].startswith(f"no running worker serves queue '{UNSERVED}'")


async def test_the_direct_path_refuses_a_user_and_writes_nothing(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    before = app.state.direct_submit.served
    _refused(await http.post("/jobs", json=JOB, headers=alice.headers))
    assert app.state.direct_submit.served == before + 1
    assert await _count_jobs(pool) == 0


async def test_the_route_refuses_a_user_and_writes_nothing(
    http: httpx.AsyncClient, login: Login, pool: Pool, via_route: None
) -> None:
    alice = await login("alice")
    _refused(await http.post("/jobs", json=JOB, headers=alice.headers))
    keyed = {**alice.headers, "Idempotency-Key": "k-1"}
    _refused(await http.post("/jobs", json=JOB, headers=keyed))
    assert await _count_jobs(pool) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.idempotency_keys") == 0


async def test_the_task_default_queue_is_the_one_checked(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    """A submission naming no queue goes to its task's: that one must be served."""
    alice = await login("alice")
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM jobrunner.workers")
    served = app.state.submit_context.served
    await wait_for(lambda: "default" not in served, what="the API's served queues read again")
    plain = {"task": "square_sum", "args": {"data": [1]}}
    answer = await http.post("/jobs", json=plain, headers=alice.headers)
    assert answer.status_code == 422 and "queue 'default'" in answer.json()["detail"]
    assert await _count_jobs(pool) == 0


async def test_an_admin_may_submit_to_a_queue_no_worker_serves(
    http: httpx.AsyncClient, login: Login
) -> None:
    root = await login("root", admin=True)
    answer = await http.post("/jobs", json=JOB, headers=root.headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["queue"] == UNSERVED


async def test_a_worker_that_just_registered_is_not_refused(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    """The API's set of served queues may be a second old: a miss is read again first."""
    alice = await login("alice")
    _refused(await http.post("/jobs", json=JOB, headers=alice.headers))
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-new", queues=[UNSERVED])
    answer = await http.post("/jobs", json=JOB, headers=alice.headers)
    assert answer.status_code == 201, answer.text


async def test_a_worker_stopped_within_the_window_still_serves(
    http: httpx.AsyncClient, login: Login, pool: Pool, api_settings: Settings
) -> None:
    """A rolling restart stops the old workers before the new ones register: submissions
    in the gap go through. A worker gone for longer than the window no longer counts."""
    alice = await login("alice")
    window = api_settings.served_queue_window
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-gone", queues=[UNSERVED], seen_ago=window + 5)
    _refused(await http.post("/jobs", json=JOB, headers=alice.headers))
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-old", queues=[UNSERVED], seen_ago=window / 2, stopped=True)
    assert (await http.post("/jobs", json=JOB, headers=alice.headers)).status_code == 201


async def test_workers_are_listed_for_admins_only(
    http: httpx.AsyncClient, login: Login, pool: Pool, api_settings: Settings
) -> None:
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-stopped", queues=["a"], tasks=["t"], seen_ago=5, stopped=True)
        await insert_worker(
            conn, "w-gone", queues=["b"], seen_ago=api_settings.worker_seen_timeout + 5
        )
    root, alice = await login("root", admin=True), await login("alice")
    listed = await http.get("/workers", headers=root.headers)
    assert listed.status_code == 200, listed.text
    workers = {w["id"]: w for w in listed.json()}
    assert list(workers) == ["tests:served", "w-stopped", "w-gone"]  # live ones first
    assert [w["live"] for w in workers.values()] == [True, False, False]
    stopped = workers["w-stopped"]
    assert (stopped["queues"], stopped["tasks"], stopped["running"]) == (["a"], ["t"], 0)
    assert stopped["stopped_at"] is not None and workers["w-gone"]["stopped_at"] is None
    assert set(stopped) == {
        "id", "host", "pid", "queues", "tasks", "concurrency", "started_at", "last_seen_at",
        "stopped_at", "live", "running",
    }  # fmt: skip

    refused = await http.get("/workers", headers=alice.headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert (await http.get("/workers")).status_code == 401


async def test_a_replayed_submission_gets_its_job_though_the_queue_lost_its_worker(
    app: FastAPI, http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-leaving", queues=[UNSERVED])
    first = await http.post("/jobs", json=JOB, headers={**alice.headers, "Idempotency-Key": "k"})
    assert first.status_code == 201, first.text
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM jobrunner.workers WHERE id = 'w-leaving'")
    served = app.state.submit_context.served
    await wait_for(lambda: UNSERVED not in served, what="the API's served queues read again")
    again = await http.post("/jobs", json=JOB, headers={**alice.headers, "Idempotency-Key": "k"})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    _refused(await http.post("/jobs", json=JOB, headers={**alice.headers, "Idempotency-Key": "n"}))
