"""POST /jobs/bulk: a dry run counts, a real run acts in batches, users touch only their own
jobs and admins everyone's, each call leaves an audit row, and bad bodies are 422s."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from jobrunner.api import bulk_routes
from jobrunner.db.pool import Pool
from tests.support.api import Account, Login
from tests.support.bulk import count_jobs, insert_jobs


@pytest.fixture
async def alice(login: Login) -> Account:
    return await login("alice")


async def _bulk(http: httpx.AsyncClient, who: Account, **body: Any) -> Any:
    answer = await http.post("/jobs/bulk", json=body, headers=who.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_a_dry_run_counts_then_a_cancel_acts_on_more_than_one_batch(
    http: httpx.AsyncClient, alice: Account, pool: Pool
) -> None:
    await insert_jobs(pool, 2500, owner="alice", tags=["nightly"])
    await insert_jobs(pool, 7, owner="alice", tags=["other"])
    await insert_jobs(pool, 3, owner="alice", state="succeeded", tags=["nightly"])
    query = {"action": "cancel", "filter": {"tags": ["nightly"]}}

    dry = await _bulk(http, alice, **query, dry_run=True)
    assert dry["jobs"] == 2500 and dry["dry_run"] and dry["complete"]
    assert await count_jobs(pool, owner="alice", state="queued") == 2507

    done = await _bulk(http, alice, **query)
    assert done["jobs"] == 2500 and done["complete"] and done["next_cursor"] is None
    assert await count_jobs(pool, owner="alice", state="cancelled") == 2500
    assert await count_jobs(pool, owner="alice", state="queued") == 7
    assert await count_jobs(pool, owner="alice", state="succeeded") == 3


async def test_users_touch_only_their_own_jobs_and_admins_every_users(
    http: httpx.AsyncClient, alice: Account, login: Login, pool: Pool
) -> None:
    bob = await login("bob")
    admin = await login("root", admin=True)
    await insert_jobs(pool, 5, owner="alice", state="failed")
    await insert_jobs(pool, 4, owner="bob", state="failed")

    mine = await _bulk(http, alice, action="retry", filter={"state": "failed"})
    assert mine["jobs"] == 5
    assert await count_jobs(pool, owner="bob", state="failed") == 4
    assert (await _bulk(http, bob, action="delete", filter={}, dry_run=True))["jobs"] == 4

    everyone = await _bulk(http, admin, action="delete", filter={"state": "failed"})
    assert everyone["jobs"] == 4  # alice's are queued again: not finished, not deleted
    assert await count_jobs(pool, owner="bob", state="failed") == 0
    assert await count_jobs(pool, owner="alice", state="queued") == 5


async def test_a_running_job_is_asked_to_stop_as_a_single_cancel_does(
    http: httpx.AsyncClient, alice: Account, pool: Pool
) -> None:
    await insert_jobs(pool, 2, owner="alice", state="running")
    await _bulk(http, alice, action="cancel", filter={"state": "running"})
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT state, cancel_requested_at FROM jobrunner.jobs")
    assert [r["state"] for r in rows] == ["running", "running"]
    assert all(r["cancel_requested_at"] is not None for r in rows)


async def test_retry_and_delete_touch_only_the_states_they_apply_to(
    http: httpx.AsyncClient, alice: Account, pool: Pool
) -> None:
    for state in ("queued", "running", "succeeded", "failed", "cancelled"):
        await insert_jobs(pool, 2, owner="alice", state=state)
    assert (await _bulk(http, alice, action="retry", filter={}))["jobs"] == 4
    assert await count_jobs(pool, owner="alice", state="queued") == 6
    assert (await _bulk(http, alice, action="delete", filter={}))["jobs"] == 2  # succeeded
    assert (await _bulk(http, alice, action="retry", filter={"state": "queued"}))["jobs"] == 0


async def test_a_parent_with_an_unfinished_child_is_not_deleted(
    http: httpx.AsyncClient, alice: Account
) -> None:
    parent = (await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)).json()
    child = await http.post(
        "/jobs", json={"task": "echo", "depends_on": [parent["id"]]}, headers=alice.headers
    )
    assert child.status_code == 201, child.text
    await _bulk(http, alice, action="cancel", filter={"state": "queued"})
    # The parent's cancel cancelled its waiting child too (as a single cancel does) ...
    gone = await http.get(f"/jobs/{child.json()['id']}", headers=alice.headers)
    assert gone.json()["state"] == "cancelled"
    # ... and both, finished now, can go.
    assert (await _bulk(http, alice, action="delete", filter={}))["jobs"] == 2


async def test_args_filters_and_a_continuation_past_the_per_call_cap(
    http: httpx.AsyncClient, alice: Account, pool: Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_routes, "MAX_JOBS_PER_CALL", 1500)
    await insert_jobs(pool, 2000, owner="alice", state="failed")
    only = await _bulk(http, alice, action="delete", filter={"args": {"n": 7}})
    assert only["jobs"] == 1

    first = await _bulk(http, alice, action="delete", filter={"state": "failed"})
    assert first["jobs"] == 1500 and not first["complete"]
    assert first["stopped_by"] == "max_jobs" and first["next_cursor"] is not None
    rest = await _bulk(
        http, alice, action="delete", filter={"state": "failed"}, cursor=first["next_cursor"]
    )
    assert rest["jobs"] == 499 and rest["complete"]


async def test_every_call_is_audited(
    http: httpx.AsyncClient, alice: Account, login: Login, pool: Pool
) -> None:
    admin = await login("root", admin=True)
    await insert_jobs(pool, 3, owner="alice", tags=["t"])
    await _bulk(http, alice, action="cancel", filter={"tags": ["t"]}, dry_run=True)
    await _bulk(http, admin, action="cancel", filter={"tags": ["t"], "queue": "default"})
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT actor, action, dry_run, filter, jobs, complete, at IS NOT NULL AS dated"
            " FROM jobrunner.bulk_actions ORDER BY id"
        )
    audit = [{**dict(r), "filter": json.loads(r["filter"])} for r in rows]
    assert audit == [
        {"actor": "alice", "action": "cancel", "dry_run": True, "jobs": 3, "complete": True,
         "filter": {"owner": "alice", "tags": ["t"]}, "dated": True},
        {"actor": "root", "action": "cancel", "dry_run": False, "jobs": 3, "complete": True,
         "filter": {"queue": "default", "tags": ["t"]}, "dated": True},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"action": "explode", "filter": {}},
        {"action": "cancel", "filter": {"args": [1]}},
        {"action": "cancel", "filter": {"args": {"a": {"b": {"c": {"d": {"e": 1}}}}}}},
        {"action": "cancel", "filter": {"tags": ["has space"]}},
        {"action": "cancel", "filter": {"state": "bored"}},
        {"action": "cancel", "filter": {"owner": "bob"}},
        {"action": "cancel", "cursor": "not-an-id"},
        {"filter": {}},
    ],
)
async def test_bad_bodies_are_422s(
    http: httpx.AsyncClient, alice: Account, body: dict[str, Any]
) -> None:
    answer = await http.post("/jobs/bulk", json=body, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["status"] == 422
