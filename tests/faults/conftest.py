"""Fault-injection fixtures: a PostgreSQL the tests may stop and start, a fresh database per
test, real worker processes, and the recovery figures each test measures.

The server is an embedded one of our own (never the shared test server, never Docker), session
scoped, because the tests stop it, kill its backends and freeze them. Every test gets its own
database copied from a migrated template; every process a test starts is killed at teardown,
and every backend it froze is thawed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobrunner.cli.embedded import EmbeddedPostgres
from jobrunner.task_modules import load_task_modules
from tests.faults.checks import Db
from tests.support.fault_server import (
    SERVER_SETTINGS,
    TEMPLATE,
    Figures,
    admin,
    dsn_for,
    make_template,
)
from tests.support.processes import REPO_ROOT, Processes

load_task_modules(["tests.support.fault_tasks"])

FIGURES_PATH = REPO_ROOT / ".jobrunner" / "fault-figures.json"
_figures: dict[str, dict[str, Any]] = {}


@pytest.fixture(scope="session")
def fault_root() -> Iterator[Path]:
    """Our own scratch directory: other pytest runs on this machine prune the shared basetemp
    (pytest-of-<user>/pytest-N) while ours still runs, data directory included."""
    root = Path(tempfile.mkdtemp(prefix="jobrunner-faults-"))
    root.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_server(fault_root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(fault_root / "pgdata", extra_settings=SERVER_SETTINGS)
    server.start()
    try:
        asyncio.run(make_template(server))
        yield server
    finally:
        server.stop("immediate")


@pytest.fixture
def fault_dsn(fault_server: EmbeddedPostgres) -> Iterator[str]:
    """A fresh database of this test's own, with the jobrunner schema and the fault tables."""
    if not fault_server.is_running():  # a test that stopped it and failed before restarting
        fault_server.start()
    name = f"f_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin(fault_server.dsn, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    yield dsn_for(fault_server, name)
    if not fault_server.is_running():
        fault_server.start()
    fault_server.wait_ready()
    asyncio.run(admin(fault_server.dsn, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def frozen_backends() -> Iterator[set[int]]:
    """PostgreSQL backends a test SIGSTOPped: thawed at teardown whatever happened."""
    frozen: set[int] = set()
    yield frozen
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def procs(fault_dsn: str, fault_root: Path, frozen_backends: set[int]) -> Iterator[Processes]:
    keep = os.environ.get("FAULT_KEEP_LOGS")  # a directory to keep worker logs in
    log_dir = Path(tempfile.mkdtemp(prefix="logs-", dir=keep or fault_root))
    processes = Processes(fault_dsn, log_dir)
    try:
        yield processes
    finally:
        processes.close()
        print(processes.report())  # shown when the test fails


@pytest.fixture
async def db(fault_dsn: str) -> AsyncIterator[Db]:
    handle = Db(fault_dsn)
    try:
        yield handle
    finally:
        await handle.close()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record this test's measured figures: `figures(recovery_seconds=1.23, jobs=40)`."""

    def record(**values: Any) -> None:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}
        _figures.setdefault(request.node.name, {}).update(rounded)
        print(f"figures {request.node.name}: {rounded}")

    return record


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Merge this run's figures into .jobrunner/fault-figures.json (kept across runs)."""
    if not _figures:
        return
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES_PATH.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # xdist workers finish at once
        handle.seek(0)
        text = handle.read()
        merged: dict[str, Any] = json.loads(text) if text.strip() else {}
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for name, values in _figures.items():
            merged[name] = {**values, "measured_at": stamp, "cpus": os.cpu_count()}
        handle.seek(0)
        handle.truncate()
        json.dump(dict(sorted(merged.items())), handle, indent=2)
        handle.write("\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _figures:
        terminalreporter.section("fault recovery figures")
        for name, values in sorted(_figures.items()):
            terminalreporter.write_line(f"{name}: {values}")
        terminalreporter.write_line(f"(written to {FIGURES_PATH})")
