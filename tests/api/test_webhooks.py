from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from jobrunner import client
from jobrunner.api import deps
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings, get_settings
from jobrunner.testing import drain
from jobrunner.webhooks import UnsafeUrl, check_address, check_url_syntax, resolve, send
from tests.support.api import Login
from tests.support.signatures import signature_valid
from tests.support.waiting import wait_for

QUEUES = ("default", "webhooks")


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answers to give, in order; then 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A tiny HTTP/1.1 server on 127.0.0.1 that records each request."""
    box: list[Receiver] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        box[0].requests.append((headers, body))
        status = box[0].statuses.pop(0) if box[0].statuses else 200
        # A redirect points back at this server, so following it would show up as a request.
        location = f"Location: {box[0].url}-elsewhere\r\n" if 300 <= status < 400 else ""
        writer.write(
            f"HTTP/1.1 {status} X\r\n{location}Content-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    box.append(Receiver(f"http://127.0.0.1:{port}/hook"))
    async with server:
        yield box[0]


@pytest.fixture
async def worker_client(pool: Pool) -> Pool:
    """Point the client's default pool at the test database, as a worker process does at
    start: the delivery task reads the job and its owner through it (the API has its own)."""
    return await client.configure(pool)


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The delivery task runs in workers, which read their settings from the environment.
    monkeypatch.setenv("JOBRUNNER_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")
    monkeypatch.setenv("JOBRUNNER_WEBHOOK_TIMEOUT", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_webhook_is_signed_and_retried_with_a_stable_id(
    app: FastAPI,
    http: httpx.AsyncClient,
    login: Login,
    pool: Pool,
    settings: Settings,
    receiver: Receiver,
    allow_loopback: None,
    api_settings: Settings,
    worker_client: Pool,
) -> None:
    app.dependency_overrides[deps.get_settings] = lambda: api_settings.model_copy(
        update={"webhook_allowed_networks": ["127.0.0.1/32"]}
    )
    alice = await login("alice")
    secret = (await http.get("/auth/me", headers=alice.headers)).json()["webhook_secret"]
    receiver.statuses = [500]  # the first delivery fails; the retry succeeds
    made = await http.post(
        "/jobs",
        json={"task": "square_sum", "args": {"data": [1, 2, 3]}, "callback_url": receiver.url},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    fast = settings.model_copy(update={"backoff_base": 0.01, "backoff_cap": 0.01})

    async def delivered_twice() -> bool:
        # drain() never promotes retrying jobs, so promote them by hand between bursts.
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE jobrunner.jobs SET state = 'queued', run_at = now() "
                "WHERE state = 'retrying'"
            )
        await drain(pool, settings=fast, queues=QUEUES)
        return len(receiver.requests) >= 2

    await wait_for(delivered_twice)
    (h1, b1), (h2, b2) = receiver.requests[:2]
    assert h1["webhook-id"] == h2["webhook-id"]
    assert signature_valid(secret, h2, b2) and signature_valid(secret, h1, b1)
    assert not signature_valid("whsec_" + base64.b64encode(b"k" * 32).decode(), h2, b2)
    event = json.loads(b2)
    assert event["type"] == "job.succeeded"
    assert event["data"]["id"] == job_id and event["data"]["result"] == 14


async def test_refused_callback_cancels_the_delivery(
    worker_client: Pool,
    pool: Pool,
    settings: Settings,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Loopback is not in the allowed networks here: the delivery is refused, never sent.
    # (Enqueued from code, which skips the API's submit-time check.)
    monkeypatch.delenv("JOBRUNNER_WEBHOOK_ALLOWED_NETWORKS", raising=False)
    get_settings.cache_clear()
    async with pool.acquire() as conn:
        await client.enqueue("echo", {}, conn=conn, callback_url=receiver.url)
    await drain(pool, settings=settings, queues=QUEUES)
    async with pool.acquire() as conn:
        delivery = await conn.fetchrow(
            "SELECT state, errors FROM jobrunner.jobs WHERE task = 'jobrunner.deliver_webhook'"
        )
    assert delivery is not None and delivery["state"] == "cancelled"
    assert "refused" in delivery["errors"][-1]["error"]
    assert receiver.requests == []


async def test_unsafe_callback_urls_are_refused_at_submit(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    for url in [
        "http://127.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://10.0.0.5/x",
        "http://localhost/x",
        "ftp://example.com/x",
        "http://user:pw@example.com/x",
        "http://[::ffff:127.0.0.1]/",
    ]:
        answer = await http.post(
            "/jobs", json={"task": "echo", "args": {}, "callback_url": url}, headers=alice.headers
        )
        assert answer.status_code == 422, url
    internal = await http.post(
        "/jobs",
        json={"task": "jobrunner.deliver_webhook", "args": {"job_id": "x"}},
        headers=alice.headers,
    )
    assert internal.status_code == 422


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address refused, not bound
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:10.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_address(ipaddress.ip_address(address), [])


def test_public_and_allowed_addresses_pass() -> None:
    check_address(ipaddress.ip_address("93.184.216.34"), [])
    check_address(ipaddress.ip_address("127.0.0.1"), [ipaddress.ip_network("127.0.0.1/32")])
    check_url_syntax("https://example.com/hook", [])


async def test_names_that_resolve_to_private_addresses_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = {
        "inside.example": ["93.184.216.34", "10.0.0.7"],
        "outside.example": ["93.184.216.34"],
        "127.0.0.1": ["127.0.0.1"],
    }

    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UnsafeUrl):  # one private answer among public ones is enough to refuse
        await resolve("http://inside.example:8080/x", [])
    pinned = await resolve("https://outside.example/hook", [])
    assert pinned.url == "https://93.184.216.34:443/hook"
    assert pinned.host_header == "outside.example" and pinned.sni_hostname == "outside.example"
    allowed = await resolve("http://127.0.0.1:8080/x?a=1", [ipaddress.ip_network("127.0.0.0/8")])
    assert allowed.url == "http://127.0.0.1:8080/x?a=1"
    assert allowed.host_header == "127.0.0.1:8080"


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.statuses = [302]
    target = await resolve(receiver.url, [ipaddress.ip_network("127.0.0.1/32")])
    status = await send(target, b"{}", {"content-type": "application/json"}, timeout=2)
    assert status == 302
    assert len(receiver.requests) == 1  # nothing went on to wherever a Location pointed


async def test_a_delivery_is_not_the_users_and_shows_on_their_job(
    app: FastAPI,
    http: httpx.AsyncClient,
    login: Login,
    pool: Pool,
    settings: Settings,
    receiver: Receiver,
    allow_loopback: None,
    api_settings: Settings,
    worker_client: Pool,
) -> None:
    """A webhook delivery is jobrunner's job (owner NULL): out of the user's lists, history,
    cap, cancel and retry; its state shows on the user's own job instead."""
    app.dependency_overrides[deps.get_settings] = lambda: api_settings.model_copy(
        update={"webhook_allowed_networks": ["127.0.0.1/32"], "max_unfinished_jobs_per_user": 1}
    )
    alice = await login("alice")
    receiver.statuses = [500]  # the first delivery fails
    body = {"task": "echo", "args": {}, "callback_url": receiver.url}
    job_id = (await http.post("/jobs", json=body, headers=alice.headers)).json()["id"]

    async def webhook() -> dict[str, Any] | None:
        shown = await http.get(f"/jobs/{job_id}", headers=alice.headers)
        assert shown.status_code == 200
        delivery: dict[str, Any] | None = shown.json()["webhook"]
        return delivery

    assert await webhook() is None  # not finished: nothing to deliver yet
    await drain(pool, settings=settings)  # the job ends; its delivery waits in `webhooks`
    async with pool.acquire() as conn:
        delivery_id = await conn.fetchval(
            "SELECT id FROM jobrunner.jobs WHERE task = 'jobrunner.deliver_webhook' "
            "AND owner IS NULL"
        )
    assert delivery_id is not None
    waiting = await webhook()
    assert waiting is not None and (waiting["state"], waiting["attempts"]) == ("queued", 0)

    listed = (await http.get("/jobs", headers=alice.headers)).json()["items"]
    assert [j["id"] for j in listed] == [job_id]
    for verb in ("", "/cancel", "/retry", "/status"):
        method = "POST" if verb in ("/cancel", "/retry") else "GET"
        answer = await http.request(method, f"/jobs/{delivery_id}{verb}", headers=alice.headers)
        assert answer.status_code == 404, verb
    # Her cap is 1 unfinished job: the waiting delivery is not hers, so one more fits.
    assert (
        await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)
    ).status_code == 201
    assert (
        await http.post("/jobs", json={"task": "echo"}, headers=alice.headers)
    ).status_code == 429

    await drain(pool, settings=settings, queues=["webhooks"])  # answered 500: retrying
    failed = await webhook()
    assert failed is not None and (failed["state"], failed["attempts"]) == ("retrying", 1)
    assert "500" in (failed["last_error"] or "") and failed["next_attempt_at"] is not None
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobrunner.jobs SET state = 'queued' WHERE state = 'retrying'")
    await drain(pool, settings=settings, queues=["webhooks"])
    done = await webhook()
    assert done is not None and done["state"] == "succeeded" and done["finished_at"] is not None
    assert len(receiver.requests) == 2
    history = (await http.get("/history", headers=alice.headers)).json()["items"]
    assert [h["id"] for h in history] == [job_id]
