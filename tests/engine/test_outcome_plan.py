"""The worker's outcome connection keeps one plan for job_record_outcomes, and that plan
finds a batch's rows through the primary key: one probe a job, whatever else is running.
(The state it fences on comes in per row; as a constant, the generic plan read every running
job through jobs_lease_idx, so the statement was planned anew at every flush.)"""

from __future__ import annotations

from jobrunner.db import queries
from jobrunner.db.pool import Pool, connect
from jobrunner.models import Outcome, OutcomeKind
from jobrunner.webhooks import delivery_rows

POLICY = queries.OutcomePolicy(
    backoff_base=1.0, backoff_cap=60.0, max_deferrals=5, delivery=delivery_rows()
)
BATCH = 50
FLUSHES = 8


async def test_the_outcome_write_keeps_one_plan_that_probes_the_primary_key(
    pool: Pool, db_dsn: str
) -> None:
    async with pool.acquire() as setup:
        await setup.execute(f"""
            INSERT INTO jobrunner.jobs
                (task, state, attempt, worker_id, started_at, lease_expires_at)
            SELECT 'echo', 'running', 1, 'w', now(), now() + interval '1 hour'
            FROM generate_series(1, {BATCH * FLUSHES + 5000})""")
        await setup.execute("ANALYZE jobrunner.jobs")
        ids = [r["id"] for r in await setup.fetch("SELECT id FROM jobrunner.jobs ORDER BY id")]
    conn = await connect(db_dsn, role="test-outcomes", worker_plans=True)
    try:
        await queries.session_outcome_plans(conn)
        for flush in range(FLUSHES):
            batch = ids[flush * BATCH : (flush + 1) * BATCH]
            outcomes = [
                Outcome(id=i, attempt=1, kind=OutcomeKind.SUCCEEDED, result_json="1") for i in batch
            ]
            recorded = await queries.job_record_outcomes(
                conn, outcomes, worker_id="w", policy=POLICY
            )
            assert len(recorded) == BATCH
        plans = await conn.fetchrow("""
            SELECT generic_plans, custom_plans FROM pg_prepared_statements
            WHERE statement LIKE '%WITH recorded AS%'
              AND statement NOT LIKE '%pg_prepared_statements%'""")  # not this one
    finally:
        await conn.close()
    assert plans is not None
    # PostgreSQL plans the first five calls for their values, then keeps the generic plan
    assert plans["generic_plans"] >= FLUSHES - 5, dict(plans)


async def test_the_outcome_writes_generic_plan_walks_the_primary_key(
    pool: Pool, db_dsn: str
) -> None:
    async with pool.acquire() as setup:
        await setup.execute("""
            INSERT INTO jobrunner.jobs
                (task, state, attempt, worker_id, started_at, lease_expires_at)
            SELECT 'echo', 'running', 1, 'w', now(), now() + interval '1 hour'
            FROM generate_series(1, 5000)""")
        await setup.execute("ANALYZE jobrunner.jobs")
        batch = [r["id"] for r in await setup.fetch("SELECT id FROM jobrunner.jobs LIMIT 50")]
    conn = await connect(db_dsn, role="test-outcomes", worker_plans=True)
    try:
        await queries.session_outcome_plans(conn)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        statement = await conn.prepare("EXPLAIN " + queries.QUERIES["job_record_outcomes"])
        params = [
            batch,
            [1] * len(batch),
            ["succeeded"] * len(batch),
            ["1"] * len(batch),
            [None] * len(batch),
            [None] * len(batch),
            "w",
            1.0,
            60.0,
            5,
            *queries._made_elsewhere(POLICY.delivery),
            False,
        ]
        plan = "\n".join(r[0] for r in await statement.fetch(*params))
    finally:
        await conn.close()
    updating = plan.split("CTE counted")[0]
    assert "Index Scan using jobs_pkey on jobs j" in updating, plan
    assert "jobs_lease_idx" not in updating and "Seq Scan" not in updating, plan
