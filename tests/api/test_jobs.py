from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx

from jobrunner import queues
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import Login


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def _count_jobs(pool: Pool) -> int:
    async with pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM jobrunner.jobs")
    return count


async def test_submit_run_and_read_back(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "square_sum", "args": {"data": [1, 2, 3]}}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    job = made.json()
    assert made.headers["Location"] == f"/jobs/{job['id']}"
    assert job["state"] == "queued" and job["owner"] == "alice" and job["attempt"] == 0
    status = await http.get(f"/jobs/{job['id']}/status", headers=alice.headers)
    assert status.json() == {"id": job["id"], "state": "queued"}

    await drain(pool, settings=settings)

    result = await http.get(f"/jobs/{job['id']}/result", headers=alice.headers)
    assert result.json() == {"id": job["id"], "state": "succeeded", "result": 14, "error": None}
    whole = (await http.get(f"/jobs/{job['id']}", headers=alice.headers)).json()
    assert whole["state"] == "succeeded" and whole["attempt"] == 1
    assert whole["finished_at"] is not None and whole["errors"] == []


async def test_failed_job_shows_every_attempt_and_can_be_retried(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "test.always_fail", "max_attempts": 1}, headers=alice.headers
    )
    job_id = made.json()["id"]
    await drain(pool, settings=settings)
    result = (await http.get(f"/jobs/{job_id}/result", headers=alice.headers)).json()
    assert result["state"] == "failed" and "always" in result["error"]
    whole = (await http.get(f"/jobs/{job_id}", headers=alice.headers)).json()
    assert [e["outcome"] for e in whole["errors"]] == ["failed"]
    assert "Traceback" in whole["errors"][0]["traceback"]

    retried = await http.post(f"/jobs/{job_id}/retry", headers=alice.headers)
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
    again = await http.post(f"/jobs/{job_id}/retry", headers=alice.headers)
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"


async def test_cancel_waiting_job_then_cancel_again_is_409(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs",
        json={"task": "echo", "args": {"message": "hi"}, "delay_seconds": 3600},
        headers=alice.headers,
    )
    assert made.json()["state"] == "scheduled"
    job_id = made.json()["id"]
    cancelled = await http.post(f"/jobs/{job_id}/cancel", headers=alice.headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = await http.post(f"/jobs/{job_id}/cancel", headers=alice.headers)
    assert again.status_code == 409


async def test_bad_submissions_are_422_and_leave_no_row(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    bad_bodies = [
        {"task": "no.such.task"},
        {"task": "square_sum", "args": {"data": "not a list"}},
        {"task": "square_sum", "args": {"data": [1], "extra": 1}},
        {"task": "square_sum", "args": {"data": [1]}, "unknown_field": True},
        {"task": "square_sum", "args": {"data": [1]}, "priority": 1000},
        {"task": "square_sum", "args": {"data": [1]}, "max_attempts": 0},
        {"task": "square_sum", "args": {"data": [1]}, "delay_seconds": -1},
        {
            "task": "square_sum",
            "args": {"data": [1]},
            "delay_seconds": 1,
            "run_at": "2030-01-01T00:00:00Z",
        },
        {"task": "square_sum", "args": {"data": [1]}, "run_at": "2030-01-01T00:00:00"},
        {"task": "square_sum", "args": {"data": [1]}, "callback_url": "file:///etc/passwd"},
        {"task": "square_sum", "args": {"data": [1]}, "queue": ""},
        {"task": "square_sum", "args": {"data": [1]}, "timeout_seconds": 0},
        {"task": 5},
        {"task": "echo", "priority": True},
        {"task": "echo", "max_attempts": "3"},
        {"task": "echo", "args": {"message": "nul\x00inside"}},
        {"task": "echo", "args": {"message": {"key\x00": 1}}},
        {"task": "echo", "args": {"message": _nested(40)}},
        [],
    ]
    for body in bad_bodies:
        answer = await http.post("/jobs", json=body, headers=alice.headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert await _count_jobs(pool) == 0


async def test_nan_infinity_and_broken_json_are_422(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    headers = {**alice.headers, "Content-Type": "application/json"}
    for raw in [
        b'{"task": "square_sum", "args": {"data": [NaN]}}',
        b'{"task": "echo", "args": {"message": {"deep": [Infinity]}}}',
        b'{"task": "sleep", "args": {"seconds": -Infinity}}',
        b'{"task": "echo", "args": {"message": NaN}}',
        b'{"task": "square_sum", "args": {"data": [1]}, "delay_seconds": NaN}',
        b'{"task": "echo", "args": ',
        b'{"task": "echo", "args": {"message": "\\ud800"}}',
        b"\xff\xfe",
    ]:
        answer = await http.post("/jobs", content=raw, headers=headers)
        assert answer.status_code == 422, (raw, answer.text)
    assert await _count_jobs(pool) == 0


async def test_arguments_errors_say_what_is_wrong(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    answer = await http.post(
        "/jobs", json={"task": "square_sum", "args": {"data": ["x"]}}, headers=alice.headers
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert "square_sum" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["data", 0]


async def test_arguments_are_strict_and_kept_as_sent(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    for args in ({"a": "42", "b": 1}, {"a": True, "b": 1}, {"a": 4.5, "b": 1}):
        answer = await http.post(
            "/jobs", json={"task": "test.add", "args": args}, headers=alice.headers
        )
        assert answer.status_code == 422, (args, answer.text)
    assert await _count_jobs(pool) == 0
    made = await http.post(
        "/jobs", json={"task": "square_sum", "args": {"data": [1, 2.5, 3]}}, headers=alice.headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["args"] == {"data": [1, 2.5, 3]}
    shown = await http.get(f"/jobs/{made.json()['id']}", headers=alice.headers)
    assert shown.json()["args"] == {"data": [1, 2.5, 3]}
    assert [type(x) for x in shown.json()["args"]["data"]] == [int, float, int]


async def test_bodies_over_the_cap_are_413_even_chunked(
    http: httpx.AsyncClient, login: Login, api_settings: Settings, pool: Pool
) -> None:
    alice = await login("alice")
    big = b'{"task": "echo", "args": {"message": "' + b"x" * api_settings.max_body_bytes + b'"}}'
    answer = await http.post(
        "/jobs", content=big, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = await http.post(
        "/jobs", content=chunks(), headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert await _count_jobs(pool) == 0


async def test_idempotency_key_returns_the_same_job(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    body = {"task": "echo", "args": {"message": 1}}
    headers = {**alice.headers, "Idempotency-Key": "order-42"}
    first = await http.post("/jobs", json=body, headers=headers)
    second = await http.post("/jobs", json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    changed = await http.post("/jobs", json={**body, "args": {"message": 2}}, headers=headers)
    assert changed.status_code == 409
    # Keys are per user: bob's "order-42" is his own.
    bob = await login("bob")
    his = await http.post(
        "/jobs", json=body, headers={**bob.headers, "Idempotency-Key": "order-42"}
    )
    assert his.status_code == 201 and his.json()["id"] != first.json()["id"]
    assert await _count_jobs(pool) == 2


async def test_racing_submissions_with_one_idempotency_key_make_one_job(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    body = {"task": "echo", "args": {"message": "once"}}
    headers = {**alice.headers, "Idempotency-Key": "race-1"}
    answers = await asyncio.gather(*(http.post("/jobs", json=body, headers=headers)
                                      for _ in range(8)))  # fmt: skip
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") != "true" for a in answers) == 1
    assert await _count_jobs(pool) == 1


async def test_list_pages_newest_first_and_stays_stable_under_inserts(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    ids = []
    for n in range(5):
        made = await http.post(
            "/jobs", json={"task": "echo", "args": {"message": n}}, headers=alice.headers
        )
        ids.append(made.json()["id"])
    page1 = (await http.get("/jobs?limit=2", headers=alice.headers)).json()
    assert [j["id"] for j in page1["items"]] == ids[::-1][:2]
    # New jobs arrive between pages: they must not shift the next page.
    await http.post("/jobs", json={"task": "echo", "args": {}}, headers=alice.headers)
    page2 = (
        await http.get(f"/jobs?limit=2&cursor={page1['next_cursor']}", headers=alice.headers)
    ).json()
    page3 = (
        await http.get(f"/jobs?limit=2&cursor={page2['next_cursor']}", headers=alice.headers)
    ).json()
    assert [j["id"] for j in page2["items"]] == ids[::-1][2:4]
    assert [j["id"] for j in page3["items"]] == ids[:1]
    assert page3["next_cursor"] is None
    bad = await http.get("/jobs?cursor=%%%", headers=alice.headers)
    assert bad.status_code == 422


async def test_list_filters(http: httpx.AsyncClient, login: Login, pool: Pool) -> None:
    alice = await login("alice")
    async with pool.acquire() as conn:  # users submit only to queues opened to them
        await queues.grant(conn, "slow", "alice", by="test")
    await http.post("/jobs", json={"task": "echo", "args": {}}, headers=alice.headers)
    await http.post(
        "/jobs",
        json={"task": "sleep", "args": {"seconds": 0}, "queue": "slow"},
        headers=alice.headers,
    )
    by_task = (await http.get("/jobs?task=sleep", headers=alice.headers)).json()["items"]
    assert [j["task"] for j in by_task] == ["sleep"]
    by_queue = (await http.get("/jobs?queue=default", headers=alice.headers)).json()["items"]
    assert [j["task"] for j in by_queue] == ["echo"]
    none = await http.get("/jobs?state=succeeded", headers=alice.headers)
    assert none.json()["items"] == []
    future = await http.get(
        "/jobs", params={"created_after": "2100-01-01T00:00:00Z"}, headers=alice.headers
    )
    assert future.json()["items"] == []
    assert (await http.get("/jobs?state=bogus", headers=alice.headers)).status_code == 422
    assert (await http.get("/jobs?limit=0", headers=alice.headers)).status_code == 422


async def test_history_lists_finished_jobs_with_pagination(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    for n in range(3):
        await http.post(
            "/jobs", json={"task": "echo", "args": {"message": n}}, headers=alice.headers
        )
    waiting = await http.post(
        "/jobs", json={"task": "echo", "args": {}, "delay_seconds": 3600}, headers=alice.headers
    )
    await drain(pool, settings=settings)
    page1 = (await http.get("/history?limit=2", headers=alice.headers)).json()
    page2 = (
        await http.get(f"/history?limit=2&cursor={page1['next_cursor']}", headers=alice.headers)
    ).json()
    seen = [e["id"] for e in page1["items"] + page2["items"]]
    assert len(seen) == len(set(seen)) == 3
    assert waiting.json()["id"] not in seen
    assert {e["state"] for e in page1["items"]} == {"succeeded"}
    assert page1["items"][0]["run_seconds"] is not None
    assert page2["next_cursor"] is None
    assert (await http.get("/history?state=queued", headers=alice.headers)).status_code == 422


async def test_tasks_lists_argument_schemas(http: httpx.AsyncClient, login: Login) -> None:
    alice = await login("alice")
    tasks = {t["name"]: t for t in (await http.get("/tasks", headers=alice.headers)).json()}
    assert {"square_sum", "cube_sum", "sleep", "echo"} <= set(tasks)
    assert "jobrunner.deliver_webhook" not in tasks  # internal: not for submitting
    assert tasks["square_sum"]["args_schema"]["required"] == ["data"]
    assert "14" in tasks["square_sum"]["description"]


async def test_every_job_route_needs_a_token(http: httpx.AsyncClient) -> None:
    some = uuid4()
    for method, path in [
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", f"/jobs/{some}"),
        ("GET", f"/jobs/{some}/status"),
        ("GET", f"/jobs/{some}/result"),
        ("GET", f"/jobs/{some}/events"),
        ("POST", f"/jobs/{some}/cancel"),
        ("POST", f"/jobs/{some}/retry"),
        ("GET", "/history"),
        ("GET", "/tasks"),
        ("GET", "/stats"),
        ("GET", "/auth/me"),
        ("POST", "/auth/logout"),
    ]:
        answer = await http.request(method, path, json={"task": "echo"})
        assert answer.status_code == 401, (method, path)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_health_and_readiness(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    docs = await http.get("/openapi.json")
    assert "/jobs" in docs.json()["paths"]
