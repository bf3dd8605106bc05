"""The API's listing queries read an index in order and stop at the page size, in both the
custom and the generic plan a prepared statement may settle on."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jobrunner import accounts
from jobrunner.db.pool import Conn, Pool
from jobrunner.db.queries import QUERIES
from jobrunner.models import HistoryEntry

NONE6: list[Any] = [None] * 6
CURSOR: list[Any] = [datetime.now(UTC), uuid.UUID(int=0)]  # a page after the first
CASES: list[tuple[str, list[Any]]] = [
    ("job_list_owned", [*NONE6, 51, False, False, "alice", None, None]),
    ("job_list_all", [*NONE6, 51, False, False, None, None]),
    ("history_list_owned", [None, *NONE6, 51, False, "alice"]),
    ("history_list_all", [None, *NONE6, 51, False]),
    ("history_list_owned", [*CURSOR, *NONE6[:5], 51, False, "alice"]),
    ("history_list_all", [*CURSOR, "succeeded", *NONE6[:4], 51, False]),
]


@pytest.fixture
async def filled(pool: Pool) -> Pool:
    async with pool.acquire() as conn:
        for name in ("alice", "bob"):
            await accounts.create_user(conn, username=name, password="x" * 8)
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, owner, state, finished_at, started_at, attempt)
            SELECT 'echo', CASE WHEN g % 100 = 0 THEN 'alice' ELSE 'bob' END,
                   CASE WHEN g % 3 = 0 THEN 'queued' ELSE 'succeeded' END::jobrunner.job_state,
                   CASE WHEN g % 3 = 0 THEN NULL ELSE now() - make_interval(secs => g) END,
                   CASE WHEN g % 3 = 0 THEN NULL ELSE now() - make_interval(secs => g + 1) END,
                   CASE WHEN g % 3 = 0 THEN 0 ELSE 1 END
            FROM generate_series(1, 100000) AS g""")
        await conn.execute("ANALYZE jobrunner.jobs")
    return pool


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_listings_read_an_index_in_order(filled: Pool, mode: str) -> None:
    async with filled.acquire() as conn:
        await conn.execute(f"SET plan_cache_mode = {mode}")
        for name, args in CASES:
            explain = await conn.prepare("EXPLAIN (ANALYZE, COSTS OFF) " + QUERIES[name])
            plan = "\n".join(row[0] for row in await explain.fetch(*args))
            assert "Index Scan Backward" in plan, (name, plan)
            assert "Seq Scan" not in plan and "Bitmap" not in plan, (name, plan)
            # An incremental sort of the last page's ties is fine; a full sort is not.
            assert "->  Sort " not in plan and not plan.startswith("Sort"), (name, plan)


async def test_history_pages_have_the_columns_of_the_history_view(pool: Pool) -> None:
    """/history reads the jobrunner.history view (its columns stated once, in the migration),
    and HistoryEntry holds exactly those columns."""
    async with pool.acquire() as conn:
        view = await conn.fetch(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = 'jobrunner' AND table_name = 'history' ORDER BY ordinal_position"
        )
        columns = [row["column_name"] for row in view]
        for name in ("history_list_all", "history_list_owned"):
            statement = await conn.prepare(QUERIES[name])
            # and payload_bytes, what a byte-capped page counts (?include=result)
            assert [a.name for a in statement.get_attributes()] == [*columns, "payload_bytes"]
    assert [f.name for f in dataclasses.fields(HistoryEntry)] == columns


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_a_jobs_delivery_and_queue_counts_read_their_indexes(filled: Pool, mode: str) -> None:
    """GET /jobs/{id} finds the job's webhook delivery along jobs_delivery_idx, a user's
    GET /queues counts along their own index, and an admin's counts each state along its
    partial index (a state holding a third of this table may be read straight, stopping at
    the cap: the planner's call; what matters is that no rare state reads the table)."""
    async with filled.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, queue, args)
            SELECT 'jobrunner.deliver_webhook', 'webhooks',
                   jsonb_build_object('job_id', jobrunner.uuid_v7())
            FROM generate_series(1, 1000);
            ANALYZE jobrunner.jobs""")
        await conn.execute(f"SET plan_cache_mode = {mode}")
        delivery = await _plan(conn, "job_delivery_latest", [uuid.uuid4()])
        assert "jobs_delivery_idx" in delivery and "Seq Scan" not in delivery, delivery
        owned = await _plan(conn, "job_count_owned_live_by_queue", ["alice", 10_000])
        assert "jobs_owner_live_idx" in owned and "Seq Scan" not in owned, owned
        counts = await _plan(conn, "job_count_live_by_queue", [100_000])
        assert "jobs_lease_idx" in counts and counts.count("jobs_due_idx") == 2, counts
        assert counts.count("Seq Scan") <= 1 and "Limit" in counts, counts


async def _plan(conn: Conn, name: str, args: list[Any]) -> str:
    explain = await conn.prepare("EXPLAIN (COSTS OFF) " + QUERIES[name])
    return "\n".join(row[0] for row in await explain.fetch(*args))
