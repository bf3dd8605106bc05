"""The plans of the dependency statements and of the outcome write, on tables never
analyzed (a burst of children into a new install, the bench's scratch database): each read
of job_dependencies is a probe per key, no read of jobs by id goes through a partial index
of states, and the outcome write never loops over its batch once per job."""

from __future__ import annotations

import pytest

from jobrunner import chain, group, step
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.graph import insert_graph, prepare
from jobrunner.models import JobState, Outcome, OutcomeKind
from jobrunner.webhooks import delivery_rows

POLICY = queries.OutcomePolicy(
    backoff_base=0.01, backoff_cap=0.05, max_deferrals=20, delivery=delivery_rows()
)
FAN = 3000


async def _plan(conn: Conn, name: str, *args: object) -> str:
    """EXPLAIN ANALYZE in a transaction rolled back: the statement changes nothing."""
    probe = conn.transaction()
    await probe.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, COSTS OFF) " + queries.QUERIES[name], *args)
    finally:
        await probe.rollback()
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
async def test_settling_and_recording_parents_read_by_key(pool: Pool, mode: str) -> None:
    async with pool.acquire() as conn:
        graph = chain(step("test.add", a=1, b=1), group(step("test.add", a=1, b=1)
                      for _ in range(FAN)), step("test.add", a=1, b=1))  # fmt: skip
        jobs = await insert_graph(conn, prepare(graph))
        await conn.execute(f"SET plan_cache_mode = {mode}; SET enable_bitmapscan = off")
        await conn.execute(
            "UPDATE jobrunner.jobs SET state = 'succeeded', finished_at = now(), result = '1',"
            " attempt = 1 WHERE id = $1",
            jobs[0].id,
        )
        await queries.job_dependencies_settle(conn, [jobs[0].id])
        claimed = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=250, lease_seconds=30
        )
        assert len(claimed) == 250
        outcomes = [
            Outcome(c.id, c.attempt, OutcomeKind.SUCCEEDED, result_json="1") for c in claimed
        ]
        for with_children in (False, True):
            plan = await _plan(conn, "job_record_outcomes", *_record_args(outcomes, with_children))
            function_scans = [line for line in plan.splitlines() if "Function Scan on o" in line]
            assert function_scans and all("loops=1)" in line for line in function_scans), plan
        async with conn.transaction():
            await queries.job_record_outcomes(
                conn, outcomes, worker_id="w", policy=POLICY, with_children=True
            )
            ended = [c.id for c in claimed]
            plan = await _plan(conn, "job_dependencies_settle", ended)
    # (A read of this small jobs table straight through is the planner's fair call.)
    assert "Seq Scan on job_dependencies" not in plan, plan
    assert "Tid Scan on job_dependencies" in plan, plan
    assert "jobs_finished_idx" not in plan and "jobs_waiting_idx" not in plan, plan


def _record_args(outcomes: list[Outcome], with_children: bool) -> list[object]:
    return [
        [o.id for o in outcomes], [o.attempt for o in outcomes], [o.kind for o in outcomes],
        [o.result_json for o in outcomes], [o.error_json for o in outcomes],
        [o.retry_delay for o in outcomes], "w", POLICY.backoff_base, POLICY.backoff_cap,
        POLICY.max_deferrals, *queries._made_elsewhere(POLICY.delivery), with_children,
    ]  # fmt: skip


async def test_pruning_probes_the_links_of_pruned_jobs_only(pool: Pool) -> None:
    async with pool.acquire() as conn:
        graph = group(step("test.add", a=1, b=1) for _ in range(FAN)).then(step("test.parents"))
        await insert_graph(conn, prepare(graph))
        await conn.execute(
            "UPDATE jobrunner.jobs SET state = 'cancelled', finished_at = now() - interval '1 h'"
        )
        await conn.execute("SET enable_bitmapscan = off")
        plan = await _plan(conn, "job_prune", JobState.CANCELLED.value, 60.0, 500)
    assert "Seq Scan on job_dependencies" not in plan, plan
    assert "Tid Scan on job_dependencies" in plan, plan
