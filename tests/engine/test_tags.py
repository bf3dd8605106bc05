"""Tags ride the one parameter maker, so every insert form carries them; the bounds hold on all."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.errors import InvalidArguments
from jobrunner.job_rows import insert_each, make_rows
from jobrunner.options import JobOptions
from jobrunner.search import MAX_TAGS, InvalidFilter, check_args_filter, parse_args_filter
from tests.support import tasks


async def _tags(conn: Conn, ids: list[UUID]) -> list[list[str]]:
    """The stored tags of each job, in the order of `ids` (ids made in one millisecond are
    not ordered among themselves)."""
    rows = await conn.fetch("SELECT id, tags FROM jobrunner.jobs WHERE id = ANY($1::uuid[])", ids)
    stored = {r["id"]: list(r["tags"]) for r in rows}
    return [stored[i] for i in ids]


async def test_every_insert_form_writes_the_tags(pool: Pool) -> None:
    async with pool.acquire() as conn:
        one = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, tags=["a", "b"])
        many = await client.enqueue_many(
            "test.add", [{"a": 1, "b": 2}] * 3, conn=conn, tags=["bulk", "b"]
        )
        each = await insert_each(
            conn,
            [
                make_rows("test.add", [{"a": 1, "b": 2}], JobOptions(tags=["x"])),
                make_rows("test.add", [{"a": 1, "b": 2}]),
                make_rows("test.add", [{"a": 1, "b": 2}], JobOptions(tags=["y", "z"])),
            ],
        )
        by_task = await tasks.add.enqueue(conn=conn, a=1, b=1, tags=["task"])
        linked = await client.enqueue(
            "test.add", {"a": 1, "b": 2}, conn=conn, tags=["child"], depends_on=[one]
        )
        assert one.tags == ("a", "b") and by_task.tags == ("task",) and linked.tags == ("child",)
        assert [j.tags for j in each] == [("x",), (), ("y", "z")]
        assert await _tags(conn, many) == [["bulk", "b"]] * 3
        assert await _tags(conn, [j.id for j in each]) == [["x"], [], ["y", "z"]]


async def test_a_tag_given_twice_is_kept_once_and_untagged_jobs_read_empty(pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, tags=["a", "a"])
        plain = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        assert job.tags == ("a",) and plain.tags == ()
        assert (await client.get_job(plain.id, conn=conn)).tags == ()


@pytest.mark.parametrize(
    "tags",
    [["has space"], [""], ["x" * 65], [f"t{n}" for n in range(MAX_TAGS + 1)], "one-string"],
)
def test_tags_out_of_bounds_are_refused_before_anything_is_written(tags: object) -> None:
    with pytest.raises(InvalidArguments, match="tag"):
        make_rows("test.add", [{"a": 1, "b": 2}], JobOptions(tags=tags))  # type: ignore[arg-type]


async def test_lists_filter_by_tags_and_args_containment(pool: Pool) -> None:
    async with pool.acquire() as conn:
        red = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn, tags=["red", "big"])
        await client.enqueue("test.add", {"a": 1, "b": 3}, conn=conn, tags=["red"])
        await client.enqueue("test.add", {"a": 5, "b": 2}, conn=conn, tags=["blue"])

        async def listed(**where: Any) -> list[int]:
            jobs = await client.list_jobs(
                conn=conn, where=queries.JobFilter(**where), include=queries.Include(args=True)
            )
            return sorted(10 * j.args["a"] + j.args["b"] for j in jobs if j.args is not None)

        assert await listed(tags=("red",)) == [12, 13]
        assert await listed(tags=("red", "big")) == [12]
        assert await listed(args={"b": 2}) == [12, 52]
        assert await listed(tags=("red",), args={"b": 2}) == [12]
        assert await listed(tags=("green",)) == []
        owned = await client.list_jobs(conn=conn, where=queries.JobFilter(tags=("big",)))
        assert [j.id for j in owned] == [red.id] and owned[0].tags == ("red", "big")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "JSON object"),
        ('"x"', "JSON object"),
        ("{nope", "not JSON"),
        ('{"a": {"b": {"c": {"d": {"e": 1}}}}}', "nests"),
        ('{"a": "' + "x" * 5000 + '"}', "bytes"),
        ("[" * 5000, "bytes"),
    ],
)
def test_args_filters_out_of_bounds_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        parse_args_filter(text)


def test_an_args_filter_with_a_nan_is_refused() -> None:
    with pytest.raises(InvalidFilter):
        check_args_filter({"a": float("nan")})
