"""Tags over HTTP: set by every way of submitting, shown on the job and in lists, searched
with ?tag= and ?args=; bad tags and filters are 422s with a JSON body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.api import Account, Login


@pytest.fixture
async def alice(login: Login) -> Account:
    return await login("alice")


async def _submit(
    http: httpx.AsyncClient, who: Account, body: dict[str, Any], **headers: str
) -> Any:
    made = await http.post("/jobs", json=body, headers={**who.headers, **headers})
    assert made.status_code == 201, made.text
    return made.json()


async def test_every_submission_form_carries_its_tags(
    http: httpx.AsyncClient, alice: Account
) -> None:
    plain = await _submit(http, alice, {"task": "echo", "tags": ["plain", "a"]})
    keyed = await _submit(
        http, alice, {"task": "echo", "tags": ["keyed"]}, **{"Idempotency-Key": "k-1"}
    )
    child = await _submit(
        http, alice, {"task": "echo", "tags": ["child"], "depends_on": [plain["id"]]}
    )
    graph = await http.post(
        "/jobs/graph",
        json={"jobs": [{"name": "g", "task": "echo", "tags": ["graph"]}]},
        headers=alice.headers,
    )
    assert graph.status_code == 201, graph.text
    assert plain["tags"] == ["plain", "a"] and keyed["tags"] == ["keyed"]
    assert child["tags"] == ["child"] and graph.json()["jobs"][0]["tags"] == ["graph"]
    whole = (await http.get(f"/jobs/{plain['id']}", headers=alice.headers)).json()
    assert whole["tags"] == ["plain", "a"]
    listed = (await http.get("/jobs", headers=alice.headers)).json()["items"]
    assert sorted(tag for item in listed for tag in item["tags"]) == [
        "a", "child", "graph", "keyed", "plain",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "tags", [["has space"], [""], ["x" * 65], [f"t{n}" for n in range(17)], "one", [1]]
)
async def test_bad_tags_are_422s(http: httpx.AsyncClient, alice: Account, tags: object) -> None:
    made = await http.post("/jobs", json={"task": "echo", "tags": tags}, headers=alice.headers)
    assert made.status_code == 422, made.text
    assert "tags" in made.text


async def test_lists_search_by_tag_and_args_and_see_only_their_own(
    http: httpx.AsyncClient, alice: Account, login: Login
) -> None:
    bob = await login("bob")
    admin = await login("root", admin=True)
    mine = await _submit(http, alice, {"task": "echo", "args": {"message": "x"}, "tags": ["t"]})
    await _submit(http, alice, {"task": "echo", "args": {"message": "y"}, "tags": ["t", "u"]})
    await _submit(http, bob, {"task": "echo", "args": {"message": "x"}, "tags": ["t"]})

    async def ids(who: Account, **params: Any) -> list[str]:
        answer = await http.get("/jobs", params=params, headers=who.headers)
        assert answer.status_code == 200, answer.text
        return [item["id"] for item in answer.json()["items"]]

    assert len(await ids(alice, tag="t")) == 2
    assert len(await ids(alice, tag=["t", "u"])) == 1
    assert await ids(alice, tag="t", args=json.dumps({"message": "x"})) == [mine["id"]]
    assert len(await ids(bob, tag="t")) == 1
    assert len(await ids(admin, args=json.dumps({"message": "x"}))) == 2
    assert await ids(alice, tag="nobody") == []


@pytest.mark.parametrize(
    "params",
    [
        {"args": "[1]"},
        {"args": "{nope"},
        {"args": json.dumps({"a": {"b": {"c": {"d": {"e": 1}}}}})},
        {"args": "x" * 5000},
        {"tag": "has space"},
        {"tag": [f"t{n}" for n in range(17)]},
    ],
)
async def test_bad_search_filters_are_422s(
    http: httpx.AsyncClient, alice: Account, params: dict[str, Any]
) -> None:
    answer = await http.get("/jobs", params=params, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["status"] == 422
