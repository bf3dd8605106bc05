"""The app factory: `create_app(settings)` builds a FastAPI app with everything wired.

Its lifespan checks the JWT secret, opens the API's pool and its doorbell (kept in
`app.state`, passed to every `client.*` call: the API never touches the client's process-wide
default pool, which a worker in the same process owns), loads the task modules, and starts
the one SSE poller of this process, its reader of the queues workers serve (api.served) and
its reader of the queue access rules (api.queue_access).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from jobrunner import metrics
from jobrunner.api import (
    admin_routes,
    auth_routes,
    bulk_routes,
    docs,
    housekeeping,
    jobs_routes,
    ops_routes,
    problems,
    queue_routes,
    schedule_routes,
    sse_routes,
    workers_routes,
)
from jobrunner.api.direct_submit import DirectSubmit
from jobrunner.api.events import EventHub, StreamLimits
from jobrunner.api.job_metrics import JobMetrics
from jobrunner.api.limits import SubmitTokensAhead, UnfinishedJobs
from jobrunner.api.metrics import Exposition
from jobrunner.api.middleware import ApiMiddleware
from jobrunner.api.proxies import TrustedProxies, parse_networks
from jobrunner.api.queue_access import QueueAccess
from jobrunner.api.queue_routes import QueueCountsCache
from jobrunner.api.served import ServedQueues
from jobrunner.api.submit import SubmitContext
from jobrunner.api.submit_batch import SubmitBatcher
from jobrunner.auth import TokenCodec
from jobrunner.dashboard import bulk_pages, queue_pages, schedule_pages
from jobrunner.dashboard import routes as dashboard
from jobrunner.db.pool import create_pool, wait_for_database
from jobrunner.doorbell import Doorbell
from jobrunner.errors import ConfigError
from jobrunner.settings import Settings
from jobrunner.task_modules import load_task_modules

DESCRIPTION = """
Submit background jobs and follow them. PostgreSQL is the only queue.

Log in with **Authorize** (or `POST /auth/token`), then call the routes with
`Authorization: Bearer <access_token>`. Errors are `application/problem+json` (RFC 9457).
"""


def codec_for(settings: Settings) -> TokenCodec:
    """The token signer; a missing or weak secret outside dev mode fails here, at startup."""
    return TokenCodec(
        secret=settings.require_jwt_secret(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )


def create_app(settings: Settings) -> FastAPI:
    codec = codec_for(settings)  # fail before anything listens

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.database_url:
            raise ConfigError("JOBRUNNER_DATABASE_URL is not set")
        load_task_modules(settings.tasks)
        dsn = settings.database_url
        pool = await wait_for_database(
            lambda: create_pool(
                dsn,
                role="api",
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                stateless=True,  # routes run single statements and transactions, nothing more
            ),
            wait=settings.startup_wait,
        )
        doorbell = Doorbell(pool)
        batcher = SubmitBatcher(pool, doorbell)
        served = ServedQueues(pool, window=settings.served_queue_window)
        access = QueueAccess(pool)
        app.state.submit_context = SubmitContext(
            pool, codec, SubmitTokensAhead(settings), UnfinishedJobs(), batcher, served, access
        )
        app.state.queue_counts = QueueCountsCache(pool)
        app.state.job_metrics = JobMetrics(
            pool,
            ttl=settings.metrics_cache_seconds,
            max_queues=settings.metrics_max_queues,
            snapshot_warn=settings.snapshot_warn_seconds,
        )
        app.state.exposition.attach(app.state.job_metrics)
        hub = EventHub(pool, limits=StreamLimits.of(settings))
        app.state.pool, app.state.doorbell, app.state.events = pool, doorbell, hub
        background = [
            asyncio.create_task(hub.run(), name="jobrunner-sse-poller"),
            asyncio.create_task(served.run(), name="jobrunner-served-queues"),
            asyncio.create_task(
                housekeeping.run_forever(pool, housekeeping.HousekeepingConfig()),
                name="jobrunner-api-housekeeping",
            ),
            asyncio.create_task(access.run_forever(), name="jobrunner-queue-access"),
        ]
        if settings.listen:  # else event streams poll only (a pooler that drops LISTEN)
            bell = hub.bell(dsn, max_backoff=settings.reconnect_max_delay)
            background.append(asyncio.create_task(bell.run(), name="jobrunner-sse-bell"))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await batcher.drain()
            await doorbell.flush()  # rings of the last submissions, before their pool goes
            app.state.exposition.detach()
            await pool.close()

    app = FastAPI(
        title="jobrunner",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        docs_url=None,  # docs.install serves them without a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry: request spans when a tracer provider is set up. Its
        # metrics and logs are off (/metrics and structlog do those), and with them two of
        # the three "is a provider configured?" checks it made on every request.
        telemetry={"metrics": False, "logs": False},
    )
    app.state.settings, app.state.codec = settings, codec
    app.state.exposition = Exposition()
    app.state.metrics = app.state.exposition.requests
    # Enqueued counts (jobrunner.metrics) name this many queues at most, as /metrics does.
    metrics.configure(max_queues=settings.metrics_max_queues, known_queues=settings.queues)
    app.state.direct_submit = DirectSubmit(app)
    problems.install(app)
    docs.install(app)
    routers = (
        auth_routes, admin_routes, jobs_routes, queue_routes, sse_routes, ops_routes,
        workers_routes, schedule_routes,
    )  # fmt: skip
    for module in (*routers, dashboard, queue_pages, bulk_pages, schedule_pages):
        app.include_router(module.router)
    app.include_router(bulk_routes.router)  # POST /jobs/bulk (issue 16)
    app.add_middleware(
        ApiMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        body_timeout=settings.body_read_timeout,
        metrics=app.state.metrics,
        direct=app.state.direct_submit,
    )
    if settings.trusted_proxies:  # outermost: every part below sees the real client
        app.add_middleware(TrustedProxies, trusted=parse_networks(settings.trusted_proxies))
    return app
