"""Queue controls over HTTP: GET /queues, PUT /queues/{name}, pause and resume, grants."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from jobrunner import client
from jobrunner.db.pool import Pool
from tests.support.api import Login
from tests.support.waiting import rang_nothing


async def _row(pool: Pool, name: str) -> dict[str, Any] | None:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM jobrunner.queues WHERE name = $1", name)
    return dict(row) if row is not None else None


async def test_an_admin_sets_controls_and_null_clears_a_limit(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root = await login("root", admin=True)
    body = {
        "max_running": 20,
        "max_running_per_owner": 5,
        "rate_limit": 100,
        "rate_per": "minute",
        "open_to_all": True,
    }
    made = await http.put("/queues/emails", json=body, headers=root.headers)
    assert made.status_code == 200, made.text
    shown = made.json()
    assert {k: shown[k] for k in body} == body
    assert shown["paused"] is False and shown["rate_period_seconds"] == 60.0
    assert shown["updated_by"] == "root"
    row = await _row(pool, "emails")
    assert row is not None and row["max_running"] == 20 and row["updated_by"] == "root"
    assert row["rate_period"].total_seconds() == 60

    # Only what is given changes; null removes a limit.
    changed = await http.put(
        "/queues/emails", json={"max_running": None, "rate_limit": None}, headers=root.headers
    )
    assert changed.status_code == 200, changed.text
    now = changed.json()
    assert now["max_running"] is None and now["rate_limit"] is None and now["rate_per"] is None
    assert now["max_running_per_owner"] == 5 and now["open_to_all"] is True
    row = await _row(pool, "emails")
    assert row is not None and row["rate_period"] is None and row["max_running_per_owner"] == 5


@pytest.mark.parametrize(
    "body",
    [
        {"max_running": -1},
        {"max_running_per_owner": 0},
        {"rate_limit": 0, "rate_per": "second"},
        {"rate_limit": 10},  # without its period
        {"rate_per": "minute"},  # a period without a rate
        {"rate_limit": 10, "rate_per": "hour"},
        {"max_running": "5"},
        {"max_running": 10**12},
        {"paused": "yes"},
        {"colour": "blue"},
    ],
)
async def test_bad_controls_are_422_json_and_write_nothing(
    http: httpx.AsyncClient, login: Login, pool: Pool, body: dict[str, Any]
) -> None:
    root = await login("root", admin=True)
    answer = await http.put("/queues/emails", json=body, headers=root.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["errors"]
    assert await _row(pool, "emails") is None


async def test_a_bad_queue_name_is_422_and_users_may_not_change_queues(
    http: httpx.AsyncClient, login: Login
) -> None:
    root, alice = await login("root", admin=True), await login("alice")
    bad = await http.put("/queues/" + "x" * 129, json={}, headers=root.headers)
    assert bad.status_code == 422
    for method, path, body in [
        ("PUT", "/queues/default", {"paused": True}),
        ("POST", "/queues/default/pause", None),
        ("POST", "/queues/default/resume", None),
        ("PUT", "/queues/default/users/alice", None),
        ("DELETE", "/queues/default/users/alice", None),
        ("PUT", "/admin/users/alice/max-priority", {"max_priority": 50}),
    ]:
        answer = await http.request(method, path, json=body, headers=alice.headers)
        assert answer.status_code == 403, (method, path)
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_pause_and_resume_record_who_and_resume_rings_the_doorbell(
    http: httpx.AsyncClient, login: Login, pool: Pool, rung: asyncio.Queue[str]
) -> None:
    root = await login("root", admin=True)
    paused = await http.post("/queues/reports/pause", headers=root.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["paused_at"] is not None
    row = await _row(pool, "reports")
    assert row is not None and row["paused_at"] is not None and row["updated_by"] == "root"
    # Pausing lets nothing start: no ring. Pausing again keeps the first pause's time.
    again = await http.post("/queues/reports/pause", headers=root.headers)
    assert again.json()["paused_at"] == paused.json()["paused_at"]
    assert await rang_nothing(pool, rung)

    resumed = await http.post("/queues/reports/resume", headers=root.headers)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert await asyncio.wait_for(rung.get(), timeout=5) == "reports"
    # A change that may let more jobs start rings too.
    await http.put("/queues/reports", json={"max_running": 50}, headers=root.headers)
    assert await asyncio.wait_for(rung.get(), timeout=5) == "reports"


async def test_get_queues_lists_controls_and_counts_for_admins(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root = await login("root", admin=True)
    async with pool.acquire() as conn:
        for _ in range(3):
            await client.enqueue("echo", {}, conn=conn)
        await client.enqueue("echo", {}, conn=conn, queue="later", delay=3600)
    await http.post("/queues/idle/pause", headers=root.headers)
    listed = await http.get("/queues", headers=root.headers)
    assert listed.status_code == 200, listed.text
    by_name = {q["name"]: q for q in listed.json()}
    # Every queue with a row (default is seeded, idle was paused) or with jobs (later).
    assert set(by_name) == {"default", "idle", "later"}
    assert by_name["default"]["counts"] == {
        "waiting": 0,
        "scheduled": 0,
        "queued": 3,
        "running": 0,
        "retrying": 0,
    }
    assert by_name["default"]["open_to_all"] is True and by_name["default"]["capped"] == []
    assert by_name["later"]["counts"]["scheduled"] == 1
    assert by_name["later"]["open_to_all"] is False and by_name["later"]["updated_at"] is None
    assert by_name["idle"]["paused"] is True


async def test_users_see_the_queues_open_to_them_with_their_own_counts(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root, alice, bob = await login("root", admin=True), await login("alice"), await login("bob")
    await http.put("/queues/reports", json={"max_running": 3}, headers=root.headers)
    await http.put("/queues/private", json={}, headers=root.headers)
    granted = await http.put("/queues/reports/users/alice", headers=root.headers)
    assert granted.status_code == 200 and granted.json()["granted_to"] == ["alice"]
    # The delivery queue stays out of a user's list even if opened to them.
    await http.put("/queues/webhooks", json={"open_to_all": True}, headers=root.headers)
    await http.post("/jobs", json={"task": "echo", "queue": "reports"}, headers=alice.headers)
    await http.post("/jobs", json={"task": "echo"}, headers=bob.headers)

    mine = (await http.get("/queues", headers=alice.headers)).json()
    assert [q["name"] for q in mine] == ["default", "reports"]
    reports = mine[1]
    assert reports["max_running"] == 3 and reports["counts"]["queued"] == 1
    assert reports["granted_to"] == [] and reports["updated_by"] is None
    assert mine[0]["counts"]["queued"] == 0  # bob's job is not alice's to count
    theirs = (await http.get("/queues", headers=bob.headers)).json()
    assert [q["name"] for q in theirs] == ["default"]


async def test_grants_need_a_user_and_revoking_closes_the_queue(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    root, alice = await login("root", admin=True), await login("alice")
    nobody = await http.put("/queues/reports/users/nobody", headers=root.headers)
    assert nobody.status_code == 404
    assert await _row(pool, "reports") is None  # nothing written for a user that is not
    assert (await http.put("/queues/reports/users/alice", headers=root.headers)).status_code == 200
    row = await _row(pool, "reports")
    assert row is not None and row["open_to_all"] is False and row["max_running"] is None
    revoked = await http.delete("/queues/reports/users/alice", headers=root.headers)
    assert revoked.status_code == 204
    again = await http.delete("/queues/reports/users/alice", headers=root.headers)
    assert again.status_code == 404 and "not opened to" in again.json()["detail"]
    listed = (await http.get("/queues", headers=alice.headers)).json()
    assert [q["name"] for q in listed] == ["default"]


async def test_an_admin_sets_a_users_highest_priority(
    http: httpx.AsyncClient, login: Login
) -> None:
    root, _ = await login("root", admin=True), await login("alice")
    set_ = await http.put(
        "/admin/users/alice/max-priority", json={"max_priority": 10}, headers=root.headers
    )
    assert set_.status_code == 200, set_.text
    assert set_.json()["max_priority"] == 10
    users = (await http.get("/admin/users", headers=root.headers)).json()
    assert {u["username"]: u["max_priority"] for u in users} == {"root": 0, "alice": 10}
    for bad in ({"max_priority": 101}, {"max_priority": "5"}, {}):
        answer = await http.put("/admin/users/alice/max-priority", json=bad, headers=root.headers)
        assert answer.status_code == 422
    missing = await http.put(
        "/admin/users/nobody/max-priority", json={"max_priority": 1}, headers=root.headers
    )
    assert missing.status_code == 404
