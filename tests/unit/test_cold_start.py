"""A worker's start imports what working needs, and not the API's stack: the HTTP server,
FastAPI and Starlette, the HTTP client, password hashing or templates (they were a third of
its start to its first job). Each case runs in a fresh interpreter, since this one has
imported all of them already."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jobrunner
from jobrunner.cli import build_parser
from jobrunner.commands import Handler

ROOT = Path(jobrunner.__file__).parent.parent
NOT_FOR_A_WORKER = ("fastapi", "uvicorn", "httpx", "argon2", "starlette", "jinja2")

# Runs `jobrunner worker` as `python -m jobrunner worker` does, and says at exit which of the
# modules named in argv[1:] were imported.
_REPORT_AT_EXIT = """
import atexit, json, runpy, sys
names = sys.argv[1:]
report = lambda: print(json.dumps([n for n in names if n in sys.modules]), file=sys.__stdout__)
atexit.register(report)
sys.argv = ["jobrunner", *COMMAND]
runpy.run_module("jobrunner", run_name="__main__", alter_sys=True)
"""


def _imported(command: list[str], watched: list[str], env: dict[str, str]) -> list[str]:
    script = _REPORT_AT_EXIT.replace("COMMAND", repr(command))
    run = subprocess.run(
        [sys.executable, "-c", script, *watched],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**_without_ours(os.environ), "PYTHONPATH": str(ROOT), **env},
        check=False,
    )
    assert run.stdout.strip(), run.stderr
    found: list[str] = json.loads(run.stdout.strip().splitlines()[-1])
    return found


def _without_ours(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The environment without JOBRUNNER_* settings (task modules, say), which would change
    what a worker imports."""
    return {k: v for k, v in environ.items() if not k.startswith("JOBRUNNER_")}


def test_worker_help_imports_nothing_of_the_api_or_the_bench() -> None:
    watched = [*NOT_FOR_A_WORKER, "jobrunner.api", "jobrunner.dashboard", "jobrunner.bench.runner"]
    assert _imported(["worker", "--help"], watched, {}) == []


def test_a_starting_worker_imports_none_of_the_api_stack() -> None:
    """The real command, up to its first connection: with no database to reach it has
    imported the worker, its built-in tasks (webhook delivery among them) and asyncpg."""
    env = {
        "JOBRUNNER_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "JOBRUNNER_STARTUP_WAIT": "0.05",
        "JOBRUNNER_LOG_LEVEL": "error",
    }
    reached = ["jobrunner.worker.worker", "jobrunner.webhooks", "jobrunner.builtin_tasks"]
    watched = [*reached, "asyncpg", *NOT_FOR_A_WORKER, "jobrunner.serve", "jobrunner.api"]
    assert _imported(["worker"], watched, env) == [*reached, "asyncpg"]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), inherited: object = None
) -> list[tuple[tuple[str, ...], object]]:
    """Every runnable command of the parser (`jobs ls`, not `jobs`), with the handler it
    runs: its own, or the nearest one a parent command set."""
    found: list[tuple[tuple[str, ...], object]] = []
    for action in parser._actions:  # argparse lists subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                handler = sub.get_default("handler") or inherited
                found += _commands(sub, (*path, name), handler) or [((*path, name), handler)]
    return found


@pytest.mark.parametrize(
    ("command", "handler"),
    _commands(build_parser()),
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else "",
)
def test_every_command_names_a_function_that_exists(
    command: tuple[str, ...], handler: object
) -> None:
    assert isinstance(handler, Handler), f"`jobrunner {' '.join(command)}` names no handler"
    assert callable(handler.load())
