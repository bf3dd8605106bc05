"""`jobrunner schedules ls|add|pause|resume|rm`, run as an operator would."""

from __future__ import annotations

import json

from jobrunner.db.pool import Pool
from jobrunner.worker.periodic import fire_due_schedules
from tests.support.cli import Cli


async def test_add_list_pause_resume_and_remove(cli: Cli, pool: Pool) -> None:
    added = cli.run(
        "schedules", "add", "nightly-sums", "square_sum", "30 2 * * *",
        "--timezone", "Europe/Berlin", "--args", '{"data": [1, 2, 3]}', "--priority", "5",
    )  # fmt: skip
    assert added.code == 0, added.err
    assert added.out.startswith("nightly-sums: active, runtime, task square_sum")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE jobrunner.schedules SET next_run_at = now()")
        assert await fire_due_schedules(conn) == 1

    table = cli.run("schedules", "ls").out.splitlines()
    assert table[0].split()[:4] == ["NAME", "SOURCE", "STATE", "TASK"]
    row = table[1].split()
    assert row[:4] == ["nightly-sums", "runtime", "active", "square_sum"]
    assert row[-1] == "queued"  # the last tick's job
    [record] = [json.loads(line) for line in cli.run("schedules", "ls", "--json").out.splitlines()]
    assert record["args"] == {"data": [1, 2, 3]} and record["priority"] == 5
    assert record["created_by"].startswith("cli")

    paused = cli.run("schedules", "pause", "nightly-sums")
    assert paused.code == 0 and paused.out.startswith("nightly-sums: paused"), paused.err
    resumed = cli.run("schedules", "resume", "nightly-sums")
    assert resumed.code == 0 and resumed.out.startswith("nightly-sums: active"), resumed.err
    assert cli.run("schedules", "rm", "nightly-sums").code == 0
    missing = cli.run("schedules", "rm", "nightly-sums")
    assert missing.code == 2 and "no schedule is named 'nightly-sums'" in missing.err


def test_bad_input_is_refused_with_the_reason(cli: Cli) -> None:
    for extra, reason in (
        (["x", "echo", "61 * * * *"], "not a cron expression"),
        (["x", "echo", "* * * * *", "--timezone", "Mars/Olympus"], "not an IANA time zone"),
        (["x y", "echo", "* * * * *"], "schedule name"),
    ):
        refused = cli.run("schedules", "add", *extra)
        assert refused.code == 2 and reason in refused.err, (extra, refused.err)
    assert cli.run("schedules", "add", "x", "echo", "* * * * *", "--args", "[1]").code == 2
