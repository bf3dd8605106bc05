"""HTTP and workers in one asyncio loop: what `jobrunner up` and `jobrunner api` run.

uvicorn normally owns SIGTERM and SIGINT; here the loop owns them, so one signal stops both
the server (it finishes open requests) and the worker (it drains, then releases what is left).
A second signal hurries both: open connections are dropped and running jobs released at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

import structlog
import uvicorn

from jobrunner import client, eventloop, fleet
from jobrunner.api.events import EventHub
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Pool, wait_for_database
from jobrunner.settings import Settings
from jobrunner.worker import exporter
from jobrunner.worker.shutdown import exit_if_handlers_stuck
from jobrunner.worker.worker import Worker

log = structlog.get_logger("jobrunner.serve")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process's loop owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(settings: Settings) -> uvicorn.Server:
    from jobrunner.api.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # uvicorn's loggers go through ours (jobrunner.logs): JSON lines like every other,
        # not its own plain-text handlers beside them.
        log_config=None,
        lifespan="on",
        server_header=False,
        # X-Forwarded-For is read by jobrunner.api.proxies, from JOBRUNNER_TRUSTED_PROXIES
        # only: uvicorn's default believes any loopback peer.
        proxy_headers=False,
        # The ASGI middleware answers 431 above max_header_bytes; with the h11 parser this
        # also bounds what the server buffers before it sees a whole request head.
        h11_max_incomplete_event_size=settings.max_header_bytes + 1024,
        timeout_graceful_shutdown=max(1, round(settings.drain_timeout)),
    )
    return _Server(config)


async def _run_http(server: uvicorn.Server) -> bool:
    """Serve until told to stop; False when the server never started (port taken, bad app)."""
    try:
        await server.serve()
    except SystemExit:  # uvicorn's way of reporting a failed startup
        return False
    if server.started and server.force_exit:
        # A second stop makes uvicorn skip the app's shutdown: run it here, so its pools
        # close and its task is not left for the loop to cancel, with a traceback, at exit.
        await server.lifespan.shutdown()
    return server.started


async def serve(settings: Settings, *, dsn: str, with_worker: bool) -> int:
    """Run the API (and a worker) until SIGTERM or SIGINT; 0 after a clean stop."""
    server = http_server(settings)
    worker = Worker(settings, dsn=dsn) if with_worker else None
    eventloop.freeze_startup_objects()
    stops = 0

    def stop() -> None:
        nonlocal stops
        stops += 1
        server.should_exit = True
        _end_event_streams(server)
        server.force_exit = stops > 1
        if worker is not None and stops <= 2:
            worker.request_stop()  # the second request skips the drain

    _handle_stop_signals(stop)
    pool = None
    if worker is not None:
        pool = await _client_pool(settings, dsn, worker)
        if pool is None:  # stopped before the database came back
            return 0
    tasks: dict[str, asyncio.Task[Any]] = {
        "api": asyncio.create_task(_run_http(server), name="jobrunner-http")
    }
    notice = None
    if worker is not None:
        tasks["worker"] = asyncio.create_task(worker.run(), name="jobrunner-worker")
        assert pool is not None
        notice = asyncio.create_task(warn_unserved(worker, pool, settings), name="jobrunner-notice")
    exits = contextlib.ExitStack()
    try:
        if worker is not None:  # a port of its own, if set (/metrics has its series too)
            exits.enter_context(exporter.serving(settings))
        await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_COMPLETED)
        if not stops:
            log.error(
                "a part stopped on its own; stopping the rest",
                stopped=[name for name, t in tasks.items() if t.done()],
            )
            stop()
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        code = _exit_code(dict(zip(tasks, results, strict=True)))
        await exit_if_handlers_stuck(worker, code)
    finally:
        exits.close()
        if notice is not None:
            notice.cancel()
        _handle_stop_signals(None)
        if pool is not None:
            await client.close()  # the worker's client pool: rings what handlers enqueued
    return code


async def warn_unserved(worker: Worker, pool: Pool, settings: Settings) -> None:
    """Once the worker has registered, warn of queues with queued jobs that no live worker
    serves (this one included): nothing will run those jobs until such a worker starts."""
    await worker.presence.registered.wait()
    try:
        async with pool.acquire() as conn:
            workers = await fleet.list_workers(conn, seen_timeout=settings.worker_seen_timeout)
            unserved = await fleet.unserved_queues(conn, workers)
    except DB_ERRORS as exc:
        log.warning("could not check which queues no worker serves", error=str(exc))
        return
    if unserved:
        log.warning(
            "no live worker serves these queues, so their jobs wait",
            queues=fleet.describe(unserved),
            fix="start a worker for them (JOBRUNNER_QUEUES), or cancel the jobs",
        )


def _end_event_streams(server: uvicorn.Server) -> None:
    """Open event streams never end on their own: ended now (each told to reconnect), they
    let the server's graceful shutdown finish instead of being cancelled at its timeout."""
    app = server.config.app
    hub = getattr(getattr(app, "state", None), "events", None)
    if isinstance(hub, EventHub):
        hub.stop()


def _handle_stop_signals(stop: Callable[[], None] | None) -> None:
    """Route SIGTERM and SIGINT to `stop`; None gives them back to the default handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if stop is None:
            loop.remove_signal_handler(sig)
        else:
            loop.add_signal_handler(sig, stop)


async def _client_pool(settings: Settings, dsn: str, worker: Worker) -> Pool | None:
    """The client's default pool, which jobs that enqueue jobs use (the API keeps a pool of
    its own); None when a stop comes before the database does."""
    return await wait_for_database(
        lambda: client.configure(dsn), wait=settings.startup_wait, stop=worker.stop_requested
    )


def _exit_code(results: dict[str, object]) -> int:
    code = 0
    for name, result in results.items():
        if isinstance(result, BaseException):
            log.error("stopped with an error", part=name, error=repr(result))
            code = 1
        elif name == "api" and result is False:
            log.error("the HTTP server did not start")
            code = 1
    return code
