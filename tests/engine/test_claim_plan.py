"""The claim walks its index in claim order and stops at the batch, even when the statistics
are wrong: a burst of enqueues into a table not analyzed since it was small. The worker's
claim connection plans the claim once (session_claim_plans), so the plan made while the
table was empty must still be the index walk once it holds 50,000 rows."""

from __future__ import annotations

import json

from jobrunner.db import queries
from jobrunner.db.pool import Pool, connect
from jobrunner.db.queries import QUERIES
from tests.support.plans import buffers_read

ARGS = "ARRAY['default'], 'w-1', 250, 30.0, ARRAY[''], false"


async def test_the_claim_plan_made_on_an_empty_table_walks_the_index_once_it_fills(
    pool: Pool, db_dsn: str
) -> None:
    conn = await connect(db_dsn, role="test-claim", worker_plans=True)
    try:
        await queries.session_claim_plans(conn)
        await conn.execute(
            "PREPARE claim(text[], text, int, float8, text[], bool) AS " + QUERIES["job_claim"]
        )
        assert await conn.fetch(f"EXECUTE claim({ARGS})") == []  # the plan is made here
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, queue, state)
            SELECT 'echo', 'default', 'queued' FROM generate_series(1, 50000)""")
        assert await conn.fetchval(
            "SELECT reltuples < 1000 FROM pg_class WHERE oid = 'jobrunner.jobs'::regclass"
        ), "the statistics should still describe an almost empty table"
        text = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE claim({ARGS})"))
        probe = conn.transaction()  # rolled back: the probe claims nothing
        await probe.start()
        try:
            analyzed = await conn.fetchval(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim({ARGS})"
            )
        finally:
            await probe.rollback()
    finally:
        await conn.close()
    assert "Index Scan using jobs_claim_idx" in text, text
    assert "Seq Scan on jobs" not in text and "Bitmap" not in text, text
    root = (json.loads(analyzed) if isinstance(analyzed, str) else analyzed)[0]
    assert root["Plan"]["Actual Rows"] == 250


async def test_behind_a_held_snapshot_the_claim_steps_over_dead_entries_once(
    pool: Pool, db_dsn: str
) -> None:
    """A long transaction elsewhere keeps the index entries of claimed jobs from being
    cleaned, and every claim must step over them. The fair walk finds the first live job of
    a lane and its candidates start there, so a claim steps over them once, as one probe
    of the index does (it walked them three times: 35,000 pages against 12,000)."""
    async with pool.acquire() as conn, pool.acquire() as holder:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, queue, state)
            SELECT 'echo', 'default', 'queued' FROM generate_series(1, 20000)""")
        await conn.execute("ANALYZE jobrunner.jobs")
        async with holder.transaction(isolation="repeatable_read"):
            await holder.fetchval("SELECT count(*) FROM jobrunner.jobs")  # the snapshot
            for _ in range(40):
                claimed = await queries.job_claim(
                    conn, queues=["default"], worker_id="w", limit=250, lease_seconds=30
                )
                await conn.execute(
                    "UPDATE jobrunner.jobs SET state = 'succeeded', finished_at = now()"
                    " WHERE id = any($1::uuid[])",
                    [c.id for c in claimed],
                )
            claim = await buffers_read(
                conn, QUERIES["job_claim"], ["default"], "w", 20, 30.0, [""], False
            )
            one_probe = await buffers_read(
                conn,
                "SELECT id FROM jobrunner.jobs WHERE state = 'queued' AND queue = $1"
                " ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1",
                "default",
            )
    assert one_probe > 1_000, "10,000 dead entries should stand before the first live one"
    assert claim <= 1.5 * one_probe + 300, (claim, one_probe)
