"""The claim walks its index in claim order and stops at the batch, even when the statistics
are wrong: a burst of enqueues into a table not analyzed since it was small."""

from __future__ import annotations

from jobrunner.db.pool import Pool, connect
from jobrunner.db.queries import QUERIES


async def _worker_claim_plan(dsn: str) -> str:
    """The claim's plan on a connection set up as the worker's are."""
    conn = await connect(dsn, role="test-claim", worker_plans=True)
    try:
        explain = await conn.prepare("EXPLAIN (COSTS OFF) " + QUERIES["job_claim"])
        return "\n".join(
            row[0] for row in await explain.fetch(["default"], "w-1", 250, 30.0, [""], False)
        )
    finally:
        await conn.close()


async def test_the_claim_reads_its_index_in_order_before_any_analyze(
    pool: Pool, db_dsn: str
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, queue, state)
            SELECT 'echo', 'default', 'queued' FROM generate_series(1, 50000)""")
        assert await conn.fetchval(
            "SELECT reltuples < 1000 FROM pg_class WHERE oid = 'jobrunner.jobs'::regclass"
        ), "the statistics should still describe an almost empty table"
    plan = await _worker_claim_plan(db_dsn)
    assert "Index Scan using jobs_claim_idx" in plan, plan
    assert "Bitmap" not in plan, plan
    assert "Seq Scan on jobs" not in plan, plan
