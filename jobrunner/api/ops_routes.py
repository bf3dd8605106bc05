"""Health, readiness, the task catalogue, /stats and /metrics."""

from __future__ import annotations

import dataclasses
import hmac
import inspect
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from jobrunner import accounts, client
from jobrunner.api.deps import AdminDep, CodecDep, PoolDep, PrincipalDep, SettingsDep, bearer
from jobrunner.api.job_metrics import COUNT_CAP, THROUGHPUT_MINUTES
from jobrunner.api.metrics import CONTENT_TYPE, Exposition
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import QueueStatsPublic, StatsPublic, TaskPublic, ThroughputPublic
from jobrunner.api.submit import INTERNAL_TASK_PREFIX
from jobrunner.db import migrate
from jobrunner.errors import ConfigError
from jobrunner.registry import registered_tasks

router = APIRouter(tags=["operations"])


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
                capped=[s for s in c.states if c.at_least(s)],
            )
            for c in counts
        ],
        throughput=[ThroughputPublic(**dataclasses.asdict(row)) for row in rows],
    )


async def metrics_reader(
    settings: SettingsDep,
    pool: PoolDep,
    codec: CodecDep,
    token: Annotated[str | None, Depends(bearer)],
) -> None:
    """JOBRUNNER_METRICS_ACCESS: `public` lets anyone read; `admin` (the default) wants an
    admin's access token or JOBRUNNER_METRICS_TOKEN, since the lines name every tenant's
    queues and each scrape costs the database."""
    if settings.metrics_access == "public":
        return
    if not token:
        raise ApiProblem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    scraper = settings.metrics_token
    if scraper is not None and hmac.compare_digest(
        token.encode(), scraper.get_secret_value().encode()
    ):
        return
    async with pool.acquire() as conn:
        principal = await accounts.authenticate(conn, codec, token)
    if not principal.is_admin:
        raise ApiProblem(403, "this needs an admin account or the metrics token")


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    dependencies=[Depends(metrics_reader)],
    responses={401: {}, 403: {}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: job counters and latency histograms, queue depths, the oldest
    snapshot, API latency (README "Metrics")."""
    exposition: Exposition = request.app.state.exposition
    return Response(await exposition.render(), media_type=CONTENT_TYPE)
