"""GET /history searches by tag and by args as GET /jobs does, shows each job's tags, keeps
to the caller's own jobs, and answers bad filters with a 422 (issue 16, item 3)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobrunner.db.pool import Pool
from tests.support.api import Account, Login
from tests.support.bulk import insert_jobs


async def _history(http: httpx.AsyncClient, who: Account, **params: Any) -> list[dict[str, Any]]:
    answer = await http.get("/history", params=params, headers=who.headers)
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def test_history_filters_by_tag_and_args_and_shows_tags(
    http: httpx.AsyncClient, login: Login, pool: Pool
) -> None:
    alice, bob = await login("alice"), await login("bob")
    await insert_jobs(pool, 3, owner="alice", state="succeeded", tags=["nightly", "eu"])
    await insert_jobs(pool, 2, owner="alice", state="failed", tags=["hourly"])
    await insert_jobs(pool, 4, owner="alice", state="queued", tags=["nightly"])  # unfinished
    await insert_jobs(pool, 5, owner="bob", state="succeeded", tags=["nightly"])

    nightly = await _history(http, alice, tag="nightly")
    assert len(nightly) == 3 and all(i["tags"] == ["nightly", "eu"] for i in nightly)
    assert len(await _history(http, alice, tag=["nightly", "eu"])) == 3
    assert await _history(http, alice, tag=["nightly", "hourly"]) == []
    one = await _history(http, alice, args='{"n": 2}', tag="hourly")
    assert len(one) == 1 and one[0]["state"] == "failed"
    assert len(await _history(http, bob, tag="nightly")) == 5  # each sees only their own


@pytest.mark.parametrize(
    "params",
    [{"tag": "has space"}, {"tag": "x" * 65}, {"args": "{nope"}, {"args": "[1]"}],
)
async def test_bad_history_filters_are_422s(
    http: httpx.AsyncClient, login: Login, params: dict[str, str]
) -> None:
    alice = await login("alice")
    answer = await http.get("/history", params=params, headers=alice.headers)
    assert answer.status_code == 422 and answer.json()["detail"], answer.text
