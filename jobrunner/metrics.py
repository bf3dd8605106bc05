"""The job lifecycle as Prometheus series, recorded where things happen (no FastAPI here).

    jobrunner_jobs_enqueued_total{queue,task}          the insert core (library and API alike)
    jobrunner_jobs_started_total{queue,task}           the worker's claim
    jobrunner_jobs_finished_total{queue,task,outcome}  the worker's outcome write
    jobrunner_job_timeouts_total{queue,task}           attempts that ran past their timeout
    jobrunner_job_pickup_seconds{queue,task}           run_at -> claimed, database time
    jobrunner_job_run_seconds{queue,task}              handler start -> end, in the worker

outcome is what the written attempt made of its job: succeeded, failed (for good), retried,
deferred (given back without spending an attempt) or cancelled. A timed-out attempt is
retried or failed like any error, and counted in jobrunner_job_timeouts_total besides.

The worker runs tens of thousands of jobs a second, so nothing here is paid per job beyond a
dict update: the callers group a batch (a claim, an outcome write) by series, and each
series is bumped once per batch, its histogram buckets included (`observe_many`).

Labels stay bounded whatever users name things. A task keeps its name if this process has it
registered (code bounds those), up to MAX_TASK_LABELS; others are `other`. A queue keeps
its name if it is one of the configured ones (the worker's queues, the registered tasks'),
or while fewer than `max_queues` (JOBRUNNER_METRICS_MAX_QUEUES) names have been given out;
later names are `other`. A name once given stays: counters must keep their series.

The series live in prometheus_client's default registry. With PROMETHEUS_MULTIPROC_DIR set
before the process starts, prometheus_client keeps their values in files there, so the
processes of one host are read together (jobrunner.worker.exporter, /metrics).
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Collection, Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from jobrunner.models import ClaimedJob
from jobrunner.registry import registered_tasks

OTHER = "other"
MAX_TASK_LABELS = 200
DEFAULT_MAX_QUEUES = 20
_SERIES_CACHE_LIMIT = 10_000  # raw (queue, task) pairs remembered; past it, looked up anew

PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                  300.0, 1800.0, 3600.0)  # fmt: skip
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
               60.0, 300.0, 1800.0, 3600.0)  # fmt: skip
OUTCOMES = ("succeeded", "failed", "retried", "deferred", "cancelled")

ENQUEUED = Counter(
    "jobrunner_jobs_enqueued", "Jobs inserted, by queue and task.", ("queue", "task")
)
STARTED = Counter(
    "jobrunner_jobs_started", "Attempts claimed by a worker, by queue and task.", ("queue", "task")
)
FINISHED = Counter(
    "jobrunner_jobs_finished",
    "Attempt outcomes written, by what they made of the job: succeeded, failed (for good), "
    "retried, deferred or cancelled.",
    ("queue", "task", "outcome"),
)
TIMEOUTS = Counter(
    "jobrunner_job_timeouts",
    "Attempts that ran past their timeout (also counted as retried or failed).",
    ("queue", "task"),
)
PICKUP = Histogram(
    "jobrunner_job_pickup_seconds",
    "Seconds from a job's run_at to its claim, in database time.",
    ("queue", "task"),
    buckets=PICKUP_BUCKETS,
)
RUN = Histogram(
    "jobrunner_job_run_seconds",
    "Seconds a handler ran (start to end, in the worker).",
    ("queue", "task"),
    buckets=RUN_BUCKETS,
)


class LabelBounds:
    """Which names become label values; see the module's docstring."""

    def __init__(self, max_queues: int = DEFAULT_MAX_QUEUES) -> None:
        self.max_queues = max_queues
        self._known_queues: frozenset[str] = frozenset()
        self._queues: dict[str, str] = {}  # names given out (never `other`: unbounded)
        self._tasks: dict[str, str] = {}

    def configure(self, *, max_queues: int, known_queues: Collection[str] = ()) -> None:
        self.max_queues = max_queues
        self._known_queues = self._known_queues | frozenset(known_queues)

    def queue(self, name: str) -> str:
        label = self._queues.get(name)
        if label is not None:
            return label
        if (
            len(self._queues) < self.max_queues
            or name in self._known_queues
            or any(t.queue == name for t in registered_tasks())
        ):
            self._queues[name] = name
            return name
        return OTHER

    def task(self, name: str) -> str:
        label = self._tasks.get(name)
        if label is not None:
            return label
        if len(self._tasks) < MAX_TASK_LABELS and any(t.name == name for t in registered_tasks()):
            self._tasks[name] = name
            return name
        return OTHER


BOUNDS = LabelBounds()


def configure(*, max_queues: int, known_queues: Collection[str] = ()) -> None:
    """Called by the worker and the API at start, from their settings."""
    BOUNDS.configure(max_queues=max_queues, known_queues=known_queues)


class _Series:
    """The children of one (queue, task) label pair, looked up once and kept."""

    __slots__ = ("enqueued", "finished", "labels", "pickup", "run", "started", "timeouts")

    def __init__(self, queue: str, task: str) -> None:
        self.labels = (queue, task)
        self.enqueued = ENQUEUED.labels(queue, task)
        self.started = STARTED.labels(queue, task)
        self.timeouts = TIMEOUTS.labels(queue, task)
        self.pickup = PICKUP.labels(queue, task)
        self.run = RUN.labels(queue, task)
        self.finished = {o: FINISHED.labels(queue, task, o) for o in OUTCOMES}

    def finished_as(self, outcome: str) -> Counter:
        found = self.finished.get(outcome)
        if found is None:  # not one of OUTCOMES: a state this module was not told of
            found = self.finished[outcome] = FINISHED.labels(*self.labels, outcome)
        return found


_by_labels: dict[tuple[str, str], _Series] = {}
_by_name: dict[tuple[str, str], _Series] = {}


def series(queue: str, task: str) -> _Series:
    """The series of jobs of `task` in `queue`, under their bounded labels."""
    found = _by_name.get((queue, task))
    if found is not None:
        return found
    labels = (BOUNDS.queue(queue), BOUNDS.task(task))
    found = _by_labels.get(labels)
    if found is None:
        found = _by_labels[labels] = _Series(*labels)
    if len(_by_name) < _SERIES_CACHE_LIMIT:
        _by_name[(queue, task)] = found
    return found


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values`, bumping each bucket and the sum once.

    prometheus_client has no batch observe, and one observe takes a lock per value (a
    microsecond; more with multiprocess files); this uses its bucket bounds and values as
    observe does. tests/unit/test_metrics.py checks that both give the same exposition."""
    if not values:
        return
    bounds = histogram._upper_bounds  # ends with +Inf, as observe relies on too
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect.bisect_left(bounds, value)] += 1  # the first bound >= value
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(math.fsum(values))


# ----- what the insert core and the worker call --------------------------------------------


def enqueued(queue: str, task: str, count: int = 1) -> None:
    if count:
        series(queue, task).enqueued.inc(count)


def enqueued_each(pairs: Iterable[tuple[str, str]]) -> None:
    """Jobs of any queues and tasks, inserted in one statement."""
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    for (queue, task), count in counts.items():
        series(queue, task).enqueued.inc(count)


def started(jobs: Sequence[ClaimedJob]) -> None:
    """One claim's jobs: counted, and how long each waited after its run_at."""
    waits: dict[tuple[str, str], list[float]] = {}
    for job in jobs:
        key = (job.queue, job.task)
        found = waits.get(key)
        if found is None:
            waits[key] = [job.waited]
        else:
            found.append(job.waited)
    for (queue, task), values in waits.items():
        chosen = series(queue, task)
        chosen.started.inc(len(values))
        observe_many(chosen.pickup, values)


class FinishedTally:
    """One outcome write's attempts, grouped by series; `flush` bumps each once."""

    __slots__ = ("counts", "runs", "timeouts")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], int] = {}
        self.runs: dict[tuple[str, str], list[float]] = {}
        self.timeouts: dict[tuple[str, str], int] = {}

    def add(self, queue: str, task: str, outcome: str, run_seconds: float | None) -> None:
        key = (queue, task, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1
        if run_seconds is not None:
            pair = (queue, task)
            runs = self.runs.get(pair)
            if runs is None:
                self.runs[pair] = [run_seconds]
            else:
                runs.append(run_seconds)

    def timed_out(self, queue: str, task: str) -> None:
        pair = (queue, task)
        self.timeouts[pair] = self.timeouts.get(pair, 0) + 1

    def flush(self) -> None:
        for (queue, task, outcome), count in self.counts.items():
            series(queue, task).finished_as(outcome).inc(count)
        for (queue, task), runs in self.runs.items():
            observe_many(series(queue, task).run, runs)
        for (queue, task), count in self.timeouts.items():
            series(queue, task).timeouts.inc(count)


# ----- exposition ---------------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    """prometheus_client's directory for the values of several processes, if set (it reads
    the variable once, at import: set it before the process starts)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class _ThisProcess(Collector):
    """The default registry's series (ours, and the runtime's), seen from another registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def add_process_series(registry: CollectorRegistry) -> None:
    """Make `registry` expose the job series: this process's own or, with a multiprocess
    directory, those of every process writing there, summed."""
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
    else:
        registry.register(_ThisProcess())
