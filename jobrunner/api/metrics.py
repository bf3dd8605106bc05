"""Prometheus text exposition, written by hand: no client library for a handful of series.

Request latency is measured in this process; job counts, throughput and latencies are read
from the database with the same bounded queries /stats uses.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS: tuple[float, ...] = (
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    1800.0,
    3600.0,
)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Histogram:
    """Cumulative-bucket histogram, as Prometheus expects it."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str) -> Iterable[str]:
        sep = "," if labels else ""
        running = 0
        for bound, count in zip(self.buckets, self.counts, strict=True):
            running += count
            yield f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}'
        yield f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}'
        yield f"{name}_sum{{{labels}}} {self.sum:.6f}"
        yield f"{name}_count{{{labels}}} {self.total}"


class RequestMetrics:
    """API request latency per method, route template and status class."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], Histogram] = defaultdict(
            lambda: Histogram(BUCKETS)
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Clients choose the method: any method name would otherwise be a new series.
        method = method if method in METHODS else "other"
        self._by_key[(method, route, f"{status // 100}xx")].observe(seconds)

    def lines(self) -> Iterable[str]:
        name = "jobrunner_api_request_duration_seconds"
        yield f"# HELP {name} API request latency, by method, route and status class."
        yield f"# TYPE {name} histogram"
        for (method, route, status), histogram in sorted(self._by_key.items()):
            labels = f'method="{method}",route="{escape(route)}",status="{status}"'
            yield from histogram.lines(name, labels)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
