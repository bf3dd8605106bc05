"""Finding a real PostgreSQL for the tests, in the order DEVELOPERS.md gives:
JOBRUNNER_TEST_DATABASE_URL, then Docker via testcontainers, then an embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from jobrunner.cli.embedded import EmbeddedPostgres
from jobrunner.db.migrate import migrate


@dataclass
class Server:
    admin_dsn: str
    kind: str
    embedded: EmbeddedPostgres | None = None

    def dsn_for(self, database: str) -> str:
        base, _, _ = self.admin_dsn.rpartition("/")
        query = ""
        if "?" in self.admin_dsn:
            query = "?" + self.admin_dsn.split("?", 1)[1]
        return f"{base}/{database}{query}"


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@contextlib.contextmanager
def find_server(tmp_root: Path) -> Iterator[Server]:
    url = os.environ.get("JOBRUNNER_TEST_DATABASE_URL")
    if url:
        yield Server(url, "env")
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield Server(container.get_connection_url(), "docker")
        return
    server = EmbeddedPostgres(tmp_root / "pgdata", extra_settings={"max_connections": "300"})
    server.start()
    try:
        yield Server(server.dsn, "embedded", server)
    finally:
        server.stop("immediate")


async def _create_template(server: Server, name: str) -> None:
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(server.dsn_for(name))
    try:
        await migrate(conn)
    finally:
        await conn.close()


def create_template(server: Server, name: str) -> None:
    asyncio.run(_create_template(server, name))


async def _admin(server: Server, sql: str) -> None:
    admin = await asyncpg.connect(server.admin_dsn)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


def create_database(server: Server, template: str) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    return name


def drop_database(server: Server, name: str) -> None:
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
