"""`jobrunner doctor`: checks that say what is wrong and how to fix it.

Each check returns a `Check`; none prints. The CLI shows them as OK / WARN / FAIL lines and
exits non-zero when any failed. The database checks run in order and stop at the first failure
(migrations cannot be read from a server that cannot be reached).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from jobrunner import client, fleet, horizon
from jobrunner.cli.locate import Location, locate, redact
from jobrunner.db import migrate as migrations
from jobrunner.db import queries
from jobrunner.db.pool import Conn, connect
from jobrunner.db.queries import DefaultRows, HistoryPartitions
from jobrunner.errors import ConfigError
from jobrunner.models import WorkerInfo
from jobrunner.registry import registered_tasks
from jobrunner.settings import Settings
from jobrunner.task_modules import load_task_modules

Status = Literal["ok", "warn", "fail"]
MIN_SERVER_VERSION = 130000  # gen_random_uuid() is built in from PostgreSQL 13
NOTIFY_TIMEOUT = 5.0
# How long past JOBRUNNER_ARCHIVE_AFTER a finished job may wait in jobs before doctor calls the
# archiver behind. Healthy, it moves a job within a maintenance tick (1 s) of its time, up to
# 100,000 a tick, so the oldest is ARCHIVE_AFTER and a second old; what delays it more is
# absolute, not a multiple of ARCHIVE_AFTER: no worker running during a deploy, a tick
# waiting on a lock, an upgrade's backlog moved over its first ticks. Ten minutes outlasts
# those and still warns the same day (a multiple would be seconds for a small ARCHIVE_AFTER
# and days for a large one).
ARCHIVE_GRACE = 600.0
ARCHIVE_COUNT_CAP = 10_000  # finished jobs waiting, and rows of the default partition


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


# ----- settings -----------------------------------------------------------------------


def check_location(settings: Settings) -> tuple[Location | None, Check]:
    """Which database the checks below use, and why that one (jobrunner.cli.locate)."""
    try:
        where = locate(settings)
    except ConfigError as exc:
        return None, Check("which database", "fail", str(exc))
    return where, Check("which database", "ok", where.describe())


def check_jwt_secret(settings: Settings) -> Check:
    name = "JWT secret"
    if settings.jwt_secret is None:
        kept = settings.data_dir / "dev-jwt-secret"
        if settings.dev_mode or kept.exists():  # `jobrunner up` turns dev mode on by itself
            return Check(
                name,
                "warn",
                f"dev mode: a generated secret kept in {kept}",
                "set JOBRUNNER_JWT_SECRET (32+ random bytes) before production",
            )
        if not settings.database_url:
            return Check(
                name,
                "warn",
                "not set: `jobrunner up` will run in dev mode, with a generated secret",
                "set JOBRUNNER_JWT_SECRET (32+ random bytes) for `jobrunner api` and production",
            )
        return Check(
            name,
            "fail",
            "JOBRUNNER_JWT_SECRET is not set",
            "export JOBRUNNER_JWT_SECRET=$(python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'), or JOBRUNNER_DEV_MODE=1 locally",
        )
    try:
        settings.require_jwt_secret()
    except ConfigError as exc:
        return Check(name, "fail", str(exc), "use a longer random secret")
    return Check(name, "ok", "set, long enough")


def check_tasks(settings: Settings) -> Check:
    try:
        load_task_modules(settings.tasks)
    except ConfigError as exc:
        return Check(
            "tasks", "fail", str(exc), "fix JOBRUNNER_TASKS (comma-separated import paths)"
        )
    names = [t.name for t in registered_tasks()]
    return Check("tasks", "ok", f"{len(names)} registered: {', '.join(names)}")


def check_timings(settings: Settings) -> Check:
    problems = []
    if settings.heartbeat_interval * 3 > settings.lease_seconds:
        problems.append(
            "a lease should outlast at least three heartbeats "
            "(JOBRUNNER_HEARTBEAT_INTERVAL * 3 <= JOBRUNNER_LEASE_SECONDS)"
        )
    if settings.pool_min_size > settings.pool_max_size:
        problems.append("JOBRUNNER_POOL_MIN_SIZE is larger than JOBRUNNER_POOL_MAX_SIZE")
    if settings.backoff_base > settings.backoff_cap:
        problems.append("JOBRUNNER_BACKOFF_BASE is larger than JOBRUNNER_BACKOFF_CAP")
    if problems:
        return Check("timings", "warn", "; ".join(problems), "adjust the variables named")
    return Check(
        "timings",
        "ok",
        f"lease {settings.lease_seconds:g}s, heartbeat "
        f"{settings.heartbeat_interval:g}s, drain {settings.drain_timeout:g}s",
    )


def check_settings(settings: Settings) -> list[Check]:
    return [check_jwt_secret(settings), check_tasks(settings), check_timings(settings)]


# ----- database -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchivePace:
    """What the archive's settings promise (README "Retention"), for check_archive."""

    after: float  # JOBRUNNER_ARCHIVE_AFTER
    partitions_ahead: int  # JOBRUNNER_HISTORY_PARTITIONS_AHEAD
    partition_seconds: float  # JOBRUNNER_HISTORY_PARTITION_HOURS, in seconds
    partition_interval: float  # JOBRUNNER_HISTORY_PARTITION_INTERVAL

    @classmethod
    def of(cls, settings: Settings) -> ArchivePace:
        return cls(
            after=settings.archive_after,
            partitions_ahead=settings.history_partitions_ahead,
            partition_seconds=settings.history_partition_hours * 3600.0,
            partition_interval=settings.history_partition_interval,
        )

    @property
    def lag_warn(self) -> float:
        """Seconds since the oldest finished job in jobs finished past which it is late."""
        return self.after + ARCHIVE_GRACE

    @property
    def partitions_needed(self) -> int:
        """Partitions starting after now that must exist at any moment. Maintenance tops
        them up to `partitions_ahead` every `partition_interval`; a partition boundary
        passed since (at most interval // width + 1 of them) leaves as many fewer until its
        next run, and that is no fault."""
        passed = math.floor(self.partition_interval / self.partition_seconds) + 1
        return max(self.partitions_ahead - passed, 0)


async def check_database(
    dsn: str,
    *,
    seen_timeout: float,
    archive: ArchivePace,
    snapshot_warn: float = 120.0,
) -> list[Check]:
    """Reachable, recent enough, migrated, and delivering notifications; stops at a failure.
    Then what the worker registry says (workers seen within `seen_timeout` are live), the
    oldest snapshot, and whether the archive keeps up (`archive`)."""
    started = time.perf_counter()
    try:
        conn = await connect(dsn, role="doctor")
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return [
            Check(
                "database",
                "fail",
                f"{redact(dsn)}: {exc or type(exc).__name__}",
                "is PostgreSQL running? check JOBRUNNER_DATABASE_URL (host, port, "
                "user, password, database)",
            )
        ]
    try:
        info = await queries.server_info(conn)
        elapsed = (time.perf_counter() - started) * 1000
        reached = Check(
            "database",
            "ok",
            f"PostgreSQL {info.version}, database {info.database!r} ({elapsed:.0f} ms)",
        )
        if info.version_num < MIN_SERVER_VERSION:
            return [
                Check(
                    "database",
                    "fail",
                    f"PostgreSQL {info.version} is too old",
                    "use PostgreSQL 13 or newer",
                )
            ]
        checks = [reached, await check_migrations(conn)]
        if checks[-1].status == "fail":
            return checks
        checks.append(await check_notify(conn, dsn))
        workers = await fleet.list_workers(conn, seen_timeout=seen_timeout)
        return [
            *checks,
            await check_workers(conn, workers),
            await check_unknown_tasks(conn, workers),
            await check_horizon(conn, snapshot_warn),
            await check_archive(conn, archive),
        ]
    finally:
        await conn.close()


async def check_migrations(conn: Conn) -> Check:
    try:
        state = await migrations.status(conn)
    except ConfigError as exc:
        return Check("migrations", "fail", str(exc), "restore the migration file as applied")
    if state.pending:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in state.pending)
        return Check(
            "migrations",
            "fail",
            f"{len(state.pending)} pending: {names}",
            "run `jobrunner migrate`",
        )
    return Check("migrations", "ok", f"{len(state.applied)} applied, none pending")


async def check_workers(conn: Conn, workers: list[WorkerInfo]) -> Check:
    """Queued jobs in a queue no live worker serves wait until one starts."""
    unserved = await fleet.unserved_queues(conn, workers)
    if unserved:
        return Check(
            "workers",
            "warn",
            f"no live worker serves these queues, so their jobs wait: {fleet.describe(unserved)}",
            "start a worker for them (JOBRUNNER_QUEUES, or `jobrunner worker --queues`), "
            "or cancel the jobs",
        )
    live = [w for w in workers if w.live]
    if not live:
        return Check("workers", "ok", "none live, and no job is queued")
    queues = ", ".join(sorted(fleet.served_queues(live)))
    return Check("workers", "ok", f"{len(live)} live, serving {queues}")


async def check_unknown_tasks(conn: Conn, workers: list[WorkerInfo]) -> Check:
    """Jobs a worker put back because it did not know their task: they wait (their attempts
    unspent) until a worker that registers the task takes them. A task some live worker
    knows by now (the deploy finished) is only mentioned: its jobs run when next due."""
    missing, known_now = fleet.split_unknown(await client.unknown_tasks(conn=conn), workers)
    later = f"; known now to a live worker, so run when due: {fleet.describe(known_now)}"
    if not missing:
        detail = "every waiting job's task was known to its worker"
        return Check("unknown tasks", "ok", detail + (later if known_now else ""))
    return Check(
        "unknown tasks",
        "warn",
        f"no live worker knows these tasks, so their jobs wait: {fleet.describe(missing)}"
        + (later if known_now else ""),
        "deploy the code that registers them to the workers (JOBRUNNER_TASKS), or cancel the jobs",
    )


async def check_horizon(conn: Conn, warn_after: float) -> Check:
    """A snapshot held for minutes anywhere on the server keeps every finished job's dead
    row and index entry in the claim's way (jobrunner.horizon)."""
    found = await horizon.read(conn, warn_after=warn_after)
    if found.holder is None:
        return Check("long transactions", "ok", "no snapshot holds back cleanup")
    if not found.too_old:
        held = horizon.duration(found.held_seconds)
        return Check("long transactions", "ok", f"the oldest snapshot is {held} old")
    return Check(
        "long transactions",
        "warn",
        horizon.describe(found.holder)
        + "; until it ends, dead job rows stay and every claim steps over them",
        horizon.remedy(found.holder),
    )


async def check_archive(conn: Conn, pace: ArchivePace) -> Check:
    """Finished jobs leave jobs for job_history ARCHIVE_AFTER after they finish, into
    partitions made ahead of them (README "Retention"). Warns when the archiver is behind
    (the live table, which every claim walks, keeps growing), when fewer partitions are made
    ahead than settings ask, or when rows sit in the default partition: there they are
    deleted row by row, and they keep their range's partition from being made. Reads index
    ends and the catalog, never counting more than ARCHIVE_COUNT_CAP rows."""
    oldest = await queries.job_archive_oldest(conn)
    due = await queries.job_archive_due(conn, older_than=pace.after, cap=ARCHIVE_COUNT_CAP)
    partitions = await queries.job_history_partitions_ahead(conn)
    default = await queries.job_history_default_rows(conn, cap=ARCHIVE_COUNT_CAP)
    stray = _default_rows(default)
    found = [_archive_late(oldest, due, pace), _partitions_short(partitions, pace), stray]
    problems = [p for p in found if p is not None]
    if not problems:
        return Check("archive", "ok", _archive_summary(oldest, due, partitions, pace))
    fix = (
        "the archiver and the partitions are maintenance's, done by whichever worker holds "
        "its lock: start a worker if none runs, and look in the workers' logs for "
        "'maintenance tick failed'"
    )
    if stray is not None:
        fix += "; rows in job_history_default are deleted once past retention"
    return Check("archive", "warn", "; ".join(problems), fix)


def _archive_late(oldest: float | None, due: int, pace: ArchivePace) -> str | None:
    if oldest is None or oldest <= pace.lag_warn:
        return None
    return (
        f"{_jobs(due)} finished jobs wait in jobrunner.jobs to be archived, the oldest "
        f"finished {horizon.duration(oldest)} ago (JOBRUNNER_ARCHIVE_AFTER is "
        f"{horizon.duration(pace.after)})"
    )


def _partitions_short(found: HistoryPartitions, pace: ArchivePace) -> str | None:
    # None made yet: a fresh install; maintenance makes them before it first archives.
    if found.made == 0 or (found.covers_now and found.ahead >= pace.partitions_needed):
        return None
    asked = f"JOBRUNNER_HISTORY_PARTITIONS_AHEAD is {pace.partitions_ahead}"
    if not found.covers_now:
        return (
            f"no partition of job_history covers now ({found.ahead} ahead; {asked}): jobs "
            "archived now go to job_history_default"
        )
    return (
        f"only {found.ahead} partitions of job_history ahead of now ({asked}): once they "
        "are passed, jobs archived go to job_history_default"
    )


def _default_rows(found: DefaultRows) -> str | None:
    if not found.held or found.oldest is None or found.newest is None:
        return None
    span = f"{found.oldest:%Y-%m-%d %H:%M} to {found.newest:%Y-%m-%d %H:%M} UTC"
    return (
        f"{_jobs(found.held)} jobs in job_history_default (finished {span}): no partition "
        "was there for them, and none can be made for their time while they stay"
    )


def _archive_summary(
    oldest: float | None, due: int, partitions: HistoryPartitions, pace: ArchivePace
) -> str:
    if oldest is None:
        jobs = "no finished job waits in jobrunner.jobs"
    else:
        jobs = (
            f"{_jobs(due)} finished jobs past JOBRUNNER_ARCHIVE_AFTER in jobrunner.jobs, the "
            f"oldest finished {horizon.duration(oldest)} ago"
        )
    if partitions.made == 0:
        return jobs + "; no partition made yet (maintenance makes them before it archives)"
    return f"{jobs}; {partitions.ahead} partitions ahead ({pace.partitions_ahead} asked)"


def _jobs(count: int) -> str:
    """A count read up to ARCHIVE_COUNT_CAP, as an operator should read it."""
    return f"{count:,}+" if count >= ARCHIVE_COUNT_CAP else f"{count:,}"


async def check_notify(sender: Conn, dsn: str) -> Check:
    """LISTEN on a dedicated connection, NOTIFY from another, and time the delivery."""
    channel = f"jobrunner_doctor_{secrets.token_hex(4)}"
    payload = secrets.token_hex(8)
    listener = await connect(dsn, role="doctor-listener")
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_notify(*args: Any) -> None:
        if not received.done():
            received.set_result(args[3])

    try:
        await listener.add_listener(channel, on_notify)
        started = time.perf_counter()
        await queries.notify_send(sender, channel=channel, payload=payload)
        got = await _within(received, NOTIFY_TIMEOUT)
    finally:
        await listener.close()
    if got != payload:
        return Check(
            "LISTEN/NOTIFY",
            "fail",
            f"no notification within {NOTIFY_TIMEOUT:g}s",
            "a connection pooler in transaction mode drops LISTEN: point "
            "JOBRUNNER_DATABASE_URL at PostgreSQL itself or a session-mode pool",
        )
    elapsed = (time.perf_counter() - started) * 1000
    return Check("LISTEN/NOTIFY", "ok", f"round trip in {elapsed:.1f} ms")


async def _within(awaitable: Awaitable[str], timeout: float) -> str | None:
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError:
        return None


def run_database_checks(
    dsn: str, *, seen_timeout: float, archive: ArchivePace, snapshot_warn: float = 120.0
) -> list[Check]:
    return asyncio.run(
        check_database(dsn, seen_timeout=seen_timeout, archive=archive, snapshot_warn=snapshot_warn)
    )
