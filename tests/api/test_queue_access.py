"""Who may submit where: every submit path refuses a queue not open to the user, the delivery
queue, and a priority above theirs with a 403 naming the queue, and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobrunner import accounts, queues
from jobrunner.api.deps import get_settings
from jobrunner.db.pool import Pool
from jobrunner.models import QueueChanges
from jobrunner.settings import Settings
from tests.support.api import Account, Login
from tests.support.waiting import wait_for

Post = Callable[[Account, dict[str, Any]], Awaitable[httpx.Response]]


async def _jobs_in(pool: Pool, queue: str) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM jobrunner.jobs WHERE queue = $1", queue
        )
    return count


def _refused(answer: httpx.Response, queue: str) -> bool:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert repr(queue) in answer.json()["detail"]
    return True


@pytest.fixture(params=["direct", "route", "idempotent"])
def post(request: pytest.FixtureRequest, app: FastAPI, http: httpx.AsyncClient) -> Post:
    """A submission on one road: the direct path (plain JSON), the FastAPI route (made to
    stand aside by a dependency override), or the route with an Idempotency-Key."""
    settings: Settings = app.state.settings
    road = request.param
    served = iter(range(1, 1_000_000))

    async def send(who: Account, body: dict[str, Any]) -> httpx.Response:
        headers = dict(who.headers)
        if road == "route":
            app.dependency_overrides[get_settings] = lambda: settings
        if road == "idempotent":
            headers["Idempotency-Key"] = f"key-{next(served)}"
        before = app.state.direct_submit.served
        try:
            return await http.post("/jobs", json=body, headers=headers)
        finally:
            app.dependency_overrides.clear()
            took_direct = app.state.direct_submit.served > before
            assert took_direct == (road == "direct")

    return send


async def test_a_queue_not_open_to_a_user_is_403_and_writes_nothing(
    post: Post, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    assert _refused(await post(alice, {"task": "echo", "queue": "reports"}), "reports")
    # A task's own queue counts as much as one asked for.
    assert _refused(await post(alice, {"task": "test.with_defaults"}), "defaults-q")
    assert await _jobs_in(pool, "reports") == await _jobs_in(pool, "defaults-q") == 0
    assert (await post(alice, {"task": "echo"})).status_code == 201  # default is open to all


async def test_a_grant_or_open_to_all_opens_a_queue_at_once(
    post: Post, login: Login, pool: Pool
) -> None:
    alice, bob = await login("alice"), await login("bob")
    async with pool.acquire() as conn:
        await queues.grant(conn, "reports", "alice", by="test")
    # The process's rules are a second old at most, and re-read before refusing.
    assert (await post(alice, {"task": "echo", "queue": "reports"})).status_code == 201
    assert _refused(await post(bob, {"task": "echo", "queue": "reports"}), "reports")
    async with pool.acquire() as conn:
        await queues.change(conn, "reports", QueueChanges(open_to_all=True), by="test")
    assert (await post(bob, {"task": "echo", "queue": "reports"})).status_code == 201
    assert await _jobs_in(pool, "reports") == 2


async def test_the_delivery_queue_is_reserved_even_when_opened(
    post: Post, login: Login, pool: Pool
) -> None:
    alice, root = await login("alice"), await login("root", admin=True)
    async with pool.acquire() as conn:
        await queues.change(conn, "webhooks", QueueChanges(open_to_all=True), by="test")
        await queues.grant(conn, "webhooks", "alice", by="test")
    answer = await post(alice, {"task": "echo", "queue": "webhooks"})
    assert _refused(answer, "webhooks") and "reserved" in answer.json()["detail"]
    assert await _jobs_in(pool, "webhooks") == 0
    assert (await post(root, {"task": "echo", "queue": "webhooks"})).status_code == 201


async def test_a_priority_above_the_users_highest_is_403(
    post: Post, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    answer = await post(alice, {"task": "echo", "priority": 1})
    assert _refused(answer, "default") and "priority 1" in answer.json()["detail"]
    assert (await post(alice, {"task": "echo", "priority": -5})).status_code == 201
    assert (await post(alice, {"task": "echo", "priority": 0})).status_code == 201
    async with pool.acquire() as conn:
        await accounts.set_max_priority(conn, "alice", 5)
    assert (await post(alice, {"task": "echo", "priority": 5})).status_code == 201
    assert _refused(await post(alice, {"task": "echo", "priority": 6}), "default")
    # A task's own priority is its deployer's choice, not the submitter's: not refused.
    async with pool.acquire() as conn:
        await accounts.set_max_priority(conn, "alice", 0)
        await queues.grant(conn, "defaults-q", "alice", by="test")
    made = await post(alice, {"task": "test.with_defaults"})
    assert made.status_code == 201 and made.json()["priority"] == 7
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT max(priority) FROM jobrunner.jobs") == 7


async def test_admins_submit_anywhere_with_any_priority(
    post: Post, login: Login, pool: Pool
) -> None:
    root = await login("root", admin=True)
    made = await post(root, {"task": "echo", "queue": "ops-only", "priority": 100})
    assert made.status_code == 201, made.text
    assert made.json()["queue"] == "ops-only" and made.json()["priority"] == 100


async def test_batched_submissions_are_refused_one_by_one(
    http: httpx.AsyncClient, login: Login, pool: Pool, app: FastAPI
) -> None:
    """Submissions in flight together are written in one statement (api.submit_batch): a
    refused one fails alone, before the batch, and the others are written."""
    alice, bob = await login("alice"), await login("bob")
    async with pool.acquire() as conn:
        await queues.grant(conn, "reports", "alice", by="test")
    bodies = [(alice, "reports"), (bob, "reports"), (alice, "default"), (bob, "secret")] * 5
    answers = await asyncio.gather(
        *(
            http.post("/jobs", json={"task": "echo", "queue": q}, headers=who.headers)
            for who, q in bodies
        )
    )
    codes = [(who.username, q, a.status_code) for (who, q), a in zip(bodies, answers, strict=True)]
    expected = {("alice", "reports"): 201, ("bob", "reports"): 403, ("alice", "default"): 201}
    assert all(code == expected.get((who, q), 403) for who, q, code in codes), codes
    assert await _jobs_in(pool, "reports") == 5 and await _jobs_in(pool, "secret") == 0
    assert app.state.direct_submit.served == len(bodies)


async def test_a_revoked_grant_is_obeyed_within_a_second_or_so(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    async with pool.acquire() as conn:
        await queues.grant(conn, "reports", "alice", by="test")
    body = {"task": "echo", "queue": "reports"}
    assert (await http.post("/jobs", json=body, headers=alice.headers)).status_code == 201
    async with pool.acquire() as conn:
        await queues.revoke(conn, "reports", "alice")

    async def refused() -> bool:
        answer = await http.post("/jobs", json=body, headers=alice.headers)
        return answer.status_code == 403

    await wait_for(refused, timeout=5, interval=0.2, what="the revoked grant refused")
