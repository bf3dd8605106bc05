"""`jobrunner up` and the embedded PostgreSQL, as processes a user starts and stops."""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import socket
from pathlib import Path

import httpx
import pytest

from jobrunner import client
from jobrunner.cli.embedded import EmbeddedPostgres
from jobrunner.db.pool import Pool
from tests.support.cli import Cli, cli_env
from tests.support.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.skipif(
    importlib.util.find_spec("jobrunner.api.app") is None,
    reason="jobrunner.api.app (the HTTP API) does not exist yet",
)
async def test_up_serves_works_and_stops_cleanly_on_sigterm(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:  # a queue its worker does not serve: it warns of it
        await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, queue="orphan")
    port = _free_port()
    env = {k: v for k, v in cli.env.items() if k != "JOBRUNNER_JWT_SECRET"}  # dev mode
    process = await Cli(env).start("up", "--port", str(port), "--drain-timeout", "2")
    base = f"http://127.0.0.1:{port}"
    warned = b""
    try:
        assert process.stderr is not None
        warned = await asyncio.wait_for(_read_until(process.stderr, b"orphan (1 jobs)"), 60)
        assert b"no live worker serves these queues" in warned
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert process.returncode is None, "jobrunner up exited early"
                    return False

            await wait_for(healthy, timeout=60)
        async with pool.acquire() as conn:
            admins = await conn.fetch("SELECT username, role FROM jobrunner.users")
        assert [(r["username"], r["role"]) for r in admins] == [("admin", "admin")]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    banner = (warned + err).decode()
    assert process.returncode == 0, banner
    assert f"jobrunner is starting on {base}" in banner
    assert "demo admin admin / " in banner
    assert "psql" in banner and "dev mode" in banner


async def _read_until(stream: asyncio.StreamReader, needle: bytes) -> bytes:
    """The lines read from `stream` up to and including the first that holds `needle`."""
    read = b""
    while True:
        line = await stream.readline()
        assert line, f"the stream ended before {needle!r}: {read.decode()}"
        read += line
        if needle in line:
            return read


def test_embedded_postgres_is_started_used_and_stopped(tmp_path: Path) -> None:
    """No JOBRUNNER_DATABASE_URL: a command starts the embedded server and stops it after."""
    cli = Cli(cli_env(tmp_path))
    migrated = cli.run("migrate", timeout=180)
    assert migrated.code == 0, migrated.err
    assert "applied 0001_jobs" in migrated.out
    assert "Starting embedded PostgreSQL" in migrated.err
    server = EmbeddedPostgres(tmp_path / "data" / "pgdata")
    assert server.initialised() and not server.is_running()
    assert (tmp_path / "data" / "pgdata.port").read_text() == str(server.port)

    again = cli.run("migrate", "--status", timeout=120)  # same data, same port: still migrated
    assert again.code == 0, again.err
    assert "applied  0001_jobs" in again.out and "pending" not in again.out
    assert not server.is_running()


def test_port_file_is_read_not_rewritten(tmp_path: Path) -> None:
    """Commands started side by side read the port file; none may catch it half-written."""
    port_file = tmp_path / "pgdata.port"
    port_file.write_text("5555")
    before = port_file.stat().st_mtime_ns
    assert EmbeddedPostgres(tmp_path / "pgdata").port == 5555
    assert port_file.stat().st_mtime_ns == before
    assert EmbeddedPostgres(tmp_path / "other").port == int((tmp_path / "other.port").read_text())


def test_a_deep_data_directory_keeps_its_socket_in_a_short_one(tmp_path: Path) -> None:
    """A Unix socket's path holds at most 107 bytes: `pg_ctl start` failed in a project
    nested deep enough (a pytest temporary directory was). Shallow ones keep it at home."""
    deep = EmbeddedPostgres(tmp_path / ("d" * 90) / ".jobrunner" / "pgdata", port=5999)
    shallow = EmbeddedPostgres(tmp_path / "pgdata", port=5999)
    socket_dir = deep._socket_dir()
    assert len(str(socket_dir / ".s.PGSQL.65535")) <= 100
    assert socket_dir == deep._socket_dir(), "the same data directory, the same socket"
    if len(str(tmp_path / "pgdata" / ".s.PGSQL.65535")) <= 100:
        assert shallow._socket_dir() == shallow.data_dir
