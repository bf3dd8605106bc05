"""Real worker processes for the fault suite, and waiting on conditions without sleeping.

`Processes` starts `python -m jobrunner worker ...` with millisecond timings, logs each one to
its own file, and kills every process it started when closed (SIGCONT first, so a stopped one
can die too).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULT_TASK_MODULES = "tests.support.tasks,tests.support.fault_tasks"


@dataclass
class WorkerOptions:
    """Worker flags, in seconds. Defaults: a 1 s lease and everything else far shorter."""

    concurrency: int = 10
    lease_seconds: float = 1.0
    heartbeat_interval: float = 0.1
    poll_interval: float = 0.05
    maintenance_interval: float = 0.05
    drain_timeout: float = 2.0
    backoff_base: float = 0.01
    backoff_cap: float = 0.05
    listen: bool = True
    queues: str = "default"
    env: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        args = [
            sys.executable, "-m", "jobrunner", "worker",
            "--queues", self.queues,
            "--concurrency", str(self.concurrency),
            "--lease-seconds", str(self.lease_seconds),
            "--heartbeat-interval", str(self.heartbeat_interval),
            "--poll-interval", str(self.poll_interval),
            "--maintenance-interval", str(self.maintenance_interval),
            "--drain-timeout", str(self.drain_timeout),
            "--backoff-base", str(self.backoff_base),
            "--backoff-cap", str(self.backoff_cap),
        ]  # fmt: skip
        if not self.listen:
            args.append("--no-listen")
        return args


@dataclass
class WorkerProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def id_pattern(self) -> str:
        """A LIKE pattern matching this process's worker id (host:pid:random)."""
        return f"%:{self.pid}:%"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        await wait_for(lambda: not self.alive(), timeout=timeout, what=f"{self.name} to exit")
        code = self.popen.returncode
        assert code is not None
        return code

    def rss_bytes(self) -> int:
        """Resident memory, from /proc (Linux)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Processes:
    """Starts workers against one database; `close()` kills whatever is left."""

    def __init__(self, dsn: str, log_dir: Path) -> None:
        self.dsn = dsn
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
        env.update(
            JOBRUNNER_DATABASE_URL=self.dsn,
            JOBRUNNER_TASKS=FAULT_TASK_MODULES,
            JOBRUNNER_LOG_LEVEL="warning",
            JOBRUNNER_LOG_FORMAT="json",
            JOBRUNNER_RECONNECT_MAX_DELAY="0.2",
            JOBRUNNER_DATA_DIR=str(self.log_dir),
            PYTHONPATH=os.pathsep.join(
                p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        )
        env.update(extra)
        return env

    def start_worker(self, name: str, options: WorkerOptions | None = None) -> WorkerProcess:
        options = options or WorkerOptions()
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                options.argv(), cwd=REPO_ROOT, env=self.env(options.env),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        worker = WorkerProcess(name, popen, log_path)
        self.started.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.started:
            if worker.alive():
                worker.send(signal.SIGCONT)
                worker.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):  # a stuck kernel, not us
                worker.popen.wait(timeout=10)

    def report(self) -> str:
        """The tail of every worker's log, for a failing test's output."""
        parts = []
        for worker in self.started:
            tail = "\n".join(worker.log().splitlines()[-60:])
            parts.append(f"--- {worker.name} pid={worker.pid} rc={worker.popen.returncode}\n{tail}")
        return "\n".join(parts)


class Supervisor:
    """Keeps `size` workers running, as systemd or Kubernetes would, counting restarts."""

    def __init__(self, procs: Processes, size: int, options: WorkerOptions) -> None:
        self.procs = procs
        self.options = options
        self.workers: list[WorkerProcess] = [
            procs.start_worker(f"sup{i}", options) for i in range(size)
        ]
        self.restarts = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            for i, worker in enumerate(self.workers):
                if not worker.alive():
                    self.restarts += 1
                    self.workers[i] = self.procs.start_worker(f"sup{i}", self.options)
            await asyncio.sleep(0.05)  # a supervisor's own polling period
