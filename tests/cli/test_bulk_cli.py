"""`jobrunner jobs bulk`: a dry run counts, a real run acts on every match, bad filters are
one line and a non-zero exit."""

from __future__ import annotations

import pytest

from jobrunner import accounts
from jobrunner.cli import main
from jobrunner.db.pool import Pool
from tests.support.bulk import count_jobs, insert_jobs
from tests.support.cli import Cli


def test_bulk_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["jobs", "bulk", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: jobrunner jobs bulk")


async def test_a_dry_run_then_a_cancel_by_tag_and_args(cli: Cli, pool: Pool) -> None:
    async with pool.acquire() as conn:
        await accounts.create_user(conn, username="alice", password="x" * 8)
    await insert_jobs(pool, 1200, owner="alice", tags=["nightly", "eu"])
    await insert_jobs(pool, 5, owner="alice", tags=["eu"])

    dry = cli.run("jobs", "bulk", "cancel", "--tag", "nightly", "--tag", "eu", "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.out.startswith("would cancel 1,200 jobs (dry run, audit #")
    assert await count_jobs(pool, owner="alice", state="queued") == 1205

    one = cli.run("jobs", "bulk", "cancel", "--tag", "eu", "--args", '{"n": 3}')
    assert one.code == 0 and one.out.startswith("cancelled 2 jobs"), (one.out, one.err)
    rest = cli.run("jobs", "bulk", "cancel", "--tag", "nightly")
    assert rest.code == 0 and rest.out.startswith("cancelled 1,199 jobs"), (rest.out, rest.err)
    assert await count_jobs(pool, owner="alice", state="queued") == 4
    async with pool.acquire() as conn:
        actors = await conn.fetch("SELECT DISTINCT actor FROM jobrunner.bulk_actions")
    assert [r["actor"].startswith("cli:") for r in actors] == [True]


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--args", "[1]"], "JSON object"), (["--tag", "a b"], "tag"),
     (["--created-after", "2026-01-01"], "timezone")],
)  # fmt: skip
def test_bad_filters_are_one_line_and_a_failure(cli: Cli, flags: list[str], message: str) -> None:
    result = cli.run("jobs", "bulk", "delete", *flags)
    assert result.code != 0 and message in result.err, (result.out, result.err)
    assert "Traceback" not in result.err
