"""`GET /jobs?limit=500` once answered 50 MB (every job's args): listings now leave args and
results out unless asked, and cap a page's bytes when asked."""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from jobrunner.testing import drain
from tests.support.api import SECRET, Account, Login

BULK = 100_000  # characters of each job's args, and of its result (echo returns them)
CAP = 250_000


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "jwt_secret": SecretStr(SECRET),
            "dev_mode": False,
            "pool_min_size": 1,
            "list_max_page_bytes": CAP,
        }
    )


async def _bulky_jobs(
    http: httpx.AsyncClient, who: Account, pool: Pool, settings: Settings, n: int
) -> list[str]:
    ids = []
    for _ in range(n):
        message = base64.b64encode(os.urandom(BULK * 3 // 4)).decode()  # incompressible
        made = await http.post(
            "/jobs", json={"task": "echo", "args": {"message": message}}, headers=who.headers
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    await drain(pool, settings=settings)
    return ids


async def _walk(http: httpx.AsyncClient, who: Account, path: str) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor."""
    pages, cursor = [], None
    while True:
        url = f"{path}&cursor={cursor}" if cursor else path
        answer = await http.get(url, headers=who.headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_lists_leave_args_and_results_out_unless_asked(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    ids = await _bulky_jobs(http, alice, pool, settings, 5)
    jobs = await http.get("/jobs?limit=500", headers=alice.headers)
    assert len(jobs.content) < 20_000  # 5 jobs with 1 MB of args and results between them
    assert [item["id"] for item in jobs.json()["items"]] == ids[::-1]
    assert all("args" not in item and "result" not in item for item in jobs.json()["items"])
    history = await http.get("/history?limit=500", headers=alice.headers)
    assert len(history.content) < 20_000
    assert all("result" not in item for item in history.json()["items"])
    # One job still comes whole.
    whole = (await http.get(f"/jobs/{ids[0]}", headers=alice.headers)).json()
    assert len(whole["args"]["message"]) == BULK and whole["result"] == whole["args"]["message"]
    for bad in ("/jobs?include=password", "/history?include=args"):
        refused = await http.get(bad, headers=alice.headers)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"


async def test_included_parts_are_capped_per_page_and_the_cursor_goes_on(
    http: httpx.AsyncClient, login: Login, pool: Pool, settings: Settings
) -> None:
    alice = await login("alice")
    ids = await _bulky_jobs(http, alice, pool, settings, 5)

    pages = await _walk(http, alice, "/jobs?limit=500&include=args")
    assert [len(page) for page in pages] == [2, 2, 1]  # 100 kB each, 250 kB a page
    assert [item["id"] for page in pages for item in page] == ids[::-1]
    assert all(len(item["args"]["message"]) == BULK for page in pages for item in page)
    assert all("result" not in item for page in pages for item in page)

    both = await _walk(http, alice, "/jobs?limit=500&include=args,result")
    assert [len(page) for page in both] == [1, 1, 1, 1, 1]  # 200 kB a job
    assert all(item["result"] == item["args"]["message"] for page in both for item in page)

    history = await _walk(http, alice, "/history?limit=500&include=result")
    assert [len(page) for page in history] == [2, 2, 1]
    assert sorted(item["id"] for page in history for item in page) == sorted(ids)
    assert all(len(item["result"]) == BULK for page in history for item in page)
