"""`jobrunner migrate`, `worker`, `api` and `up`: the long-running commands."""

from __future__ import annotations

import argparse
import asyncio
import secrets
from typing import Any

import structlog

from jobrunner import client, eventloop
from jobrunner.cli.common import Database, database, err, out, settings_from
from jobrunner.cli.locate import locate, registered_up
from jobrunner.db import migrate as migrations
from jobrunner.db.pool import Conn, connect, wait_for_database
from jobrunner.registry import registered_tasks
from jobrunner.settings import Settings
from jobrunner.task_modules import load_task_modules

DEMO_ADMIN = "admin"
log = structlog.get_logger("jobrunner.cli")

# ----- migrate --------------------------------------------------------------------------


async def _migrate(dsn: str, args: argparse.Namespace, wait: float) -> int:
    admin: str | None = args.first_admin
    conn = await wait_for_database(lambda: connect(dsn, role="migrate"), wait=wait)
    try:
        if args.status:
            state = await migrations.status(conn)
            for migration, applied_at in state.applied:
                out(
                    f"applied  {migration.version:04d}_{migration.name}  "
                    f"{applied_at:%Y-%m-%d %H:%M:%S%z}"
                )
            for migration in state.pending:
                out(f"pending  {migration.version:04d}_{migration.name}")
            return 0
        applied = await migrations.migrate(conn)
        for migration in applied:
            out(f"applied {migration.version:04d}_{migration.name}")
        if not applied:
            out("database is up to date")
        if admin:
            password = await first_admin(conn, admin)
            if password is not None:  # else accounts exist: this is not a first start
                out(f"created admin {admin}, password {password}  (shown this once)")
        return 0
    finally:
        await conn.close()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_from({})
    with database(settings, create=not args.status, migrated=False) as db:
        return asyncio.run(_migrate(db.dsn, args, settings.startup_wait))


# ----- worker, api, up ------------------------------------------------------------------


async def _work(settings: Settings, dsn: str) -> int:
    from jobrunner.worker import exporter
    from jobrunner.worker.shutdown import exit_if_handlers_stuck
    from jobrunner.worker.worker import Worker

    load_task_modules(settings.tasks)
    worker = Worker(settings, dsn=dsn)
    worker.install_signal_handlers()
    pool = await wait_for_database(
        lambda: client.configure(dsn), wait=settings.startup_wait, stop=worker.stop_requested
    )
    if pool is None:  # stopped before the database came back
        return 0
    # What was built to get here (modules, task registry, settings) lives as long as the
    # process: out of the collector's sight, a collection walks only the jobs' own objects.
    eventloop.freeze_startup_objects(collect=False)
    try:
        with exporter.serving(settings):
            await worker.run()
        await exit_if_handlers_stuck(worker)
    finally:
        await client.close()  # rings what handlers enqueued, then closes the pool
    return 0


def _worker_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "queues": args.queues,
        "concurrency": args.concurrency,
        "poll_interval": args.poll_interval,
        "lease_seconds": args.lease_seconds,
        "heartbeat_interval": args.heartbeat_interval,
        "drain_timeout": args.drain_timeout,
        "maintenance_interval": args.maintenance_interval,
        "listen": args.listen,
        "backoff_base": args.backoff_base,
        "backoff_cap": args.backoff_cap,
    }


def cmd_worker(args: argparse.Namespace) -> int:
    settings = settings_from(_worker_settings(args))
    # Said in the log, not on stderr: a worker's stderr is JSON lines.
    with database(settings, migrated=False, say=False) as db:
        log.info("database", where=db.location.describe())
        return eventloop.run(_work(settings, db.dsn))


def cmd_api(args: argparse.Namespace) -> int:
    from jobrunner.serve import serve

    settings = settings_from({"host": args.host, "port": args.port})
    where = locate(settings)
    settings = settings.model_copy(update={"data_dir": where.data_dir})
    settings.require_jwt_secret()  # fail before starting anything
    load_task_modules(settings.tasks)
    with database(settings, location=where, migrated=False, say=False) as db:
        log.info("database", where=where.describe())
        settings = db.settings_for(settings)
        return eventloop.run(serve(settings, dsn=db.dsn, with_worker=False))


def cmd_up(args: argparse.Namespace) -> int:
    from jobrunner.serve import serve

    settings = settings_from({"host": args.host, "port": args.port, **_worker_settings(args)})
    where = locate(settings, create=True)
    settings = settings.model_copy(update={"data_dir": where.data_dir})
    if settings.jwt_secret is None and not settings.dev_mode:
        settings = settings.model_copy(update={"dev_mode": True})
        err(
            "No JOBRUNNER_JWT_SECRET: dev mode, with a generated secret kept in "
            f"{settings.data_dir}/dev-jwt-secret. Set one before exposing this server."
        )
    settings.require_jwt_secret()
    load_task_modules(settings.tasks)
    settings = _serve_every_task_queue(settings)
    with database(settings, location=where, migrated=False) as db, registered_up(where):
        settings = db.settings_for(settings)
        password = asyncio.run(_prepare(db.dsn))
        _banner(settings, db, password)
        return eventloop.run(serve(settings, dsn=db.dsn, with_worker=True))


def _serve_every_task_queue(settings: Settings) -> Settings:
    """`up` is everything in one process: unless told which queues to serve (--queues,
    JOBRUNNER_QUEUES), its worker serves every registered task's queue besides the default
    ones, so a task declared with `queue="emails"` runs under `make run` as written."""
    if "queues" in settings.model_fields_set:
        return settings
    extra = sorted({t.queue for t in registered_tasks()} - set(settings.queues))
    return settings.model_copy(update={"queues": [*settings.queues, *extra]})


async def _prepare(dsn: str) -> str | None:
    """Migrate, and on first start create the demo admin; returns its password if created."""
    conn = await connect(dsn, role="up")
    try:
        for migration in await migrations.migrate(conn):
            err(f"applied migration {migration.version:04d}_{migration.name}")
        return await first_admin(conn, DEMO_ADMIN)
    finally:
        await conn.close()


async def first_admin(conn: Conn, username: str) -> str | None:
    """Create admin `username` if the database has no account yet (a first start); returns
    its generated password, or None when accounts exist already."""
    from jobrunner import accounts

    if await accounts.list_users(conn):
        return None
    password = secrets.token_urlsafe(12)
    await accounts.create_user(conn, username=username, password=password, admin=True)
    return password


def _banner(settings: Settings, db: Database, password: str | None) -> None:
    url = f"http://{settings.host}:{settings.port}"
    lines = [
        "",
        f"  jobrunner is starting on {url}",
        f"    dashboard  {url}/dashboard",
        f"    API docs   {url}/docs",
        f"    psql       {db.psql_command()}",
        f"    worker     queues {', '.join(settings.queues)}",
    ]
    if password is not None:
        lines += [
            f"    demo admin {DEMO_ADMIN} / {password}",
            "               (shown this once; `jobrunner users create` adds more)",
        ]
    lines += [f"  Ctrl-C stops it; running jobs get {settings.drain_timeout:g}s to finish.", ""]
    err("\n".join(lines))
