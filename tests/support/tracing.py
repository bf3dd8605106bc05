"""Recording spans in tests: the OpenTelemetry SDK's in-memory exporter (a real SDK part, not a
stand-in for our code) behind a TracerProvider set for one test, and unset after it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@contextmanager
def recording_spans() -> Iterator[InMemorySpanExporter]:
    """A TracerProvider that keeps every finished span, the process's own while inside.

    The API lets a process set its provider once; its own test helpers
    (opentelemetry.test.globals_test.reset_trace_globals) reset these two globals to set
    another, and so does this, so each test starts, and leaves, with tracing off."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        _reset()
        provider.shutdown()


def _reset() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def traceparent(span: trace.Span) -> str:
    """The W3C traceparent header naming `span`, as a caller would send it."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
