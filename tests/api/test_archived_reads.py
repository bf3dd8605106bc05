"""Every read and action of the API finds a job that the archiver moved to job_history
(migration 0020) as it found it in jobs: by id, in lists and searches, in /history, in its
event stream; a retry brings it back to the live table once, a bulk delete removes it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest

from jobrunner import accounts
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.errors import JobrunnerError
from jobrunner.settings import Settings
from tests.support.api import Account, Login
from tests.support.archive import archive_now, where
from tests.support.bulk import insert_jobs


async def _get(http: httpx.AsyncClient, who: Account, url: str, **params: Any) -> Any:
    answer = await http.get(url, params=params, headers=who.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _archived(pool: Pool, settings: Settings, owner: str, state: str, n: int) -> list[UUID]:
    await insert_jobs(pool, n, owner=owner, state=state, tags=["nightly"])
    await archive_now(pool, settings)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id FROM jobrunner.job_history"
            " WHERE owner = $1 AND state = $2::jobrunner.job_state ORDER BY id",
            owner,
            state,
        )
    assert len(rows) == n
    return [r["id"] for r in rows]


async def test_an_archived_job_is_read_by_id_listed_searched_and_in_history(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice, bob = await login("alice"), await login("bob")
    ok = await _archived(pool, settings, "alice", "succeeded", 3)
    await insert_jobs(pool, 2, owner="alice", state="queued", tags=["nightly"])  # live

    job = await _get(http, alice, f"/jobs/{ok[0]}")
    assert job["state"] == "succeeded" and job["tags"] == ["nightly"]
    missing = await http.get(f"/jobs/{ok[0]}", headers=bob.headers)
    assert missing.status_code == 404  # still only its owner's

    listed = await _get(http, alice, "/jobs", state="succeeded")
    assert sorted(i["id"] for i in listed["items"]) == sorted(str(i) for i in ok)
    assert len((await _get(http, alice, "/jobs", tag="nightly"))["items"]) == 5
    assert len((await _get(http, alice, "/jobs", args='{"n": 2}'))["items"]) == 2

    history = await _get(http, alice, "/history")
    assert sorted(i["id"] for i in history["items"]) == sorted(str(i) for i in ok)
    assert len((await _get(http, alice, "/history", tag="nightly"))["items"]) == 3

    # the events stream of a finished job: its events up to the end, then it closes
    stream = await http.get(f"/jobs/{ok[1]}/events", headers=alice.headers)
    assert stream.status_code == 200 and "event: succeeded" in stream.text

    # a cancel of a finished job is a conflict, as before it was archived
    cancel = await http.post(f"/jobs/{ok[2]}/cancel", headers=alice.headers)
    assert cancel.status_code == 409, cancel.text


async def test_retrying_an_archived_job_brings_it_back_once(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    failed = await _archived(pool, settings, "alice", "failed", 3)

    answer = await http.post(f"/jobs/{failed[0]}/retry", headers=alice.headers)
    assert answer.status_code == 200 and answer.json()["state"] == "queued", answer.text
    again = await http.post(f"/jobs/{failed[0]}/retry", headers=alice.headers)
    assert again.status_code == 409, again.text

    bulk = await http.post(
        "/jobs/bulk", json={"action": "retry", "filter": {"state": "failed"}}, headers=alice.headers
    )
    assert bulk.status_code == 200 and bulk.json()["jobs"] == 2, bulk.text
    async with pool.acquire() as conn:
        for job_id in failed:
            assert await where(conn, job_id) == ["jobs"]
        states = await conn.fetch("SELECT DISTINCT state::text FROM jobrunner.all_jobs")
    assert [r["state"] for r in states] == ["queued"]


async def test_a_bulk_delete_removes_archived_jobs_too(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    await _archived(pool, settings, "alice", "succeeded", 4)
    await insert_jobs(pool, 2, owner="alice", state="succeeded")  # not archived yet
    body: dict[str, Any] = {"action": "delete", "filter": {}}
    dry = await http.post("/jobs/bulk", json={**body, "dry_run": True}, headers=alice.headers)
    assert dry.json()["jobs"] == 6, dry.text
    done = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert done.json()["jobs"] == 6, done.text
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.all_jobs") == 0


async def test_a_user_with_archived_jobs_is_not_deleted(
    login: Login, pool: Pool, settings: Settings
) -> None:
    await login("alice")
    await _archived(pool, settings, "alice", "succeeded", 1)
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0
        with pytest.raises(JobrunnerError):
            await accounts.delete_user(conn, "alice")
        assert await queries.user_owns_jobs(conn, "alice")
