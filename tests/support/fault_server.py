"""The fault tests' own PostgreSQL: its settings, its migrated template, and admin statements."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from jobrunner.cli.embedded import EmbeddedPostgres
from jobrunner.db.migrate import migrate
from tests.support.fault_tasks import FAULT_TABLES

# What a test records with the `figures` fixture: `figures(recovery_seconds=1.23, jobs=40)`.
Figures = Callable[..., None]

TEMPLATE = "fault_template"
SERVER_SETTINGS = {
    "max_connections": "300",
    # Safe here: the tests crash PostgreSQL, never the machine, so the OS keeps what it wrote.
    # synchronous_commit stays on: a commit the client saw must survive an immediate stop.
    "fsync": "off",
    "full_page_writes": "off",
    "autovacuum_naptime": "1",
}


async def admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def make_template(server: EmbeddedPostgres) -> None:
    await admin(server.dsn, f"DROP DATABASE IF EXISTS {TEMPLATE}", f"CREATE DATABASE {TEMPLATE}")
    conn = await asyncpg.connect(dsn_for(server, TEMPLATE))
    try:
        await migrate(conn)
        await conn.execute(FAULT_TABLES)
    finally:
        await conn.close()


def dsn_for(server: EmbeddedPostgres, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{server.port}/{database}"
