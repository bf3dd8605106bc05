"""Health, readiness, the task catalogue, /stats and /metrics."""

from __future__ import annotations

import dataclasses
import inspect
from collections import defaultdict

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from jobrunner import client
from jobrunner.api.deps import AdminDep, PoolDep, PrincipalDep
from jobrunner.api.metrics import JOB_BUCKETS, Histogram, RequestMetrics, escape
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import QueueStatsPublic, StatsPublic, TaskPublic, ThroughputPublic
from jobrunner.api.submit import INTERNAL_TASK_PREFIX
from jobrunner.db import migrate, queries
from jobrunner.db.pool import Conn
from jobrunner.errors import ConfigError
from jobrunner.models import ThroughputMinute
from jobrunner.registry import registered_tasks

router = APIRouter(tags=["operations"])

COUNT_CAP = 100_000
THROUGHPUT_MINUTES = 15
LATENCY_WINDOW_SECONDS = 300.0
LATENCY_SAMPLE = 2000


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no database call)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database away or migrations pending"}})
async def readyz(pool: PoolDep) -> dict[str, str]:
    """The database answers and every migration is applied."""
    async with pool.acquire() as conn:
        try:
            current = await migrate.is_current(conn)
        except ConfigError as exc:  # an applied migration was edited afterwards
            raise ApiProblem(503, str(exc)) from None
    if not current:
        raise ApiProblem(503, "migrations are pending: run `jobrunner migrate`")
    return {"status": "ready"}


@router.get("/tasks")
async def tasks(me: PrincipalDep) -> list[TaskPublic]:
    """Every registered task, with a JSON schema of its arguments."""
    return [
        TaskPublic(
            name=t.name,
            queue=t.queue,
            priority=t.priority,
            max_attempts=t.max_attempts,
            timeout_seconds=t.timeout,
            cron=t.cron,
            description=inspect.getdoc(t.func),
            args_schema=t.args_schema(),
        )
        for t in registered_tasks()
        if not t.name.startswith(INTERNAL_TASK_PREFIX)
    ]


@router.get("/stats", responses={403: {"description": "Admins only"}})
async def stats(me: AdminDep, pool: PoolDep) -> StatsPublic:
    """Jobs per queue and state (each state counted up to 100,000) and recent throughput."""
    async with pool.acquire() as conn:
        counts = await client.count_jobs(conn=conn, cap=COUNT_CAP)
        rows = await client.throughput(conn=conn, minutes=THROUGHPUT_MINUTES)
    return StatsPublic(
        queues=[
            QueueStatsPublic(
                queue=c.queue,
                states=c.states,
                capped=[s for s, n in c.states.items() if n >= c.cap],
            )
            for c in counts
        ],
        throughput=[ThroughputPublic(**dataclasses.asdict(row)) for row in rows],
    )


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, pool: PoolDep) -> PlainTextResponse:
    """Prometheus text format: jobs by queue and state, outcomes, latencies, API latency."""
    request_metrics: RequestMetrics = request.app.state.metrics
    async with pool.acquire() as conn:
        lines = [*await _job_lines(conn), *request_metrics.lines()]
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _job_lines(conn: Conn) -> list[str]:
    counts = await client.count_jobs(conn=conn, cap=COUNT_CAP)
    rows = await client.throughput(conn=conn, minutes=THROUGHPUT_MINUTES)
    latencies = await queries.job_latency_recent(
        conn, seconds=LATENCY_WINDOW_SECONDS, limit=LATENCY_SAMPLE
    )
    lines = [
        "# HELP jobrunner_jobs Jobs by queue and state (each state counted up to 100000).",
        "# TYPE jobrunner_jobs gauge",
    ]
    for c in counts:
        lines += [
            f'jobrunner_jobs{{queue="{escape(c.queue)}",state="{s}"}} {n}'
            for s, n in c.states.items()
        ]
    lines += _outcome_lines(rows)
    lines += _latency_lines(latencies)
    return lines


def _outcome_lines(rows: list[ThroughputMinute]) -> list[str]:
    name = "jobrunner_job_outcomes_recent"
    lines = [
        f"# HELP {name} Attempt outcomes over the last {THROUGHPUT_MINUTES} minutes.",
        f"# TYPE {name} gauge",
    ]
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        totals[(row.queue, "succeeded")] += row.succeeded
        totals[(row.queue, "failed")] += row.failed
        totals[(row.queue, "retried")] += row.retried
        totals[(row.queue, "cancelled")] += row.cancelled
    lines += [
        f'{name}{{queue="{escape(q)}",outcome="{o}"}} {n}' for (q, o), n in sorted(totals.items())
    ]
    return lines


def _latency_lines(samples: list[tuple[str, float, float]]) -> list[str]:
    lines: list[str] = []
    for kind, index in (("pickup", 1), ("run", 2)):
        name = f"jobrunner_job_{kind}_seconds"
        lines += [
            f"# HELP {name} {kind} latency of jobs finished in the last "
            f"{LATENCY_WINDOW_SECONDS:g}s (up to {LATENCY_SAMPLE} most recent).",
            f"# TYPE {name} histogram",
        ]
        by_queue: dict[str, Histogram] = defaultdict(lambda: Histogram(JOB_BUCKETS))
        for sample in samples:
            by_queue[sample[0]].observe(max(0.0, float(sample[index])))
        for queue, histogram in sorted(by_queue.items()):
            lines += histogram.lines(name, f'queue="{escape(queue)}"')
    return lines
