"""OpenTelemetry tracing, with the `otel` extra (README "Tracing (OpenTelemetry)").

A job joins the trace it was made in, and every attempt at it is a span of that trace:

    enqueue, a submit ─ make_rows: carrier() ─► jobs.trace_context ─► claim ─► attempt span
    POST /jobs with a traceparent header ─ continued(): that context is current meanwhile
    an outcome with a callback ─ the delivery row copies trace_context ─► the delivery's
        attempt span, in the same trace; its POST carries the traceparent (inject)

Tracing is on when opentelemetry-api is installed and the application has set a
TracerProvider (the SDK's, or any other). The API's default provider, a proxy that makes
spans which record nothing, counts as off: jobs keep a NULL trace_context and the worker
makes no span. Without the package every function here is a stub, chosen once at import,
so an install without the extra pays nothing but a call that returns at once.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from jobrunner.models import ClaimedJob, Outcome, OutcomeKind

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the `otel` extra is not installed: tracing stays off, at no cost
    INSTALLED = False
else:
    INSTALLED = True

TRACER_NAME = "jobrunner"
_NOTHING: AbstractContextManager[None] = nullcontext()
# What an outcome makes of its span's status: an attempt that ended in an error (raised,
# timed out, cancelled by its handler, failed) is an ERROR; a deferral (a task this worker
# does not know yet) is no one's error and leaves it unset.
_FAILED_KINDS = frozenset({OutcomeKind.RETRY, OutcomeKind.FAILED, OutcomeKind.CANCELLED})


def enabled() -> bool:
    """Whether spans are recorded: the package is installed and a real provider is set."""
    if not INSTALLED:
        return False
    provider = trace.get_tracer_provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def carrier() -> dict[str, str] | None:
    """The current span's context as the propagators write it (a `traceparent` and more),
    for a job made now; None outside a span, or when tracing is off."""
    if not INSTALLED or not trace.get_current_span().get_span_context().is_valid:
        return None
    written: dict[str, str] = {}
    propagate.inject(written)
    return written or None


def inject(headers: dict[str, str]) -> None:
    """Add the current span's context to the headers of an outgoing request."""
    if INSTALLED and trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)


def continued(headers: Sequence[tuple[bytes, bytes]]) -> AbstractContextManager[None]:
    """Within it, the trace an HTTP request's headers (an ASGI scope's) name is current, so
    jobs submitted meanwhile join it. Nothing when tracing is off, when the request names
    no trace, or when a span is current already (an ASGI instrumentation made one)."""
    if not enabled() or trace.get_current_span().get_span_context().is_valid:
        return _NOTHING
    fields = propagate.get_global_textmap().fields
    found = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name.decode("latin-1") in fields
    }
    return _attached(found) if found else _NOTHING


@contextmanager
def _attached(found: Mapping[str, str]) -> Iterator[None]:
    token = otel_context.attach(propagate.extract(found))
    try:
        yield
    finally:
        otel_context.detach(token)


async def traced_attempt(job: ClaimedJob, attempt: Coroutine[Any, Any, Outcome]) -> Outcome:
    """Run `attempt` (executor.run_attempt for `job`) inside a span of the trace the job was
    made in (a new trace when it was made outside one). The span is current while the
    handler runs, so the handler's own spans, and the jobs it makes, belong to it."""
    made_in = propagate.extract(job.trace_context) if job.trace_context else otel_context.Context()
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        f"jobrunner.run {job.task}",
        context=made_in,
        kind=trace.SpanKind.CONSUMER,
        attributes=_attributes(job),
        record_exception=False,  # the outcome says how it ended; a stop is no error
        set_status_on_exception=False,
    ) as span:
        try:
            outcome = await attempt
        except BaseException:  # stopped by the worker (a cancel, a lost lease, shutdown)
            span.set_attribute("jobrunner.outcome", "stopped")
            raise
        span.set_attribute("jobrunner.outcome", outcome.kind.value)
        if outcome.kind in _FAILED_KINDS:
            span.set_status(trace.StatusCode.ERROR, _error_message(outcome.error_json))
        elif outcome.kind is OutcomeKind.SUCCEEDED:
            span.set_status(trace.StatusCode.OK)
        return outcome


def _attributes(job: ClaimedJob) -> dict[str, str | int]:
    # The messaging conventions' names where they fit, so backends show the queue and the
    # job id as they do for other consumers; jobrunner's own for the rest.
    return {
        "messaging.system": "jobrunner",
        "messaging.operation.type": "process",
        "messaging.destination.name": job.queue,
        "messaging.message.id": str(job.id),
        "jobrunner.task": job.task,
        "jobrunner.attempt": job.attempt,
        "jobrunner.max_attempts": job.max_attempts,
    }


def _error_message(error_json: str | None) -> str | None:
    if error_json is None:
        return None
    error = json.loads(error_json).get("error")
    return error if isinstance(error, str) else None
