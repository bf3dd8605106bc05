"""Apply migrations/NNNN_name.sql in order, each in its own transaction.

An advisory lock serialises processes that start at once; applied versions are recorded in
jobrunner.schema_migrations with a checksum, so re-running is a no-op and an edited migration
is caught instead of silently skipped.

A line `-- jobrunner: commit` splits a migration into parts, each committed on its own
(the version is recorded with the last): PostgreSQL will not use an enum value in the
transaction that added it, so a migration that adds one and then indexes or constrains it
commits in between. What comes before such a line must be safe to run twice (IF NOT EXISTS):
a failure after it leaves the migration unrecorded, and the next run starts it over.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

from jobrunner.db.pool import Conn
from jobrunner.db.queries import QUERIES
from jobrunner.errors import ConfigError

_FILENAME = re.compile(r"^(\d{4})_(\w+)\.sql$")
_COMMIT = re.compile(r"^-- jobrunner: commit[ \t]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def parts(self) -> list[str]:
        """The statements of each transaction, in order (one, unless the file commits)."""
        return [part for part in _COMMIT.split(self.sql) if part.strip()]


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: list[tuple[Migration, datetime]]
    pending: list[Migration]


def discover() -> list[Migration]:
    found = []
    for entry in resources.files("jobrunner.migrations").iterdir():
        match = _FILENAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migrations share a version: {versions}")
    return found


async def status(conn: Conn) -> MigrationStatus:
    rows = {}
    if await conn.fetchval(QUERIES["migration_table_exists"]):
        rows = {r["version"]: r for r in await conn.fetch(QUERIES["migration_list"])}
    applied, pending = [], []
    for migration in discover():
        row = rows.get(migration.version)
        if row is None:
            pending.append(migration)
            continue
        if row["checksum"] != migration.checksum:
            raise ConfigError(
                f"migration {migration.version:04d}_{migration.name} changed after it was "
                "applied; add a new migration instead of editing an old one"
            )
        applied.append((migration, row["applied_at"]))
    return MigrationStatus(applied, pending)


async def migrate(conn: Conn) -> list[Migration]:
    """Apply every pending migration; returns the ones this call applied."""
    await conn.fetchval(QUERIES["migration_lock"])
    try:
        await conn.execute(QUERIES["migration_schema_create"])
        await conn.execute(QUERIES["migration_table_create"])
        done = []
        for migration in (await status(conn)).pending:
            *first, last = migration.parts
            for part in first:
                async with conn.transaction():
                    await conn.execute(part)
            async with conn.transaction():
                await conn.execute(last)
                await conn.execute(
                    QUERIES["migration_record"],
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration)
        return done
    finally:
        await conn.fetchval(QUERIES["migration_unlock"])


async def is_current(conn: Conn) -> bool:
    return not (await status(conn)).pending
