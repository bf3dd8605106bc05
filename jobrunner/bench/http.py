"""The HTTP figure of `jobrunner bench`: submits per second through `POST /jobs`.

A real `python -m jobrunner api` process serves the scratch database; the bench registers a
user, logs in once and submits no-op jobs from concurrent keep-alive connections. The
per-user submit limits are raised for the run: the figure measures the API, not its limiter.
Each connection first sends WARMUP_SUBMITS untimed, so the figure is the API's steady state,
not its first second (opening pool connections, preparing statements). In the same round the
same client drives the hand-written service of jobrunner.bench.baseline_api (a bare ASGI
app inserting one row a request), so the figure is also a share of that floor on the machine
of the moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import time

import httpx

SUBMITTERS = 32
WARMUP_SUBMITS = 20  # per connection


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _api_env(dsn: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "JOBRUNNER_DATABASE_URL": dsn,
        "JOBRUNNER_HOST": "127.0.0.1",
        "JOBRUNNER_PORT": str(port),
        "JOBRUNNER_JWT_SECRET": secrets.token_urlsafe(48),
        "JOBRUNNER_LOG_LEVEL": "warning",
        "JOBRUNNER_LOG_FORMAT": "json",
        "JOBRUNNER_SUBMIT_RATE_PER_MINUTE": str(10**9),
        "JOBRUNNER_SUBMIT_BURST": str(10**7),
        "JOBRUNNER_MAX_UNFINISHED_JOBS_PER_USER": str(10**7),
        "JOBRUNNER_POOL_MAX_SIZE": str(SUBMITTERS),
    }


async def _wait_healthy(http: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode}")
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the API did not start in time")


async def _login(http: httpx.AsyncClient) -> dict[str, str]:
    user = {"username": f"bench_{secrets.token_hex(4)}", "password": secrets.token_urlsafe(16)}
    (await http.post("/auth/register", json=user)).raise_for_status()
    response = await http.post("/auth/token", json=user)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class _KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection sending one prepared request again and again.

    httpx spends ~8 ms of CPU per request with 32 connections open, so on two cores the
    client, not the API, set the figure. This sends bytes built once and reads just the
    status line and Content-Length: the measurement costs the API's CPU, not the client's.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _KeepAliveConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _submit_request(port: int, headers: dict[str, str]) -> bytes:
    body = json.dumps({"task": "noop", "args": {}}).encode()
    lines = [
        "POST /jobs HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


async def _submit(conn: _KeepAliveConnection, request: bytes, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        status, body = await conn.send(request)
        latencies.append((time.perf_counter() - started) * 1000)
        if status not in (200, 201):
            raise RuntimeError(f"POST /jobs answered {status}: {body.decode(errors='replace')}")
    return latencies


def _start_api(dsn: str, port: int, *, baseline: bool) -> subprocess.Popen[bytes]:
    if baseline:
        argv = [sys.executable, "-m", "jobrunner.bench.baseline_api", dsn, str(port)]
        argv.append(str(SUBMITTERS))
    else:
        argv = [sys.executable, "-m", "jobrunner", "api"]
    return subprocess.Popen(  # noqa: S603 - our own argv
        argv, env=_api_env(dsn, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def http_round(
    dsn: str, submits: int, *, baseline: bool = False
) -> tuple[float, list[float]]:
    """(submits per second, latencies in ms) of `submits` POST /jobs from 32 connections, to
    jobrunner's API or (`baseline`) to the hand-written service."""
    port = _free_port()
    proc = _start_api(dsn, port, baseline=baseline)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await _wait_healthy(http, proc)
            headers = {} if baseline else await _login(http)
            request = _submit_request(port, headers)
        per = max(1, submits // SUBMITTERS)
        conns = await asyncio.gather(*(_KeepAliveConnection.open(port) for _ in range(SUBMITTERS)))
        try:
            await asyncio.gather(*(_submit(c, request, WARMUP_SUBMITS) for c in conns))
            started = time.perf_counter()
            parts = await asyncio.gather(*(_submit(c, request, per) for c in conns))
            elapsed = time.perf_counter() - started
        finally:
            for conn in conns:
                conn.close()
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait)
    latencies = [ms for part in parts for ms in part]
    return len(latencies) / elapsed, latencies
