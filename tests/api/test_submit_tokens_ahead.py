"""Generous submit limits: an API process takes submission tokens a few at a time
(limits.SubmitTokensAhead), yet never lets a user past their bucket."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from jobrunner.api.limits import SubmitTokensAhead
from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.api import Login

PER_SECOND = 20.0
BURST = 20
BODY = {"task": "echo", "args": {}}


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            "submit_rate_per_minute": int(PER_SECOND * 60),
            "submit_burst": BURST,
            "max_unfinished_jobs_per_user": 10_000,
        }
    )


def test_tokens_taken_ahead_only_when_limits_allow_many_a_second(settings: Settings) -> None:
    assert SubmitTokensAhead(settings).size == 1  # the defaults: ten a second
    generous = settings.model_copy(update={"submit_rate_per_minute": 60_000, "submit_burst": 5_000})
    assert SubmitTokensAhead(generous).size == SubmitTokensAhead.MAX_AHEAD


async def _bucket_written_at(pool: Pool, username: str) -> datetime:
    async with pool.acquire() as conn:
        written: datetime = await conn.fetchval(
            "SELECT updated_at FROM jobrunner.rate_buckets WHERE key = $1", f"submit:{username}"
        )
    return written


async def test_tokens_taken_ahead_spare_the_bucket_a_write(
    http: httpx.AsyncClient, login: Login, pool: Pool, api_settings: Settings
) -> None:
    assert SubmitTokensAhead(api_settings).size == 2
    alice = await login("alice")
    written = []
    for _ in range(3):
        assert (await http.post("/jobs", json=BODY, headers=alice.headers)).status_code == 201
        written.append(await _bucket_written_at(pool, "alice"))
    # Two tokens taken by the first submission; the second spent the spare; the third took
    # two more.
    assert written[0] == written[1] < written[2]


async def test_tokens_taken_ahead_never_exceed_the_bucket(
    http: httpx.AsyncClient, login: Login
) -> None:
    alice = await login("alice")
    started = time.monotonic()
    codes = [
        (await http.post("/jobs", json=BODY, headers=alice.headers)).status_code
        for _ in range(3 * BURST)
    ]
    elapsed = time.monotonic() - started
    accepted = codes.count(201)
    assert set(codes) <= {201, 429}
    # Everything spent came out of the bucket: its burst plus what it refilled meanwhile.
    assert accepted <= BURST + PER_SECOND * elapsed + 1, (accepted, elapsed)


async def test_taking_several_tokens_gives_what_the_bucket_holds(pool: Pool) -> None:
    async with pool.acquire() as conn:
        grants = [
            await conn.fetchval(
                "SELECT jobrunner.rate_bucket_take_upto('test:upto', 0.0001, 10, $1)", want
            )
            for want in (4, 4, 4, 4, 1)
        ]
    assert grants == [4, 4, 2, 0, 0]
