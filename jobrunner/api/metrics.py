"""/metrics as prometheus_client writes it: the API's request latency, the process's job
series (jobrunner.metrics), and the database's gauges (job_metrics.JobMetrics).

Each app has a registry of its own (tests build many apps in one process). With
PROMETHEUS_MULTIPROC_DIR set, the series of every process writing to that directory are
read from its files instead (jobrunner.metrics.add_process_series), the request histogram
among them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from jobrunner import metrics
from jobrunner.api.job_metrics import JobMetrics

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestMetrics:
    """API request latency per method, route template and status class."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        # registry None: not exposed from here (with a multiprocess directory its values
        # go to a file, and the directory's reader exposes them).
        self.histogram = Histogram(
            "jobrunner_api_request_duration_seconds",
            "API request latency, by method, route and status class.",
            ("method", "route", "status"),
            buckets=BUCKETS,
            registry=registry,
        )
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Clients choose the method: any method name would otherwise be a new series.
        method = method if method in METHODS else "other"
        key = (method, route, status // 100)  # route: a template, or "unmatched"
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.histogram.labels(method, route, f"{key[2]}xx")
        child.observe(seconds)


class Exposition:
    """What GET /metrics answers, for one app: made with the app, given the database's
    gauges once its lifespan has a pool (`attach`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        metrics.add_process_series(self.registry)
        shared = metrics.multiprocess_dir() is not None
        self.requests = RequestMetrics(None if shared else self.registry)
        self.jobs: JobMetrics | None = None

    def attach(self, jobs: JobMetrics) -> None:
        self.detach()
        self.jobs = jobs
        self.registry.register(jobs)

    def detach(self) -> None:
        if self.jobs is not None:
            self.registry.unregister(self.jobs)
            self.jobs = None

    async def render(self) -> bytes:
        if self.jobs is not None:
            await self.jobs.refresh()  # the database's figures: cached, one read at a time
        return generate_latest(self.registry)
