"""The README stays true: its settings table is current, its psql recipes run, and its task
example runs as written."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from jobrunner import client
from jobrunner.api.app import create_app
from jobrunner.db.pool import Pool
from jobrunner.job_public import JobPublic
from jobrunner.settings import Settings
from jobrunner.webhooks import sign
from scripts.settings_table import README, readme_with_table
from tests.support.cli import CONSOLE_SCRIPT, Cli
from tests.support.readme import code_block, section
from tests.support.waiting import wait_for


def test_settings_table_is_current() -> None:
    text = README.read_text()
    assert readme_with_table(text) == text, (
        "the README's settings table is stale: run `.venv/bin/python scripts/settings_table.py "
        "--write`"
    )


def test_every_variable_named_in_the_readme_exists() -> None:
    named = set(re.findall(r"JOBRUNNER_([A-Z_]+[A-Z])", README.read_text()))
    # Besides the settings: the test suite's database, and compose.yaml's image variable.
    known = {name.upper() for name in Settings.model_fields} | {"TEST_DATABASE_URL", "IMAGE"}
    assert named - known == set()


async def test_psql_recipes_run_against_the_schema(pool: Pool) -> None:
    recipes = re.findall(r"```sql\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(recipes) >= 5
    async with pool.acquire() as conn:
        for sql in recipes:
            await conn.fetch(sql)  # runs it: a renamed column fails here


async def test_the_task_example_runs_end_to_end_as_written(cli: Cli, tmp_path: Path) -> None:
    """Its module saved where the README says, its shell lines run in order, from that
    directory, with the installed `jobrunner` script (no PYTHONPATH, no `python -m`)."""
    project = tmp_path / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    (project / "myapp" / "tasks.py").write_text(code_block("python", "# myapp/tasks.py"))
    lines = code_block("sh", "export JOBRUNNER_TASKS=").splitlines()
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


def test_every_route_is_in_the_readmes_api_table(tmp_path: Path) -> None:
    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    documented = shape(section("The HTTP API"))
    app = create_app(Settings(dev_mode=True, data_dir=tmp_path))
    routes = {shape(path) for path in app.openapi()["paths"]}
    assert len(routes) > 20
    missing = {r for r in routes if f"`{r}`" not in documented and f" {r}`" not in documented}
    assert missing == set()


def test_the_receiver_example_verifies_what_jobrunner_signs() -> None:
    example: dict[str, object] = {"__name__": "readme_receiver"}
    exec(code_block("python", "# receiver.py"), example)  # noqa: S102 - our own README
    verify = example["verify"]
    assert callable(verify)
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body, stamp = b'{"type":"job.succeeded"}', int(time.time())
    headers = {"webhook-id": "job_1", "webhook-timestamp": str(stamp)}
    headers["webhook-signature"] = sign(secret, "job_1", stamp, body)
    assert verify(secret, headers, body)
    assert not verify(secret, headers, body + b" ")
    assert not verify("whsec_" + base64.b64encode(b"x" * 32).decode(), headers, body)
    old = {**headers, "webhook-timestamp": str(stamp - 3600)}
    old["webhook-signature"] = sign(secret, "job_1", stamp - 3600, body)
    assert not verify(secret, old, body)  # a replay


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl here")
async def test_the_tour_and_the_celery_map_run_as_written(cli: Cli) -> None:
    """In one bash session, in order, against a `jobrunner up` in dev mode (as after `make
    run`): the curl tour, its command-line lines, and the curl block of "Coming from a
    FastAPI + Celery job service"."""
    env = {k: v for k, v in cli.env.items() if k != "JOBRUNNER_JWT_SECRET"}
    port = _free_port()
    up = await Cli(env).start("up", "--port", str(port), "--drain-timeout", "1")
    tour = code_block("sh", "B=http://127.0.0.1:8000")
    lines = code_block("sh", ".venv/bin/jobrunner enqueue square_sum")
    mapping = code_block("sh", "# A FastAPI + Celery job service's routes")
    script = "\n".join((tour, lines.replace(".venv/bin/jobrunner", CONSOLE_SCRIPT), mapping))
    try:
        await wait_for(lambda: _serving(port, up), timeout=60, what="jobrunner up")
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euo", "pipefail", "-c", script.replace(":8000", f":{port}")],
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGTERM)
        await asyncio.wait_for(up.communicate(), timeout=30)
    out = done.stdout.replace(" ", "")
    assert out.count("event:succeeded") == 2  # the tour's stream, and the map's
    assert out.count('"result":14') >= 2 and "14\n" in out  # the API's, and the CLI's
    assert "all good" in done.stdout  # doctor, beside `up` in dev mode


async def test_the_cli_names_job_fields_as_the_api_does(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, timeout=30)
    shown = json.loads(cli.run("jobs", "show", str(job.id), "--json").out)
    assert set(JobPublic.model_fields) <= set(shown)
    assert shown["timeout_seconds"] == 30 and shown["cancel_requested"] is False
    assert "timeout" not in shown and "cancel_requested_at" not in shown
