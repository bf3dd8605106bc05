"""The worker process's own /metrics: prometheus_client's HTTP server, on
JOBRUNNER_WORKER_METRICS_PORT (off when unset), in a thread of its own.

It answers with this process's job series (jobrunner.metrics) or, when PROMETHEUS_MULTIPROC_DIR
is set, with those of every process writing to that directory, summed: then one scrape of
any of them sees them all. At exit the process is marked dead there (prometheus_client's
convention; counters and histograms stay in the sums, as they should).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import mark_process_dead

from jobrunner import metrics
from jobrunner.settings import Settings

log = structlog.get_logger("jobrunner.worker")


def _registry() -> CollectorRegistry:
    if metrics.multiprocess_dir() is None:
        return REGISTRY  # this process's series, and the runtime's (process_, python_)
    shared = CollectorRegistry()
    metrics.add_process_series(shared)
    return shared


@contextlib.contextmanager
def serving(settings: Settings) -> Iterator[int | None]:
    """Serve the worker's metrics while inside; yields the port, or None when off."""
    if settings.worker_metrics_port is None:
        yield None
        return
    metrics.configure(max_queues=settings.metrics_max_queues, known_queues=settings.queues)
    server, thread = start_http_server(
        settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=_registry()
    )
    port = server.server_port
    log.info("worker metrics", host=settings.worker_metrics_host, port=port)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        if metrics.multiprocess_dir() is not None:
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # untyped upstream
