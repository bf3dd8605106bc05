"""Searches by tag and by args containment read the GIN indexes of migration 0013 when what
they ask for is rare, rather than walking every job; a search's statement is planned for its
own values (queries.fresh_statement), which is what lets them."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jobrunner import accounts
from jobrunner.db.pool import Conn, Pool
from jobrunner.db.queries import QUERIES

ROWS = 100_000
NONE6: list[Any] = [None] * 6


@pytest.fixture
async def filled(pool: Pool) -> Pool:
    """100,000 jobs: every one tagged 'common', one in 2,000 'rare'; args {"n": g}, and
    {"customer": "c<g % 1000>"} for every tenth job."""
    async with pool.acquire() as conn:
        for name in ("alice", "bob"):
            await accounts.create_user(conn, username=name, password="x" * 8)
        await conn.execute(f"""
            INSERT INTO jobrunner.jobs (task, owner, state, tags, args)
            SELECT 'echo', CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END, 'queued',
                   CASE WHEN g % 2000 = 0 THEN ARRAY['common', 'rare'] ELSE ARRAY['common'] END,
                   CASE WHEN g % 10 = 0 THEN jsonb_build_object('customer', 'c' || g % 1000)
                        ELSE jsonb_build_object('n', g) END
            FROM generate_series(1, {ROWS}) AS g""")
        await conn.execute("ANALYZE jobrunner.jobs")
    return pool


async def _plan(conn: Conn, name: str, args: list[Any]) -> str:
    """The plan, less the archive's branch (jobrunner.all_jobs): these jobs are live, and
    the planner reads the archive's empty default partition whole, at no cost (its own
    searches: tests/api/test_archived_reads.py)."""
    explain = await conn.prepare("EXPLAIN (ANALYZE, COSTS OFF) " + QUERIES[name])
    lines = [row[0] for row in await explain.fetch(*args)]
    kept, skipping = [], None
    for line in lines:
        depth = len(line) - len(line.lstrip(" ->"))
        if skipping is not None and depth > skipping:
            continue
        skipping = None
        # PostgreSQL 18 prints row counts with two decimals (rows=0.00)
        if "Seq Scan on job_history_default" in line and re.search(r"rows=0(\.00)? ", line):
            skipping = depth
            continue
        kept.append(line)
    return "\n".join(kept)


@pytest.mark.parametrize(("name", "owner"), [("job_list_all", []), ("job_list_owned", ["alice"])])
async def test_a_rare_tag_or_args_value_reads_its_gin_index(
    filled: Pool, name: str, owner: list[str]
) -> None:
    page = [*NONE6, 51, False, False, *owner]
    async with filled.acquire() as conn:
        by_tag = await _plan(conn, name, [*page, ["rare"], None])
        by_args = await _plan(conn, name, [*page, None, {"customer": "c10"}])
        both = await _plan(conn, name, [*page, ["rare"], {"customer": "c0"}])
    assert "jobs_tags_idx" in by_tag and "Seq Scan" not in by_tag, by_tag
    assert "jobs_args_idx" in by_args and "Seq Scan" not in by_args, by_args
    assert "Seq Scan" not in both and ("jobs_tags_idx" in both or "jobs_args_idx" in both), both


async def test_a_common_tag_walks_the_primary_key_and_stops_at_the_page(filled: Pool) -> None:
    """A tag every job carries is no use to the index: the page is the newest 51 jobs, read
    along the primary key backwards."""
    async with filled.acquire() as conn:
        plan = await _plan(conn, "job_list_all", [*NONE6, 51, False, False, ["common"], None])
    assert "Index Scan Backward" in plan and "Seq Scan" not in plan, plan
    # PostgreSQL 18 prints row counts with two decimals (rows=51.00)
    assert re.search(r"rows=51(\.00)?[ )]", plan), plan


async def test_a_bulk_batch_by_a_rare_tag_reads_its_gin_index(filled: Pool) -> None:
    """A batch of a bulk action finds its jobs as a search does, and a user's batch by no
    search at all walks an index in id order (here the primary key: half the jobs are
    alice's), stopping at the batch: no sort of the table. EXPLAIN only: nothing changes."""
    queued = [["queued"]]
    async with filled.acquire() as conn:
        rare = await _explain(
            conn, "job_bulk_cancel", [None, True, *queued, *[None] * 4, ["rare"], None, None, 1000]
        )
        owned = await _explain(
            conn, "job_bulk_cancel", ["alice", False, *queued, *[None] * 6, None, 1000]
        )
    assert "jobs_tags_idx" in rare and "Seq Scan" not in rare, rare
    finding = owned.split("CTE cancelled")[0]  # later, only the batch itself is sorted
    assert "Limit" in finding and "Seq Scan" not in owned and "Sort" not in finding, owned
    assert "jobs_owner_idx" in owned or "jobs_pkey" in owned, owned


async def _explain(conn: Conn, name: str, args: list[Any]) -> str:
    explain = await conn.prepare("EXPLAIN (COSTS OFF) " + QUERIES[name])
    return "\n".join(row[0] for row in await explain.fetch(*args))


@pytest.fixture
async def finished(pool: Pool) -> Pool:
    """The `filled` jobs' tags and args, on 100,000 finished jobs (what /history reads)."""
    async with pool.acquire() as conn:
        for name in ("alice", "bob"):
            await accounts.create_user(conn, username=name, password="x" * 8)
        await conn.execute(f"""
            INSERT INTO jobrunner.jobs
                (task, owner, state, attempt, started_at, finished_at, tags, args)
            SELECT 'echo', CASE WHEN g % 2 = 0 THEN 'alice' ELSE 'bob' END, 'succeeded', 1,
                   now() - interval '1 hour' + g * interval '10 ms',
                   now() - interval '1 hour' + g * interval '20 ms',
                   CASE WHEN g % 2000 = 0 THEN ARRAY['common', 'rare'] ELSE ARRAY['common'] END,
                   CASE WHEN g % 10 = 0 THEN jsonb_build_object('customer', 'c' || g % 1000)
                        ELSE jsonb_build_object('n', g) END
            FROM generate_series(1, {ROWS}) AS g""")
        await conn.execute("ANALYZE jobrunner.jobs")
    return pool


@pytest.mark.parametrize(
    ("name", "owner"), [("history_list_all", []), ("history_list_owned", ["alice"])]
)
async def test_a_history_search_by_a_rare_tag_or_args_value_reads_its_gin_index(
    finished: Pool, name: str, owner: list[str]
) -> None:
    """/history's tag= and args= (migration 0018's view columns) plan as GET /jobs's do."""
    page = [*NONE6, None, 51, False, *owner]
    async with finished.acquire() as conn:
        by_tag = await _plan(conn, name, [*page, ["rare"], None])
        by_args = await _plan(conn, name, [*page, None, {"customer": "c10"}])
        common = await _plan(conn, name, [*page, ["common"], None])
    assert "jobs_tags_idx" in by_tag and "Seq Scan" not in by_tag, by_tag
    assert "jobs_args_idx" in by_args and "Seq Scan" not in by_args, by_args
    assert "Seq Scan" not in common and "rows=51" in common, common


async def test_an_empty_tag_list_or_args_object_filters_nothing_out(pool: Pool) -> None:
    """The search indexes leave out jobs with no tags and '{}' args (migration 0019), and the
    searches say so only for a non-empty filter: `tags @> '{}'` and `args @> '{}'` match every
    job, those jobs included."""
    async with pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, tags, args)
            VALUES ('echo', '{}', '{}'), ('echo', ARRAY['a'], '{"k": 1}')""")
        page = [*NONE6, 51, False, False]
        everything = await conn.fetch(QUERIES["job_list_all"], *page, None, None)
        empty_filters = await conn.fetch(QUERIES["job_list_all"], *page, [], {})
        tagged = await conn.fetch(QUERIES["job_list_all"], *page, ["a"], {"k": 1})
    assert len(everything) == len(empty_filters) == 2
    assert [row["tags"] for row in tagged] == [["a"]]
