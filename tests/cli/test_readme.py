"""The README stays true: its settings table is current, its psql recipes run, and its task
example runs as written."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import signal
import socket
from pathlib import Path

import httpx

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from scripts.settings_table import README, readme_with_table
from tests.support.cli import CONSOLE_SCRIPT, Cli
from tests.support.waiting import wait_for


def test_settings_table_is_current() -> None:
    text = README.read_text()
    assert readme_with_table(text) == text, (
        "the README's settings table is stale: run `.venv/bin/python scripts/settings_table.py "
        "--write`"
    )


def test_every_variable_named_in_the_readme_exists() -> None:
    named = set(re.findall(r"JOBRUNNER_([A-Z_]+[A-Z])", README.read_text()))
    known = {name.upper() for name in Settings.model_fields} | {"TEST_DATABASE_URL"}
    assert named - known == set()


async def test_psql_recipes_run_against_the_schema(pool: Pool) -> None:
    recipes = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(recipes) >= 5
    async with pool.acquire() as conn:
        for sql in recipes:
            await conn.fetch(sql)  # runs it: a renamed column fails here


def _block(language: str, first_line: str) -> str:
    """The README's code block in `language` whose first line is `first_line`."""
    for block in re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.DOTALL):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no ```{language} block starting {first_line!r} in the README")


async def test_the_task_example_runs_end_to_end_as_written(cli: Cli, tmp_path: Path) -> None:
    """Its module saved where the README says, its shell lines run in order, from that
    directory, with the installed `jobrunner` script (no PYTHONPATH, no `python -m`)."""
    project = tmp_path / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    (project / "myapp" / "tasks.py").write_text(_block("python", "# myapp/tasks.py"))
    lines = _block("sh", "export JOBRUNNER_TASKS=").splitlines()
    env = {k: v for k, v in cli.env.items() if k not in ("JOBRUNNER_TASKS", "PYTHONPATH")}
    del env["JOBRUNNER_JWT_SECRET"]  # as after a fresh clone: dev mode
    name, value = shlex.split(lines[0], comments=True)[1].split("=", 1)
    env[name] = value
    assert shlex.split(lines[1], comments=True) == ["make", "run"]
    user = Cli(env, cwd=project, program=(CONSOLE_SCRIPT,))
    port = _free_port()
    up = await user.start("up", "--port", str(port), "--drain-timeout", "1")  # what make run runs
    try:
        await wait_for(lambda: _serving(port, up), timeout=60, what="jobrunner up")
        command = shlex.split(lines[3], comments=True)
        assert command[0] == ".venv/bin/jobrunner"
        done = await asyncio.to_thread(user.run, *command[1:])
        assert done.code == 0, done.err
        assert "no live worker serves" not in done.err
        assert json.loads(done.out) == json.loads(lines[4].removeprefix("#").strip())
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(up.communicate(), timeout=30)
    assert "queues default, webhooks, emails" in err.decode()  # the banner says it


async def _serving(port: int, process: asyncio.subprocess.Process) -> bool:
    assert process.returncode is None, "jobrunner up exited early"
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            answer = await http.get(f"http://127.0.0.1:{port}/readyz")
    except httpx.TransportError:
        return False
    return answer.status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
