"""Tracing (jobrunner.tracing): a job carries the trace it was made in, each attempt is a span
of that trace, and a webhook delivery joins the trace of the job it delivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobrunner import client, tracing
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.job_rows import insert_each, make_rows
from jobrunner.models import JobState, Outcome, OutcomeKind
from jobrunner.settings import Settings
from jobrunner.testing import drain
from jobrunner.webhooks import delivery_rows
from tests.support.tracing import named, recording_spans, traceparent
from tests.support.waiting import wait_for


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recording_spans() as exporter:
        yield exporter


async def _trace_context(conn: Conn, job_id: UUID) -> Any:
    return await conn.fetchval("SELECT trace_context FROM jobrunner.jobs WHERE id = $1", job_id)


async def test_a_job_made_in_a_span_runs_in_a_span_of_that_trace(
    pool: Pool, settings: Settings, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("tests").start_as_current_span("request") as request:
        async with pool.acquire() as conn:
            job = await client.enqueue("test.add", {"a": 2, "b": 3}, conn=conn)
    async with pool.acquire() as conn:
        assert await _trace_context(conn, job.id) == {"traceparent": traceparent(request)}

    await drain(pool, settings=settings)

    [run] = named(spans.get_finished_spans(), "jobrunner.run test.add")
    made_in = request.get_span_context()
    assert run.context is not None and run.context.trace_id == made_in.trace_id
    assert run.parent is not None and run.parent.span_id == made_in.span_id
    assert run.kind is trace.SpanKind.CONSUMER
    assert run.status.status_code is trace.StatusCode.OK
    assert dict(run.attributes or {}) == {
        "messaging.system": "jobrunner",
        "messaging.operation.type": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": str(job.id),
        "jobrunner.task": "test.add",
        "jobrunner.attempt": 1,
        "jobrunner.max_attempts": job.max_attempts,
        "jobrunner.outcome": "succeeded",
    }


async def test_every_insert_form_keeps_the_trace(pool: Pool, spans: InMemorySpanExporter) -> None:
    with trace.get_tracer("tests").start_as_current_span("request") as request:
        async with pool.acquire() as conn:
            one = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
            copied = await client.enqueue_many("test.add", [{"a": 1, "b": 2}] * 3, conn=conn)
            batch = [make_rows("test.add", [{"a": 1, "b": 3}]), make_rows("echo", [{}])]
            each = await insert_each(conn, batch)
            parent = await client.enqueue("echo", {}, conn=conn)
            child = await client.enqueue("echo", {}, conn=conn, depends_on=[parent])
    ids = [one.id, *copied, *(job.id for job in each), child.id]
    async with pool.acquire() as conn:
        stored = [await _trace_context(conn, job_id) for job_id in ids]
    assert stored == [{"traceparent": traceparent(request)}] * len(ids)


async def test_without_a_span_or_a_provider_nothing_is_kept(pool: Pool, settings: Settings) -> None:
    # No provider set (tracing off): even inside a span of the API's default tracer.
    with trace.get_tracer("tests").start_as_current_span("request"):
        async with pool.acquire() as conn:
            off = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
    with recording_spans() as spans:
        async with pool.acquire() as conn:  # tracing on, but outside any span
            outside = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        await drain(pool, settings=settings)
        runs = named(spans.get_finished_spans(), "jobrunner.run test.add")
    async with pool.acquire() as conn:
        assert await _trace_context(conn, off.id) is None
        assert await _trace_context(conn, outside.id) is None
    # Each attempt still a span when tracing is on: the root of a trace of its own.
    ran = {str(run.attributes["messaging.message.id"]) for run in runs if run.attributes}
    assert ran == {str(off.id), str(outside.id)}
    assert [run.parent for run in runs] == [None, None]


async def test_each_failed_attempt_is_a_span_with_an_error_status(
    pool: Pool, settings: Settings, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("tests").start_as_current_span("request") as request:
        async with pool.acquire() as conn:
            job = await client.enqueue("test.always_fail", {}, conn=conn)  # 2 attempts

    async def failed() -> bool:
        async with pool.acquire() as conn:  # drain() runs no retrying job: make it due
            await conn.execute(
                "UPDATE jobrunner.jobs SET state = 'queued', run_at = now() "
                "WHERE state = 'retrying'"
            )
        await drain(pool, settings=settings)
        return (await client.get_job(job.id, conn=None)).state is JobState.FAILED

    await client.configure(pool)
    await wait_for(failed)
    runs = named(spans.get_finished_spans(), "jobrunner.run test.always_fail")
    assert [run.attributes["jobrunner.attempt"] for run in runs if run.attributes] == [1, 2]
    for run in runs:
        assert run.status.status_code is trace.StatusCode.ERROR
        assert run.status.description == "RuntimeError: always"
        assert run.context is not None
        assert run.context.trace_id == request.get_span_context().trace_id


async def test_deliveries_after_an_outcome_and_a_rescue_keep_the_jobs_trace(
    pool: Pool, spans: InMemorySpanExporter
) -> None:
    delivery = delivery_rows()
    policy = queries.OutcomePolicy(
        backoff_base=1.0, backoff_cap=1.0, max_deferrals=0, delivery=delivery
    )
    tracer = trace.get_tracer("tests")
    async with pool.acquire() as conn:
        with tracer.start_as_current_span("done") as done_span:
            done = await client.enqueue(
                "test.add", {"a": 1, "b": 1}, conn=conn, callback_url="https://example.com/a"
            )
        with tracer.start_as_current_span("lost") as lost_span:
            lost = await client.enqueue(
                "test.add",
                {"a": 2, "b": 2},
                conn=conn,
                callback_url="https://example.com/b",
                max_attempts=1,
            )
        claimed = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=2, lease_seconds=30
        )
        assert {job.id: job.trace_context for job in claimed} == {
            done.id: {"traceparent": traceparent(done_span)},
            lost.id: {"traceparent": traceparent(lost_span)},
        }
        ok = Outcome(done.id, 1, OutcomeKind.SUCCEEDED, result_json="2")
        await queries.job_record_outcomes(conn, [ok], worker_id="w", policy=policy)
        await conn.execute(
            "UPDATE jobrunner.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1",
            lost.id,
        )
        await queries.job_rescue_expired(conn, limit=10, delivery=delivery)
        rows = await conn.fetch(
            "SELECT (args ->> 'job_id')::uuid AS for_job, trace_context FROM jobrunner.jobs"
            " WHERE task = $1",
            delivery.task,
        )
    assert {r["for_job"]: r["trace_context"] for r in rows} == {
        done.id: {"traceparent": traceparent(done_span)},
        lost.id: {"traceparent": traceparent(lost_span)},
    }


async def test_jobs_a_handler_makes_are_children_of_its_attempt(
    pool: Pool, spans: InMemorySpanExporter
) -> None:
    """The attempt's span is current while its handler runs (here a coroutine standing in
    for executor.run_attempt), so what the handler enqueues joins the trace under it."""
    with trace.get_tracer("tests").start_as_current_span("request") as request:
        async with pool.acquire() as conn:
            await client.enqueue("echo", {}, conn=conn)
    async with pool.acquire() as conn:
        [claimed] = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=1, lease_seconds=30
        )

        async def handler() -> Outcome:
            child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
            made.append(await _trace_context(conn, child.id))
            return Outcome(claimed.id, claimed.attempt, OutcomeKind.SUCCEEDED, result_json="1")

        made: list[Any] = []
        await tracing.traced_attempt(claimed, handler())
    [run] = named(spans.get_finished_spans(), "jobrunner.run echo")
    assert run.context is not None and run.parent is not None
    assert run.parent.span_id == request.get_span_context().span_id
    context = run.context
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    assert made == [{"traceparent": expected}]
