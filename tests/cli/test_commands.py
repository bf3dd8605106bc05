"""The CLI's commands, each run as a subprocess against a real, migrated database."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import pytest

from jobrunner import client
from jobrunner.cli import main
from jobrunner.db.pool import Pool
from jobrunner.models import JobState
from jobrunner.testing import drain
from tests.support.archive import insert_finished_job, insert_history_row
from tests.support.cli import Cli
from tests.support.rows import insert_deferred_job, insert_worker
from tests.support.snapshots import held_snapshot
from tests.support.waiting import wait_for

COMMANDS = [
    ["up"],
    ["api"],
    ["worker"],
    ["migrate"],
    ["enqueue"],
    ["jobs"],
    ["jobs", "ls"],
    ["jobs", "show"],
    ["jobs", "cancel"],
    ["jobs", "retry"],
    ["users"],
    ["users", "create"],
    ["users", "list"],
    ["users", "max-priority"],
    ["queues"],
    ["queues", "ls"],
    ["queues", "set"],
    ["queues", "grant"],
    ["doctor"],
    ["bench"],
]


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in [[], *COMMANDS]:
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: jobrunner {' '.join(command)}".rstrip()), command
        assert "\n  -h, --help" in out
        if not command:
            for name in ("up", "api", "worker", "enqueue", "jobs", "users", "queues", "doctor"):
                assert f"\n    {name} " in out


def test_migrate_status_lists_applied_migrations(cli: Cli) -> None:
    result = cli.run("migrate", "--status")
    assert result.code == 0, result.err
    assert "applied  0001_jobs" in result.out
    assert "pending" not in result.out
    assert cli.run("migrate").out.strip() == "database is up to date"


async def test_enqueue_prints_the_job(cli: Cli, pool: Pool) -> None:
    result = cli.run("enqueue", "test.add", "--args", '{"a": 2, "b": 3}', "--priority", "5")
    assert result.code == 0, result.err
    printed = json.loads(result.out)
    assert printed["state"] == "queued"
    async with pool.acquire() as conn:
        job = await client.get_job(UUID(printed["id"]), conn=conn)
    assert (job.task, job.args, job.priority) == ("test.add", {"a": 2, "b": 3}, 5)


def test_enqueue_refuses_bad_arguments_without_a_row(cli: Cli) -> None:
    bad = cli.run("enqueue", "test.add", "--args", '{"a": "two"}')
    assert bad.code == 2
    assert "invalid arguments for task 'test.add'" in bad.err
    assert cli.run("enqueue", "no.such.task").code == 2
    assert "must be a JSON object" in cli.run("enqueue", "test.add", "--args", "[1]").err
    assert cli.run("jobs", "ls", "--json").out == ""


async def _enqueue_and_drain(cli: Cli, pool: Pool, *args: str) -> tuple[int, str, str]:
    """Start `enqueue ... --wait`, run its job in this process, and collect what it printed."""
    process = await cli.start("enqueue", *args, "--wait")

    async def waiting_job() -> bool:
        async with pool.acquire() as conn:
            return bool(await client.list_jobs(conn=conn, limit=1))

    await wait_for(waiting_job, timeout=30)
    stats = await drain(pool, concurrency=2)
    assert stats.claimed >= 1
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_enqueue_wait_prints_the_result(cli: Cli, pool: Pool) -> None:
    code, out, err = await _enqueue_and_drain(
        cli, pool, "square_sum", "--args", '{"data": [1, 2, 3]}'
    )
    assert code == 0, err
    assert json.loads(out) == 14
    assert "succeeded" in err


async def test_enqueue_wait_exits_non_zero_when_the_job_fails(cli: Cli, pool: Pool) -> None:
    code, out, err = await _enqueue_and_drain(cli, pool, "test.always_fail", "--max-attempts", "1")
    assert code == 1
    assert out == ""
    assert "failed: RuntimeError: always" in err, err
    assert "RuntimeError" in err  # the traceback


async def test_jobs_ls_show_cancel_retry(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        first = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn)
        second = await client.enqueue("test.sleep", {"seconds": 1}, conn=conn)

    listed = cli.run("jobs", "ls", "--json")
    ids = [json.loads(line)["id"] for line in listed.out.splitlines()]
    assert sorted(ids) == sorted([str(first.id), str(second.id)])  # same ms: either order
    assert len(cli.run("jobs", "ls", "--json", "--limit", "1").out.splitlines()) == 1
    table = cli.run("jobs", "ls", "--task", "test.add")
    assert table.out.splitlines()[0].split()[:3] == ["ID", "STATE", "TASK"]
    assert str(first.id) in table.out and str(second.id) not in table.out

    shown = cli.run("jobs", "show", str(first.id))
    assert "task          test.add" in shown.out

    cancelled = cli.run("jobs", "cancel", str(first.id), "--json")
    assert json.loads(cancelled.out)["state"] == "cancelled"
    assert "already cancelled" in cli.run("jobs", "cancel", str(first.id)).err

    retried = cli.run("jobs", "retry", str(first.id), "--json")
    assert json.loads(retried.out)["state"] == "queued"
    async with pool.acquire() as conn:
        assert (await client.get_job(first.id, conn=conn)).state is JobState.QUEUED

    missing = cli.run("jobs", "show", "01a20000-0000-7000-8000-000000000000")
    assert missing.code == 2 and "not found" in missing.err
    assert "is not a job id" in cli.run("jobs", "show", "nope").err


def test_users_create_and_list(cli: Cli) -> None:
    admin = cli.run("users", "create", "alice", "--admin")  # stdin is no terminal: generated
    assert admin.code == 0, admin.err
    assert admin.out.startswith("created admin alice\npassword ")
    assert cli.run("users", "create", "bob", "--password", "correct horse battery").code == 0
    taken = cli.run("users", "create", "bob", "--password", "another password")
    assert taken.code == 2 and "taken" in taken.err

    rows = [line.split()[:2] for line in cli.run("users", "list").out.splitlines()]
    assert rows == [["USERNAME", "ROLE"], ["alice", "admin"], ["bob", "user"]]


def test_users_disable_enable_delete(cli: Cli) -> None:
    assert cli.run("users", "create", "carol", "--password", "correct horse battery").code == 0
    assert cli.run("users", "disable", "carol").out == "disabled carol\n"
    assert cli.run("users", "list").out.splitlines()[1].split()[-1] == "yes"
    assert cli.run("users", "enable", "carol").code == 0
    assert cli.run("users", "delete", "carol").code == 0
    missing = cli.run("users", "delete", "carol")
    assert missing.code == 2 and "no user" in missing.err


def test_doctor_passes_on_a_healthy_setup(cli: Cli) -> None:
    result = cli.run("doctor")
    assert result.code == 0, result.out + result.err
    for name in (
        "JWT secret",
        "tasks",
        "database",
        "migrations",
        "LISTEN/NOTIFY",
        "workers",
        "unknown tasks",
        "long transactions",
        "archive",
    ):
        assert f"OK    {name}:" in result.out
    assert "FAIL" not in result.out


async def test_doctor_warns_of_a_snapshot_holding_back_cleanup(
    cli: Cli, db_dsn: str, pool: Pool
) -> None:
    quick = Cli({**cli.env, "JOBRUNNER_SNAPSHOT_WARN_SECONDS": "0.5"})
    async with held_snapshot(db_dsn, pool, for_at_least=0.5) as pid:
        result = quick.run("doctor")
    assert result.code == 0, result.out + result.err  # a warning, not a failure
    assert f"WARN  long transactions: session pid {pid}" in result.out
    assert f"pg_terminate_backend({pid})" in result.out


async def test_doctor_warns_of_finished_jobs_the_archiver_left_behind(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_finished_job(conn, finished_ago=3 * 3600)  # past ARCHIVE_AFTER + 10 min
        await insert_history_row(conn, finished_ago=3600)  # no partition made: the default
    result = cli.run("doctor")
    assert result.code == 0, result.out + result.err  # a warning, not a failure
    assert (
        "WARN  archive: 1 finished jobs wait in jobrunner.jobs to be archived, the oldest "
        "finished 3h00m ago (JOBRUNNER_ARCHIVE_AFTER is 1m00s); 1 jobs in job_history_default"
    ) in result.out
    assert "fix: the archiver and the partitions are maintenance's" in result.out


async def test_doctor_warns_of_jobs_whose_task_no_worker_knew(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_deferred_job(conn, "deploy.not_yet")
    result = cli.run("doctor")
    assert "WARN  unknown tasks:" in result.out and "deploy.not_yet (1 jobs)" in result.out


async def test_doctor_warns_of_queued_jobs_no_live_worker_serves(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_worker(conn, "w-live", queues=["default"])
        await insert_worker(conn, "w-gone", queues=["orphan"], seen_ago=3600)
        for queue in ("default", "orphan", "orphan"):
            await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, queue=queue)
    result = cli.run("doctor")
    assert result.code == 0, result.out + result.err  # a warning, not a failure
    assert "WARN  workers: no live worker serves these queues" in result.out
    assert "orphan (2 jobs)" in result.out and "default (" not in result.out
    assert "fix: start a worker for them" in result.out


async def test_doctor_tells_tasks_a_live_worker_knows_by_now(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await insert_deferred_job(conn, "deploy.done")
        await insert_deferred_job(conn, "deploy.not_yet")
        await insert_worker(conn, "w-new", queues=["default"], tasks=["deploy.done"])
    result = cli.run("doctor")
    assert "OK    workers: 1 live, serving default" in result.out
    line = next(x for x in result.out.splitlines() if "unknown tasks:" in x)
    assert line.startswith("WARN") and "these tasks, so their jobs wait: deploy.not_yet" in line
    assert "known now to a live worker, so run when due: deploy.done (1 jobs)" in line


async def test_doctor_fails_on_pending_migrations(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("DROP SCHEMA jobrunner CASCADE")
    result = cli.run("doctor")
    assert result.code == 1
    assert "FAIL  migrations:" in result.out and "pending: 0001_jobs," in result.out
    assert "fix: run `jobrunner migrate`" in result.out


def test_doctor_fails_without_database_or_secret(cli: Cli, unused_port: int) -> None:
    env = {k: v for k, v in cli.env.items() if k != "JOBRUNNER_JWT_SECRET"}
    env["JOBRUNNER_DATABASE_URL"] = f"postgresql://nobody@127.0.0.1:{unused_port}/none"
    result = Cli(env).run("doctor")
    assert result.code == 1
    assert "FAIL  JWT secret: JOBRUNNER_JWT_SECRET is not set" in result.out
    assert "FAIL  database:" in result.out
    assert "fix: is PostgreSQL running?" in result.out


def test_invalid_settings_are_reported_plainly(cli: Cli) -> None:
    result = Cli({**cli.env, "JOBRUNNER_CONCURRENCY": "lots"}).run("doctor")
    assert result.code == 2
    assert "invalid settings" in result.err and "concurrency" in result.err
    assert "Traceback" not in result.err


@pytest.fixture
def unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
