"""POST /jobs answered by the direct path (api.direct_submit) and by the FastAPI route must be
the same answer. Each case is sent twice: once as it comes, once with a dependency override
in place, which makes the direct path stand aside."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobrunner import accounts, queues
from jobrunner.api.deps import get_settings
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import Login

VOLATILE = {"id", "run_at", "created_at"}  # differ between any two submissions
HEADERS_COMPARED = ("content-type", "www-authenticate", "retry-after")


def _answer(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if response.status_code == 201:
        assert response.headers["location"] == f"/jobs/{body['id']}"
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    headers = {name: response.headers.get(name) for name in HEADERS_COMPARED}
    return {"status": response.status_code, "body": body, "headers": headers}


class Paths:
    def __init__(self, app: FastAPI, http: httpx.AsyncClient, settings: Settings) -> None:
        self.app, self.http, self.settings = app, http, settings

    @property
    def served_directly(self) -> int:
        served: int = self.app.state.direct_submit.served
        return served

    async def direct(self, **request: Any) -> httpx.Response:
        return await self.http.post("/jobs", **request)

    async def route(self, **request: Any) -> httpx.Response:
        self.app.dependency_overrides[get_settings] = lambda: self.settings
        try:
            return await self.http.post("/jobs", **request)
        finally:
            self.app.dependency_overrides.clear()


@pytest.fixture
def paths(app: FastAPI, http: httpx.AsyncClient, api_settings: Settings) -> Iterator[Paths]:
    yield Paths(app, http, api_settings)


GOOD = {"task": "square_sum", "args": {"data": [1, 2, 3]}}
CASES: dict[str, dict[str, Any]] = {
    "plain": GOOD,
    "every option": {
        **GOOD,
        "queue": "reports",
        "priority": 7,
        "delay_seconds": 30,
        "max_attempts": 4,
        "timeout_seconds": 12.5,
    },
    "run_at in the past": {**GOOD, "run_at": "2020-01-01T00:00:00Z"},
    "unknown task": {"task": "no.such.task"},
    "arguments the task refuses": {"task": "square_sum", "args": {"data": "seven"}},
    "jobrunner's own task": {"task": "jobrunner.webhook", "args": {}},
    "callback to a private address": {**GOOD, "callback_url": "http://10.1.2.3/hook"},
    "a queue no worker serves": {**GOOD, "queue": "nowhere"},
    "a queue not opened to the user": {**GOOD, "queue": "secret"},
    "the webhook delivery queue": {**GOOD, "queue": "webhooks"},
    "a priority above the user's highest": {**GOOD, "priority": 8},
}


@pytest.mark.parametrize("body", CASES.values(), ids=CASES.keys())
async def test_both_paths_answer_alike(
    paths: Paths, login: Login, pool: Pool, body: dict[str, Any]
) -> None:
    alice = await login("alice")
    async with pool.acquire() as conn:  # for "every option": its queue, and priority 7
        await queues.grant(conn, "reports", "alice", by="test")
        await accounts.set_max_priority(conn, "alice", 7)
    before = paths.served_directly
    direct = await paths.direct(json=body, headers=alice.headers)
    assert paths.served_directly == before + 1  # this one did take the direct path
    route = await paths.route(json=body, headers=alice.headers)
    assert paths.served_directly == before + 1
    assert _answer(direct) == _answer(route), direct.text


BAD_TOKENS = {
    "garbage": {"Authorization": "Bearer not.a.token"},
    "another scheme": {"Authorization": "Basic YWxpY2U6cHc="},
}


@pytest.mark.parametrize("headers", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_bad_tokens_are_refused_alike(paths: Paths, headers: dict[str, str]) -> None:
    direct = await paths.direct(json=GOOD, headers=headers)
    route = await paths.route(json=GOOD, headers=headers)
    assert direct.status_code == 401
    assert _answer(direct) == _answer(route)


async def test_an_ended_session_is_refused_alike(paths: Paths, login: Login) -> None:
    alice = await login("alice")
    assert (await paths.direct(json=GOOD, headers=alice.headers)).status_code == 201
    assert (await paths.http.post("/auth/logout", headers=alice.headers)).status_code == 204
    direct = await paths.direct(json=GOOD, headers=alice.headers)
    route = await paths.route(json=GOOD, headers=alice.headers)
    assert direct.status_code == 401
    assert _answer(direct) == _answer(route)


OFF_THE_DIRECT_PATH = {
    "a body that does not validate": {"json": {**GOOD, "priority": "high"}},
    "not JSON": {"content": b"task=square_sum", "headers_extra": {"Content-Type": "text/plain"}},
    "an Idempotency-Key": {"json": GOOD, "headers_extra": {"Idempotency-Key": "k-1"}},
}


@pytest.mark.parametrize("case", OFF_THE_DIRECT_PATH.values(), ids=OFF_THE_DIRECT_PATH.keys())
async def test_what_the_direct_path_cannot_answer_reaches_the_route(
    paths: Paths, login: Login, case: dict[str, Any]
) -> None:
    alice = await login("alice")
    request = {k: v for k, v in case.items() if k != "headers_extra"}
    headers = {**alice.headers, **case.get("headers_extra", {})}
    before = paths.served_directly
    answer = await paths.direct(**request, headers=headers)
    assert paths.served_directly == before
    assert answer.status_code in (201, 422), answer.text


async def test_a_missing_token_reaches_the_route(paths: Paths) -> None:
    answer = await paths.direct(json=GOOD)
    assert paths.served_directly == 0
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={"submit_rate_per_minute": 60, "submit_burst": 2})


async def test_an_empty_rate_bucket_is_answered_alike(paths: Paths, login: Login) -> None:
    alice = await login("alice")
    codes = [(await paths.direct(json=GOOD, headers=alice.headers)).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    direct = await paths.direct(json=GOOD, headers=alice.headers)
    route = await paths.route(json=GOOD, headers=alice.headers)
    assert _answer(direct) == _answer(route)
    assert direct.headers["retry-after"] == "1"
