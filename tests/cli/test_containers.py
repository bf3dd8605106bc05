"""Dockerfile and compose.yaml, checked without Docker: their shape, and the very commands they run.

Docker does not run on the CI machines, so this runs each compose service's command (migrate,
api, worker) and the image's HEALTHCHECK as plain processes against a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import Cli
from tests.support.dockerfile import Builder, Step, stage
from tests.support.processes import REPO_ROOT
from tests.support.readme import code_block
from tests.support.waiting import wait_for


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return data


def _healthcheck_command() -> list[str]:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", "")
    match = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert match, "the Dockerfile has no exec-form HEALTHCHECK"
    command: list[str] = json.loads(match[1])
    return command


def test_dockerfile_is_multi_stage_slim_and_unprivileged() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", dockerfile, re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert all(image.startswith("python:") and image.endswith("-slim") for image, _ in stages)
    assert re.search(r"^USER 10001", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["jobrunner"]' in dockerfile
    assert _healthcheck_command()[0] == "python"  # no curl in a slim image


def test_compose_services_are_wired_for_scaling() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"] and services["postgres"]["volumes"]
    after = {
        "postgres": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    for name in ("api", "worker"):
        assert services[name]["depends_on"] == after
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker  # --scale worker=4
    grace = int(worker["stop_grace_period"].rstrip("s"))
    drain = float(
        re.sub(r"\$\{\w+:-(\d+)\}", r"\1", worker["environment"]["JOBRUNNER_DRAIN_TIMEOUT"])
    )
    assert grace > drain
    secret = services["api"]["environment"]["JOBRUNNER_JWT_SECRET"]
    assert secret.startswith("${JOBRUNNER_JWT_SECRET:?")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _healthcheck(env: dict[str, str]) -> int:
    command = _healthcheck_command()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


@pytest.mark.skipif(
    not (REPO_ROOT / "jobrunner" / "api" / "app.py").exists(), reason="no HTTP API yet"
)
async def test_the_commands_compose_runs_work_together(cli: Cli) -> None:
    services = _compose()["services"]
    env = {**cli.env, "JOBRUNNER_PORT": str(_free_port()), "JOBRUNNER_DRAIN_TIMEOUT": "2"}
    compose = Cli(env)
    first = compose.run(*services["migrate"]["command"])
    assert first.code == 0, first.err
    assert re.search(r"^created admin admin, password \S+  \(shown this once\)$", first.out, re.M)
    again = compose.run(*services["migrate"]["command"])  # a restart: nothing more is made
    assert again.code == 0 and "created admin" not in again.out
    assert "/readyz" in _healthcheck_command()[-1]
    api = await compose.start(*services["api"]["command"])
    workers = [await compose.start(*services["worker"]["command"]) for _ in range(2)]
    try:
        await wait_for(lambda: _healthy(env), timeout=60)
        done = await asyncio.to_thread(
            compose.run, "enqueue", "square_sum", "--args", '{"data": [1, 2, 3]}', "--wait"
        )
        assert (done.code, done.out.strip()) == (0, "14"), done.err
    finally:
        for process in (api, *workers):
            process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), timeout=30) for p in (api, *workers)]
    assert codes == [0, 0, 0]


async def _healthy(env: dict[str, str]) -> bool:
    return await _healthcheck(env) == 0


@pytest.mark.timeout(600)
def test_the_image_build_steps_install_a_package_that_finds_its_migrations(
    tmp_path: Path, db_dsn: str
) -> None:
    """The Dockerfile's build stage, step by step, without Docker: a fresh virtualenv, the
    wheel built from the copied sources, and its own check. Then the installed `jobrunner`
    finds its migrations from elsewhere, as in the runtime stage (WORKDIR /app)."""
    builder = Builder(tmp_path / "image")
    try:
        builder.run_stage(stage(REPO_ROOT / "Dockerfile", "build"))
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{exc.cmd[-1]}\n{exc.stdout}\n{exc.stderr}") from None
    app = tmp_path / "image" / "app"
    app.mkdir()
    installed = Cli(
        {**builder.env, "JOBRUNNER_DATABASE_URL": db_dsn},
        cwd=app,
        program=(str(tmp_path / "image" / "opt" / "venv" / "bin" / "jobrunner"),),
    )
    status = installed.run("migrate", "--status")
    assert status.code == 0, status.err
    assert "applied  0001_jobs" in status.out and "pending" not in status.out
    python = str(tmp_path / "image" / "opt" / "venv" / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import jobrunner; print(jobrunner.__file__)"],
        cwd=app,
        env=builder.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(tmp_path / "image" / "opt" / "venv")), where  # the wheel's

    # The README's image for your own tasks: FROM this one, COPY myapp /app/myapp. Its
    # JOBRUNNER_TASKS module is found from the working directory, /app.
    project = tmp_path / "project"
    (project / "myapp").mkdir(parents=True)
    (project / "myapp" / "__init__.py").write_text("")
    (project / "myapp" / "tasks.py").write_text(code_block("python", "# myapp/tasks.py"))
    lines = code_block("dockerfile", "FROM jobrunner:latest").splitlines()
    assert lines[0] == "FROM jobrunner:latest"
    Builder(tmp_path / "image", context=project).run_stage(
        [Step(*line.split(" ", 1)) for line in lines[1:]]
    )
    with_tasks = Cli({**installed.env, "JOBRUNNER_TASKS": "myapp.tasks"}, app, installed.program)
    doctor = with_tasks.run("doctor")
    tasks_line = next(line for line in doctor.out.splitlines() if "tasks:" in line)
    assert tasks_line.startswith("OK") and "send_welcome" in tasks_line, doctor.out + doctor.err
