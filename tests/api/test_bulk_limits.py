"""A user's bulk retry is charged as their single retries are: tokens from the submit bucket
and room under the unfinished-jobs cap; it stops where either runs out (429 if at once)."""

from __future__ import annotations

import httpx
import pytest

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import Login
from tests.support.bulk import count_jobs, insert_jobs


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    # A slow refill: the bucket holds what the test gives it, no more, while it runs.
    return api_settings.model_copy(
        update={"submit_burst": 30, "submit_rate_per_minute": 1, "max_unfinished_jobs_per_user": 25}
    )


async def test_a_bulk_retry_stops_at_the_unfinished_cap_then_is_refused(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    await insert_jobs(pool, 40, owner="alice", state="failed")
    await insert_jobs(pool, 5, owner="alice", state="queued")
    body = {"action": "retry", "filter": {"state": "failed"}}
    first = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert first.status_code == 200, first.text
    assert first.json()["jobs"] == 20 and first.json()["stopped_by"] == "allowance"
    assert await count_jobs(pool, owner="alice", state="queued") == 25
    again = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert again.status_code == 429 and "unfinished" in again.json()["detail"]


async def test_a_bulk_retry_stops_when_the_submit_bucket_runs_dry(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    await insert_jobs(pool, 40, owner="alice", state="cancelled")
    body = {"action": "retry", "filter": {}}
    async with pool.acquire() as conn:  # the bucket at 10 tokens: it refills 1 a minute
        await conn.execute(
            "INSERT INTO jobrunner.rate_buckets (key, tokens, updated_at)"
            " VALUES ('submit:alice', 10, now())"
            " ON CONFLICT (key) DO UPDATE SET tokens = 10, updated_at = now()"
        )
    first = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert first.json()["jobs"] == 10 and first.json()["stopped_by"] == "allowance"
    again = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert again.status_code == 429 and "Retry-After" in again.headers


async def test_an_admins_bulk_retry_is_not_charged(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root = await login("root", admin=True)
    await insert_jobs(pool, 40, owner="root", state="failed")
    answer = await http.post(
        "/jobs/bulk", json={"action": "retry", "filter": {}}, headers=root.headers
    )
    assert answer.json()["jobs"] == 40 and answer.json()["complete"]
