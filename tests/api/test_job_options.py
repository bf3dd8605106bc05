"""Submissions over HTTP go through the parameter maker: the task's defaults hold on both
roads (batched, and with an Idempotency-Key), and a job may choose its own retry backoff."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobrunner import queues
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from tests.support.api import Login
from tests.support.tasks import DEFAULTS_QUEUE

TASK = "test.with_defaults"
DEFAULTS = {
    "queue": DEFAULTS_QUEUE,
    "priority": 7,
    "max_attempts": 4,
    "timeout_seconds": 12.5,
    "backoff_base_seconds": 2.0,
    "backoff_cap_seconds": 30.0,
}


def _defaults_of(job: dict[str, Any]) -> dict[str, Any]:
    return {name: job[name] for name in DEFAULTS}


@pytest.mark.parametrize("idempotency_key", [None, "key-1"])
async def test_a_submission_carries_the_task_defaults(
    http: httpx.AsyncClient, login: Login, pool: Pool, idempotency_key: str | None
) -> None:
    alice = await login("alice")
    async with pool.acquire() as conn:  # users submit only to queues opened to them
        await queues.grant(conn, DEFAULTS_QUEUE, "alice", by="test")
    headers = dict(alice.headers)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    answer = await http.post("/jobs", json={"task": TASK, "args": {"n": 1}}, headers=headers)
    assert answer.status_code == 201, answer.text
    assert _defaults_of(answer.json()) == DEFAULTS
    again = await http.get(f"/jobs/{answer.json()['id']}", headers=alice.headers)
    assert _defaults_of(again.json()) == DEFAULTS


async def test_a_submission_chooses_its_backoff_and_psql_shows_it(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    body = {"task": "echo", "backoff_base_seconds": 0.5, "backoff_cap_seconds": 60}
    answer = await http.post("/jobs", json=body, headers=alice.headers)
    assert answer.status_code == 201, answer.text
    job = answer.json()
    assert (job["backoff_base_seconds"], job["backoff_cap_seconds"]) == (0.5, 60.0)
    async with pool.acquire() as conn:
        shown = await conn.fetchrow(
            "SELECT backoff_base::text, backoff_cap::text FROM jobrunner.jobs WHERE id = $1",
            job["id"],
        )
    assert shown is not None and tuple(shown) == ("00:00:00.5", "00:01:00")


@pytest.mark.parametrize(
    "backoff",
    [
        {"backoff_base_seconds": 1},  # one without the other
        {"backoff_base_seconds": 10, "backoff_cap_seconds": 5},  # base above cap
        {"backoff_base_seconds": 0, "backoff_cap_seconds": 5},
        {"backoff_base_seconds": 1, "backoff_cap_seconds": 31 * 86400},  # past the bound
        {"backoff_base_seconds": "1", "backoff_cap_seconds": 5},
    ],
)
async def test_a_bad_backoff_is_422_and_writes_nothing(
    http: httpx.AsyncClient, login: Login, pool: Pool, backoff: dict[str, Any]
) -> None:
    alice = await login("alice")
    answer = await http.post("/jobs", json={"task": "echo", **backoff}, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_users_take_turns_by_owner_and_cannot_choose_their_key(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    """Over HTTP a job's fairness key is its owner: a user who could name keys could take
    many turns. Alice's backlog then delays bob's job by at most one claim."""
    alice, bob = await login("alice"), await login("bob")
    posing = {"task": "echo", "fairness_key": "bob"}
    answer = await http.post("/jobs", json=posing, headers=alice.headers)
    assert answer.status_code == 422, answer.text  # not a field users may set
    for n in range(30):
        answer = await http.post(
            "/jobs", json={"task": "echo", "args": {"message": n}}, headers=alice.headers
        )
        assert answer.status_code == 201, answer.text
    answer = await http.post("/jobs", json={"task": "echo"}, headers=bob.headers)
    assert answer.status_code == 201, answer.text
    async with pool.acquire() as conn:
        keys = await conn.fetch(
            "SELECT owner, fairness_key, count(*) FROM jobrunner.jobs GROUP BY 1, 2 ORDER BY 1"
        )
        claimed = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=2, lease_seconds=30
        )
    assert [tuple(k) for k in keys] == [("alice", "alice", 30), ("bob", "bob", 1)]
    assert sorted(c.fairness_key for c in claimed) == ["alice", "bob"]
