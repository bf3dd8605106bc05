"""jobrunner.tracing without a database: a request's trace made current, and the stubs that
stand in when the `otel` extra is not installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry import trace

import jobrunner
from jobrunner import tracing
from tests.support.tracing import recording_spans, traceparent

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADERS = [(b"content-type", b"application/json"), (b"traceparent", CALLER.encode())]


def test_a_requests_traceparent_is_current_within_continued() -> None:
    with recording_spans():
        assert tracing.enabled()
        with tracing.continued(HEADERS):
            assert tracing.carrier() == {"traceparent": CALLER}
        assert tracing.carrier() is None
        with tracing.continued([(b"content-type", b"application/json")]):
            assert tracing.carrier() is None  # the request names no trace


def test_a_span_current_already_is_kept() -> None:
    """An ASGI instrumentation's server span (a child of the caller's) stays current."""
    with (
        recording_spans(),
        trace.get_tracer("tests").start_as_current_span("server") as server,
        tracing.continued(HEADERS),
    ):
        assert tracing.carrier() == {"traceparent": traceparent(server)}


def test_with_no_provider_set_nothing_is_continued_or_kept() -> None:
    assert not tracing.enabled()
    with tracing.continued(HEADERS):
        assert tracing.carrier() is None
    headers: dict[str, str] = {}
    tracing.inject(headers)
    assert headers == {}


def test_without_the_package_everything_is_a_stub() -> None:
    """As installed without the `otel` extra: opentelemetry cannot be imported at all."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # `import opentelemetry` now raises ImportError
        from jobrunner import builtin_tasks, tracing
        from jobrunner.job_rows import make_rows
        assert not tracing.INSTALLED and not tracing.enabled()
        assert tracing.carrier() is None
        with tracing.continued([(b"traceparent", b"00-%s-%s-01" % (b"a" * 32, b"b" * 16))]):
            assert tracing.carrier() is None
        headers = {}
        tracing.inject(headers)
        assert headers == {}
        assert make_rows("echo", [{}]).trace_context is None
        loaded = [name for name, module in sys.modules.items() if module is not None]
        assert not any(name.startswith("opentelemetry") for name in loaded)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(jobrunner.__file__).parent.parent,
    )
    assert run.returncode == 0, run.stderr
