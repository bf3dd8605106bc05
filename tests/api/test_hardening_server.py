"""Issue 14 against a real uvicorn on 127.0.0.1, as `jobrunner api` runs it: raw sockets for
what an HTTP client library would not send (a body that never comes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from jobrunner.api.limits import ADDRESS_LOGIN_FACTOR
from jobrunner.serve import http_server
from jobrunner.settings import Settings

DEADLINE = 10.0


@pytest.fixture
async def server_port(api_settings: Settings) -> AsyncIterator[int]:
    settings = api_settings.model_copy(
        update={"port": 0, "body_read_timeout": 0.5, "login_attempts_per_minute": 1}
    )
    server = http_server(settings)
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(DEADLINE):
        while not server.started:  # uvicorn offers no event for this
            if serving.done():
                raise AssertionError("the server did not start")
            await asyncio.sleep(0.02)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, DEADLINE)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(DEADLINE):  # fails the test if the server keeps it open
        return await reader.read()  # everything up to EOF


async def test_a_body_that_never_arrives_is_408_and_the_connection_closes(
    server_port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    try:
        writer.write(
            b"POST /jobs HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        await writer.drain()
        answer = await _read_until_closed(reader)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"application/problem+json" in head.lower()
    assert b"did not arrive" in body


async def test_huge_headers_are_431(server_port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server_port}") as http:
        answer = await http.get("/healthz", headers={"Cookie": "a=" + "x" * 64 * 1024})
        assert answer.status_code == 431
        assert answer.headers["content-type"] == "application/problem+json"
        assert (await http.get("/healthz", headers={"Cookie": "a=b"})).status_code == 200


async def test_a_spoofed_forwarded_for_from_loopback_is_ignored(server_port: int) -> None:
    statuses = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server_port}") as http:
        for n in range(ADDRESS_LOGIN_FACTOR + 1):
            answer = await http.post(
                "/auth/token",
                json={"username": f"nobody{n}", "password": "x"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            statuses.append(answer.status_code)
    assert statuses == [401] * ADDRESS_LOGIN_FACTOR + [429]
