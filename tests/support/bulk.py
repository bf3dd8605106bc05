"""Jobs for bulk-action tests, written straight into the table in whatever state is wanted."""

from __future__ import annotations

from collections.abc import Sequence

from jobrunner.db.pool import Pool


async def insert_jobs(
    pool: Pool,
    count: int,
    *,
    owner: str,
    state: str = "queued",
    tags: Sequence[str] = (),
    task: str = "echo",
) -> None:
    """`count` jobs of `owner` in `state` (finished ones with an attempt and a finish time;
    running ones held by worker 'w' with a lease), all with `tags`, args {"n": i}."""
    async with pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs
                (task, owner, state, attempt, started_at, finished_at, worker_id,
                 lease_expires_at, tags, args)
            SELECT $5, $1, $2::jobrunner.job_state,
                   CASE WHEN $2 IN ('queued', 'scheduled') THEN 0 ELSE 1 END,
                   CASE WHEN $2 IN ('queued', 'scheduled') THEN NULL ELSE now() END,
                   CASE WHEN $2 IN ('succeeded', 'failed', 'cancelled') THEN now() END,
                   CASE WHEN $2 = 'running' THEN 'w' END,
                   CASE WHEN $2 = 'running' THEN now() + interval '1 hour' END,
                   $4, jsonb_build_object('n', g)
            FROM generate_series(1, $3) AS g""",
            owner,
            state,
            count,
            list(tags),
            task,
        )


async def count_jobs(pool: Pool, *, owner: str, state: str) -> int:
    async with pool.acquire() as conn:
        found: int = await conn.fetchval(
            "SELECT count(*) FROM jobrunner.jobs"
            " WHERE owner = $1 AND state = $2::jobrunner.job_state",
            owner,
            state,
        )
    return found
