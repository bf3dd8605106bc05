from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from jobrunner.api.deps import get_settings
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import Login


async def test_another_users_job_is_exactly_a_missing_one(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice, bob = await login("alice"), await login("bob")
    made = await http.post(
        "/jobs", json={"task": "test.always_fail", "max_attempts": 1}, headers=alice.headers
    )
    mine = made.json()["id"]
    await drain(pool, settings=settings)
    missing = str(uuid4())
    for method, suffix in [
        ("GET", ""),
        ("GET", "/status"),
        ("GET", "/result"),
        ("GET", "/events"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
    ]:
        theirs = await http.request(method, f"/jobs/{mine}{suffix}", headers=bob.headers)
        nothing = await http.request(method, f"/jobs/{missing}{suffix}", headers=bob.headers)
        assert theirs.status_code == nothing.status_code == 404, suffix
        assert theirs.json()["title"] == nothing.json()["title"]
        assert theirs.headers["content-type"] == nothing.headers["content-type"]
    assert (await http.get("/jobs", headers=bob.headers)).json()["items"] == []
    assert (await http.get("/history", headers=bob.headers)).json()["items"] == []
    # The owner still sees it, and the job was not touched by bob's attempts.
    own = await http.get(f"/jobs/{mine}", headers=alice.headers)
    assert own.json()["state"] == "failed"


async def test_admins_see_every_job_and_stats(http: httpx.AsyncClient, login: Login) -> None:
    alice, root = await login("alice"), await login("root", admin=True)
    made = await http.post("/jobs", json={"task": "echo", "args": {}}, headers=alice.headers)
    job_id = made.json()["id"]
    assert (await http.get(f"/jobs/{job_id}", headers=root.headers)).status_code == 200
    listed = (await http.get("/jobs", headers=root.headers)).json()["items"]
    assert [j["id"] for j in listed] == [job_id]
    assert (await http.get("/stats", headers=alice.headers)).status_code == 403
    stats = (await http.get("/stats", headers=root.headers)).json()
    assert stats["queues"][0]["queue"] == "default"
    assert stats["queues"][0]["states"]["queued"] == 1
    cancelled = await http.post(f"/jobs/{job_id}/cancel", headers=root.headers)
    assert cancelled.json()["state"] == "cancelled"


@pytest.fixture
def tight(app: FastAPI, api_settings: Settings) -> Settings:
    limited = api_settings.model_copy(
        update={"submit_rate_per_minute": 1, "submit_burst": 3, "max_unfinished_jobs_per_user": 100}
    )
    app.dependency_overrides[get_settings] = lambda: limited
    return limited


async def test_submit_rate_limit_is_429_with_retry_after(
    http: httpx.AsyncClient, login: Login, tight: Settings
) -> None:
    alice, bob = await login("alice"), await login("bob")
    body = {"task": "echo", "args": {}}
    codes = [
        (await http.post("/jobs", json=body, headers=alice.headers)).status_code for _ in range(4)
    ]
    assert codes == [201, 201, 201, 429]
    limited = await http.post("/jobs", json=body, headers=alice.headers)
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Another user has a bucket of their own.
    assert (await http.post("/jobs", json=body, headers=bob.headers)).status_code == 201


async def test_unfinished_jobs_are_capped_per_user(
    http: httpx.AsyncClient,
    login: Login,
    app: FastAPI,
    api_settings: Settings,
    pool: Pool,
    settings: Settings,
) -> None:
    capped = api_settings.model_copy(update={"max_unfinished_jobs_per_user": 2})
    app.dependency_overrides[get_settings] = lambda: capped
    alice = await login("alice")
    body = {"task": "echo", "args": {}}
    codes = [
        (await http.post("/jobs", json=body, headers=alice.headers)).status_code for _ in range(3)
    ]
    assert codes == [201, 201, 429]
    await drain(pool, settings=settings)  # finished jobs no longer count
    assert (await http.post("/jobs", json=body, headers=alice.headers)).status_code == 201


async def test_stats_counts_are_capped_and_throughput_is_reported(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    root = await login("root", admin=True)
    for _ in range(2):
        await http.post("/jobs", json={"task": "echo", "args": {}}, headers=root.headers)
    await drain(pool, settings=settings)
    stats = (await http.get("/stats", headers=root.headers)).json()
    assert stats["queues"][0]["states"]["succeeded"] == 2
    assert stats["queues"][0]["capped"] == []
    assert sum(row["succeeded"] for row in stats["throughput"]) == 2
