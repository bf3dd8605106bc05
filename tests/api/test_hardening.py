"""Issue 14: what a hostile user could do, each attack replayed over HTTP and shown harmless."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from jobrunner import client
from jobrunner.api.app import create_app
from jobrunner.api.deps import get_settings
from jobrunner.api.limits import ADDRESS_LOGIN_FACTOR
from jobrunner.db.pool import Pool
from jobrunner.models import QueueCounts
from jobrunner.settings import Settings
from tests.support.api import PASSWORD, Login


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests come from `address` (the peer the server sees)."""
    transport = httpx.ASGITransport(app=app, client=(address, 4321))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_an_attacker_cannot_lock_an_owner_out(
    app: FastAPI, login: Login, api_settings: Settings
) -> None:
    strict = api_settings.model_copy(update={"login_attempts_per_minute": 2})
    app.dependency_overrides[get_settings] = lambda: strict
    await login("victim")
    answers: list[tuple[int, str]] = []
    async with client_at(app, "203.0.113.66") as attacker:
        wrong = {"username": "victim", "password": "guess-guess"}
        # Until the attacker's address is spent (it refills while argon2 runs, so the number
        # of attempts that takes is not exact on a slow machine).
        while len(answers) < 10 * ADDRESS_LOGIN_FACTOR:
            answer = await attacker.post("/auth/token", json=wrong)
            answers.append((answer.status_code, answer.json()["detail"]))
            if "address" in answers[-1][1]:
                break
    assert [status for status, _ in answers[:3]] == [401, 401, 429]  # the account's bucket
    assert answers[-1][0] == 429 and "address" in answers[-1][1]  # then the address's
    async with client_at(app, "198.51.100.7") as owner:
        right = {"username": "victim", "password": PASSWORD}
        answer = await owner.post("/auth/token", json=right)
    assert answer.status_code == 200, answer.text


async def _submit_later(http: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    body = {"task": "echo", "args": {}, "delay_seconds": 3600}  # unfinished for an hour
    return await http.post("/jobs", json=body, headers=headers)


async def test_retries_cannot_pass_the_unfinished_jobs_cap(
    http: httpx.AsyncClient, app: FastAPI, login: Login, api_settings: Settings, pool: Pool
) -> None:
    capped = api_settings.model_copy(update={"max_unfinished_jobs_per_user": 3})
    app.dependency_overrides[get_settings] = lambda: capped
    alice = await login("alice")
    first = [(await _submit_later(http, alice.headers)).json()["id"] for _ in range(3)]
    for job_id in first:
        cancelled = await http.post(f"/jobs/{job_id}/cancel", headers=alice.headers)
        assert cancelled.status_code == 200
    again = [(await _submit_later(http, alice.headers)).status_code for _ in range(3)]
    assert again == [201, 201, 201]  # cancelled jobs no longer count
    retried = [await http.post(f"/jobs/{job_id}/retry", headers=alice.headers) for job_id in first]
    assert {answer.status_code for answer in retried} == {429}
    assert all(int(answer.headers["Retry-After"]) >= 1 for answer in retried)
    unfinished = await pool.fetchval(
        "SELECT count(*) FROM jobrunner.jobs WHERE owner = 'alice'"
        " AND state NOT IN ('succeeded', 'failed', 'cancelled')"
    )
    assert unfinished == 3


async def test_a_retry_takes_from_the_submit_bucket(
    http: httpx.AsyncClient, app: FastAPI, login: Login, api_settings: Settings
) -> None:
    tight = api_settings.model_copy(update={"submit_burst": 2, "submit_rate_per_minute": 1})
    app.dependency_overrides[get_settings] = lambda: tight
    bob = await login("bob")
    made = [await _submit_later(http, bob.headers) for _ in range(2)]
    assert [answer.status_code for answer in made] == [201, 201]
    job_id = made[0].json()["id"]
    assert (await http.post(f"/jobs/{job_id}/cancel", headers=bob.headers)).status_code == 200
    retried = await http.post(f"/jobs/{job_id}/retry", headers=bob.headers)
    assert retried.status_code == 429, retried.text
    assert "submissions" in retried.json()["detail"]
    assert int(retried.headers["Retry-After"]) >= 1


async def _login_statuses(
    http: httpx.AsyncClient, forwarded: list[str], who: str = "nobody"
) -> list[int]:
    statuses = []
    for n, hop in enumerate(forwarded):  # a different account each time: only addresses repeat
        answer = await http.post(
            "/auth/token",
            json={"username": f"{who}{n}", "password": "x"},
            headers={"X-Forwarded-For": hop},
        )
        statuses.append(answer.status_code)
    return statuses


async def test_a_spoofed_forwarded_for_does_not_change_the_bucket(
    http: httpx.AsyncClient, app: FastAPI, api_settings: Settings
) -> None:
    strict = api_settings.model_copy(update={"login_attempts_per_minute": 1})
    app.dependency_overrides[get_settings] = lambda: strict
    spoofed = [f"198.51.100.{n}" for n in range(ADDRESS_LOGIN_FACTOR + 1)]
    # Even from loopback (uvicorn's default trusts it), no proxy is trusted by default.
    async with client_at(app, "127.0.0.1") as local:
        statuses = await _login_statuses(local, spoofed)
    assert statuses == [401] * ADDRESS_LOGIN_FACTOR + [429]


async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_pays(
    api_settings: Settings,
) -> None:
    behind = api_settings.model_copy(
        update={"login_attempts_per_minute": 1, "trusted_proxies": ["10.0.0.0/8"]}
    )
    app = create_app(behind)
    async with app.router.lifespan_context(app), client_at(app, "10.0.0.2") as proxy:
        # The client writes any left part it likes; the proxy appends what it saw.
        spoofed = [f"192.0.2.{n}, 203.0.113.50" for n in range(ADDRESS_LOGIN_FACTOR + 1)]
        assert await _login_statuses(proxy, spoofed) == [401] * ADDRESS_LOGIN_FACTOR + [429]
        # Another real client behind the same proxy has a bucket of its own.
        assert await _login_statuses(proxy, ["203.0.113.51"], "other") == [401]


async def test_disguised_callback_hosts_are_422_at_submit(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    for url in ["http://2130706433/", "http://0x7f000001/", "http://[2002:7f00:1::]/"]:
        body = {"task": "echo", "args": {}, "callback_url": url}
        answer = await http.post("/jobs", json=body, headers=alice.headers)
        assert answer.status_code == 422, url
        assert answer.headers["content-type"].startswith("application/problem+json")


async def test_metrics_need_an_admin_or_the_metrics_token(
    http: httpx.AsyncClient, app: FastAPI, login: Login, api_settings: Settings
) -> None:
    user, admin = await login("alice"), await login("root", admin=True)
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=user.headers)).status_code == 403
    assert (await http.get("/metrics", headers=admin.headers)).status_code == 200
    token = "scrape-" + "s" * 40
    with_token = api_settings.model_copy(update={"metrics_token": SecretStr(token)})
    app.dependency_overrides[get_settings] = lambda: with_token
    scraper = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/metrics", headers=scraper)).status_code == 200
    wrong = {"Authorization": "Bearer scrape-" + "t" * 40}
    assert (await http.get("/metrics", headers=wrong)).status_code == 401
    public = api_settings.model_copy(update={"metrics_access": "public"})
    app.dependency_overrides[get_settings] = lambda: public
    assert (await http.get("/metrics")).status_code == 200


async def test_scrapes_share_one_computation(
    app: FastAPI, api_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = 0
    real_count_jobs = client.count_jobs

    async def counting(**kwargs: Any) -> list[QueueCounts]:
        nonlocal counted
        counted += 1
        return await real_count_jobs(**kwargs)

    monkeypatch.setattr(client, "count_jobs", counting)
    public = api_settings.model_copy(update={"metrics_access": "public"})
    app.dependency_overrides[get_settings] = lambda: public
    async with client_at(app, "10.0.0.9") as scraper:
        answers = await asyncio.gather(*(scraper.get("/metrics") for _ in range(10)))
        answers.append(await scraper.get("/metrics"))  # within the cache's few seconds
    assert {answer.status_code for answer in answers} == {200}
    assert counted == 1


async def test_user_made_queue_names_are_bounded_as_labels(
    api_settings: Settings, pool: Pool
) -> None:
    bounded = api_settings.model_copy(update={"metrics_access": "public", "metrics_max_queues": 3})
    async with pool.acquire() as conn:
        for n in range(12):
            for _ in range(n + 1):  # q11 is the busiest
                await client.enqueue("echo", {}, conn=conn, queue=f"q{n}", delay=3600)
    app = create_app(bounded)
    async with app.router.lifespan_context(app), client_at(app, "10.0.0.9") as scraper:
        text = (await scraper.get("/metrics")).text
        method = await scraper.request("BREW", "/metrics")  # a made-up method
        assert method.status_code == 405
        text = (await scraper.get("/metrics")).text + text
    depth = "jobrunner_queue_depth"
    queues = set(re.findall(depth + r'\{queue="([^"]*)"', text))
    assert queues == {"q11", "q10", "q9", "other"}
    assert 'jobrunner_queue_depth{queue="other",state="scheduled"} 45.0' in text  # 1 + ... + 9
    assert 'method="BREW"' not in text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_api_docs_load_nothing_from_elsewhere(http: httpx.AsyncClient, page: str) -> None:
    html = (await http.get(page)).text
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", html, re.IGNORECASE), html
    referenced = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert any(url.endswith(".js") for url in referenced)
    if page == "/docs":
        assert any(url.endswith(".css") for url in referenced)
        referenced.append("/docs/oauth2-redirect")
    for url in referenced:
        assert url.startswith("/"), url
        answer = await http.get(url)
        assert answer.status_code == 200, url
