"""`jobrunner queues ...` and `jobrunner users max-priority`, run as a user would."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jobrunner import accounts, client
from jobrunner.db.pool import Pool
from tests.support.cli import Cli
from tests.support.waiting import rang_nothing


async def _row(pool: Pool, name: str) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM jobrunner.queues WHERE name = $1", name)
    assert row is not None, name
    return dict(row)


async def test_queues_set_changes_only_what_is_given_and_none_clears(cli: Cli, pool: Pool) -> None:
    made = cli.run(
        "queues", "set", "emails", "--max-running", "20", "--max-running-per-owner", "5",
        "--rate", "600/minute", "--open-to-all", "yes",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert made.out.strip() == (
        "emails: running, max running 20, per owner 5, rate 600/minute, open to all yes"
    )
    row = await _row(pool, "emails")
    assert (row["max_running"], row["max_running_per_owner"], row["rate_limit"]) == (20, 5, 600)
    assert row["rate_period"].total_seconds() == 60 and row["open_to_all"] is True
    assert row["updated_by"].startswith("cli")

    cleared = cli.run("queues", "set", "emails", "--max-running", "none", "--rate", "none")
    assert cleared.code == 0, cleared.err
    row = await _row(pool, "emails")
    assert (row["max_running"], row["rate_limit"], row["rate_period"]) == (None, None, None)
    assert row["max_running_per_owner"] == 5  # not given: kept

    for bad in (["--max-running", "-1"], ["--max-running-per-owner", "0"], ["--rate", "0/s"]):
        refused = cli.run("queues", "set", "emails", *bad)
        assert refused.code == 2 and "must be between" in refused.err, bad
    assert cli.run("queues", "set", "emails", "--rate", "5/hour").code == 2  # argparse: usage
    assert "queue name" in cli.run("queues", "set", "no spaces").err


async def test_queues_pause_resume_ring_and_ls_shows_counts(
    cli: Cli, pool: Pool, rung: asyncio.Queue[str]
) -> None:
    async with pool.acquire() as conn:
        await client.enqueue("echo", {}, conn=conn, queue="reports")
        await client.enqueue("echo", {}, conn=conn, queue="reports", delay=3600)
    assert await asyncio.wait_for(rung.get(), timeout=10) == "reports"  # the queued job's
    paused = cli.run("queues", "pause", "reports")
    assert paused.code == 0 and paused.out.startswith("reports: paused"), paused.err
    assert (await _row(pool, "reports"))["paused_at"] is not None
    table = cli.run("queues", "ls").out.splitlines()
    assert table[0].split() == [
        "QUEUE", "STATE", "MAX_RUNNING", "PER_OWNER", "RATE", "OPEN",
        "waiting", "scheduled", "queued", "running", "retrying",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["reports"][1:] == ["paused", "-", "-", "-", "admins", "0", "1", "1", "0", "0"]
    assert rows["default"][1] == "running" and rows["default"][5] == "all"
    assert await rang_nothing(pool, rung)
    assert cli.run("queues", "resume", "reports").code == 0
    assert await asyncio.wait_for(rung.get(), timeout=10) == "reports"
    as_json = [json.loads(line) for line in cli.run("queues", "ls", "--json").out.splitlines()]
    reports = next(q for q in as_json if q["name"] == "reports")
    assert reports["paused_at"] is None and reports["counts"]["queued"] == 1


async def test_queues_grant_revoke_and_users_max_priority(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username="ada", password="correct horse battery")
    granted = cli.run("queues", "grant", "reports", "ada")
    assert granted.code == 0 and "opened to ada" in granted.out, granted.err
    async with pool.acquire() as conn:
        grants = await conn.fetch("SELECT queue, username FROM jobrunner.queue_grants")
    assert [tuple(g) for g in grants] == [("reports", "ada")]
    assert "no user 'nobody'" in cli.run("queues", "grant", "reports", "nobody").err
    assert cli.run("queues", "revoke", "reports", "ada").code == 0
    again = cli.run("queues", "revoke", "reports", "ada")
    assert again.code == 2 and "not opened to 'ada'" in again.err

    raised = cli.run("users", "max-priority", "ada", "10")
    assert raised.code == 0 and raised.out == "ada may give priorities up to 10\n", raised.err
    async with pool.acquire() as conn:
        user = await accounts.get_user(conn, "ada")
    assert user is not None and user.max_priority == 10
    assert cli.run("users", "max-priority", "ada", "101").code == 2
