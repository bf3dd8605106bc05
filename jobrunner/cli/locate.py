"""Which database a command uses, whatever directory it is run from.

In order, the first that applies:

1. `JOBRUNNER_DATABASE_URL`;
2. `JOBRUNNER_DATA_DIR`, when set: the embedded PostgreSQL in it;
3. the nearest `.jobrunner` holding an embedded PostgreSQL, in this directory or a parent
   (the way git finds `.git`), so every command run inside the project uses its database;
4. the embedded PostgreSQL of a `jobrunner up` running on this machine: each one records
   itself in `$XDG_STATE_HOME/jobrunner/up/` (`~/.local/state/...`) while it runs, so a
   command run from anywhere else finds it.

Otherwise there is none. Only `jobrunner up` and `jobrunner migrate`, whose work is to set a
database up, then create one (in `./.jobrunner`); any other command says where it looked and
stops, rather than start an empty database by surprise.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from jobrunner.errors import ConfigError
from jobrunner.settings import Settings

PGDATA = "pgdata"
Found = Literal["url", "setting", "nearby", "running", "new"]


@dataclass(frozen=True, slots=True)
class Location:
    """The database a command uses: a URL, or the data directory of an embedded server."""

    found: Found
    data_dir: Path  # the embedded server's parent directory (its dev secret is kept here)
    url: str | None = None
    up_pid: int | None = None  # found == "running": the `jobrunner up` serving it

    @property
    def pgdata(self) -> Path:
        return self.data_dir / PGDATA

    def describe(self) -> str:
        """One line for a person: which database, and why this one."""
        if self.url is not None:
            return f"{redact(self.url)} (JOBRUNNER_DATABASE_URL)"
        why = {
            "setting": "JOBRUNNER_DATA_DIR",
            "nearby": "found from the current directory",
            "running": f"served by `jobrunner up`, pid {self.up_pid}",
            "new": "new",
        }[self.found]
        return f"the embedded PostgreSQL in {self.pgdata} ({why})"


def locate(settings: Settings, *, create: bool = False, cwd: Path | None = None) -> Location:
    """Where this command's database is (see the module docstring); with `create`, a new
    embedded one in ./.jobrunner when none is found. Raises ConfigError when none is."""
    if settings.database_url:
        return Location("url", settings.data_dir.resolve(), url=settings.database_url)
    if "data_dir" in settings.model_fields_set:
        data_dir = settings.data_dir.resolve()
        if create or _has_server(data_dir):
            return Location("setting", data_dir)
        raise ConfigError(
            f"JOBRUNNER_DATA_DIR is {data_dir}, which holds no embedded PostgreSQL: start "
            "one there with `jobrunner up`, or fix JOBRUNNER_DATA_DIR"
        )
    here = (cwd or Path.cwd()).resolve()
    name = settings.data_dir  # relative (".jobrunner" by default): looked for upwards
    for directory in (here, *here.parents):
        if _has_server(directory / name):
            return Location("nearby", (directory / name).resolve())
    running = running_ups()
    if len(running) == 1:
        pid, data_dir = running[0]
        return Location("running", data_dir, up_pid=pid)
    if len(running) > 1:
        listed = ", ".join(str(d) for _, d in running)
        raise ConfigError(
            f"several `jobrunner up` are running ({listed}): run this command in the "
            "project's directory, or set JOBRUNNER_DATA_DIR to one of them"
        )
    if create:
        return Location("new", (here / name).resolve())
    raise ConfigError(
        f"no database: JOBRUNNER_DATABASE_URL is not set, there is no {name}/{PGDATA} in "
        f"{here} or a parent directory, and no `jobrunner up` is running. Run this in your "
        "project's directory (where `make run` keeps .jobrunner), set JOBRUNNER_DATA_DIR to "
        "that .jobrunner, or set JOBRUNNER_DATABASE_URL"
    )


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _has_server(data_dir: Path) -> bool:
    return (data_dir / PGDATA / "PG_VERSION").exists()


# ----- the `jobrunner up`s running on this machine --------------------------------------


def _registry_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "jobrunner" / "up"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def running_ups() -> list[tuple[int, Path]]:
    """(pid, data dir) of each `jobrunner up` still running; stale records are removed."""
    found = []
    directory = _registry_dir()
    if not directory.is_dir():
        return []
    for record in sorted(directory.glob("*.json")):
        try:
            entry = json.loads(record.read_text())
            pid, data_dir = int(entry["pid"]), Path(entry["data_dir"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid) and _has_server(data_dir):
            found.append((pid, data_dir))
        else:
            record.unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def registered_up(location: Location) -> Iterator[None]:
    """While `jobrunner up` runs on an embedded server, record it for commands run from
    other directories. A failure to record is not worth failing the start over."""
    record = None if location.url is not None else _record(location.data_dir)
    try:
        yield
    finally:
        if record is not None:
            record.unlink(missing_ok=True)


def _record(data_dir: Path) -> Path | None:
    record = _registry_dir() / f"{os.getpid()}.json"
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"pid": os.getpid(), "data_dir": str(data_dir)}))
    except OSError:
        return None
    return record
