"""Running `python -m jobrunner` as a user would: a subprocess with JOBRUNNER_* variables."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import REPO_ROOT

JWT_SECRET = "cli-tests-secret-" + "x" * 40
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "jobrunner")  # .venv/bin/jobrunner


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Cli:
    env: dict[str, str]
    cwd: Path = REPO_ROOT  # where the command runs: it finds a database from there
    # How jobrunner is started: `python -m` (the current directory on sys.path), or as a
    # user does, by the installed script (CONSOLE_SCRIPT), which puts nothing there.
    program: tuple[str, ...] = (sys.executable, "-m", "jobrunner")

    def run(self, *args: str, stdin: str = "", timeout: float = 60) -> Result:
        done = subprocess.run(
            [*self.program, *args],
            env=self.env,
            cwd=self.cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    async def start(self, *args: str, own_group: bool = False) -> asyncio.subprocess.Process:
        """Start a command; `own_group`: in a process group of its own, as a terminal starts
        it, so a test can send the group a terminal's Ctrl-C (os.killpg)."""
        return await asyncio.create_subprocess_exec(
            *self.program,
            *args,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=own_group,
        )


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBRUNNER_")}
    env.update(
        JOBRUNNER_DATA_DIR=str(tmp_path / "data"),
        # Where a running `jobrunner up` records itself (jobrunner.cli.locate): this test's own.
        XDG_STATE_HOME=str(tmp_path / "state"),
        JOBRUNNER_TASKS="tests.support.tasks",
        JOBRUNNER_LOG_FORMAT="json",
        JOBRUNNER_LOG_LEVEL="warning",
        PYTHONWARNINGS="ignore",
        **extra,
    )
    return env
