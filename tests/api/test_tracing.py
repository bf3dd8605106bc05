"""Tracing over HTTP: a submission joins the trace its `traceparent` header names (on the
direct path and the route alike), and the webhook delivery that reports the job continues
that trace, up to the receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobrunner import client
from jobrunner.api import deps
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings, get_settings
from jobrunner.testing import drain
from tests.support.api import Login
from tests.support.tracing import named, recording_spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{TRACE_ID}-{CALLER_SPAN}-01"  # a caller's span, as its own tracer sent it


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exporter:
        yield exporter


async def _stored(pool: Pool, job_id: str) -> Any:
    async with pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT trace_context FROM jobrunner.jobs WHERE id = $1::uuid", job_id
        )


def _made_in(stored: Any, spans: InMemorySpanExporter) -> str | None:
    """The id of the span a job was made in, by its stored traceparent, when that span is
    the caller's or a descendant of it: a FastAPI with built-in telemetry makes the request
    a server span (and its endpoint a span of that), as children of the caller's span."""
    _, trace_id, span_id, _ = stored["traceparent"].split("-")
    parents = {
        f"{span.context.span_id:016x}": f"{span.parent.span_id:016x}"
        for span in spans.get_finished_spans()
        if span.context is not None and span.parent is not None
    }
    ancestor: str | None = span_id
    while ancestor is not None and ancestor != CALLER_SPAN:
        ancestor = parents.get(ancestor)
    return span_id if trace_id == TRACE_ID and ancestor == CALLER_SPAN else None


async def test_a_submission_joins_the_trace_its_traceparent_names(
    app: FastAPI,
    http: httpx.AsyncClient,
    login: Login,
    pool: Pool,
    api_settings: Settings,
    spans: InMemorySpanExporter,
) -> None:
    alice = await login("alice")
    headers = {**alice.headers, "traceparent": CALLER}
    job = {"task": "echo", "args": {}}
    served = app.state.direct_submit.served
    direct = await http.post("/jobs", json=job, headers=headers)
    assert direct.status_code == 201, direct.text
    assert app.state.direct_submit.served == served + 1  # the direct path answered it
    graph = await http.post(
        "/jobs/graph",
        json={"jobs": [{"name": "a", "task": "echo"}, {"name": "b", "task": "echo"}]},
        headers=headers,
    )
    assert graph.status_code == 201, graph.text
    app.dependency_overrides[deps.get_settings] = lambda: api_settings  # the route answers
    routed = await http.post("/jobs", json=job, headers=headers)
    assert routed.status_code == 201, routed.text
    plain = await http.post("/jobs", json=job, headers=alice.headers)  # names no trace
    assert plain.status_code == 201, plain.text

    ids = [direct.json()["id"], *(j["id"] for j in graph.json()["jobs"]), routed.json()["id"]]
    for job_id in ids:
        stored = await _stored(pool, job_id)
        assert _made_in(stored, spans) == stored["traceparent"][36:52]
    plain_stored = await _stored(pool, plain.json()["id"])  # a span of its own request, if any
    assert plain_stored is None or TRACE_ID not in plain_stored["traceparent"]


async def test_with_tracing_off_the_header_is_not_kept(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice = await login("alice")
    made = await http.post(
        "/jobs", json={"task": "echo"}, headers={**alice.headers, "traceparent": CALLER}
    )
    assert made.status_code == 201, made.text
    assert await _stored(pool, made.json()["id"]) is None


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """An HTTP server on 127.0.0.1 that answers 200 and keeps each request's headers."""
    heard: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in head[1:] if ln)}
        await reader.readexactly(int(headers.get("content-length", "0")))
        heard.append(headers)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook", heard


async def test_the_webhook_delivery_continues_the_jobs_trace(
    app: FastAPI,
    http: httpx.AsyncClient,
    login: Login,
    pool: Pool,
    settings: Settings,
    api_settings: Settings,
    receiver: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
) -> None:
    url, heard = receiver
    loopback = {"webhook_allowed_networks": ["127.0.0.1/32"]}
    app.dependency_overrides[deps.get_settings] = lambda: api_settings.model_copy(update=loopback)
    monkeypatch.setenv("JOBRUNNER_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")  # the worker's
    get_settings.cache_clear()
    await client.configure(pool)  # the delivery task reads the job through the default pool
    alice = await login("alice")
    made = await http.post(
        "/jobs",
        json={"task": "echo", "args": {"message": "hi"}, "callback_url": url},
        headers={**alice.headers, "traceparent": CALLER},
    )
    assert made.status_code == 201, made.text
    try:
        await drain(pool, settings=settings)  # the job; its delivery is queued in `webhooks`
        await drain(pool, settings=settings, queues=["webhooks"])
    finally:
        get_settings.cache_clear()

    made_in = _made_in(await _stored(pool, made.json()["id"]), spans)
    finished = spans.get_finished_spans()
    [run] = named(finished, "jobrunner.run echo")
    [delivery] = named(finished, "jobrunner.run jobrunner.deliver_webhook")
    for span in (run, delivery):  # both children of the span the job was made in
        assert span.context is not None and f"{span.context.trace_id:032x}" == TRACE_ID
        assert span.parent is not None and f"{span.parent.span_id:016x}" == made_in
    assert delivery.status.status_code is trace.StatusCode.OK
    # The receiver is told the delivery's span, so a receiver that traces continues it.
    [request] = heard
    assert delivery.context is not None
    assert request["traceparent"] == f"00-{TRACE_ID}-{delivery.context.span_id:016x}-01"
