"""The database's gauges of /metrics (jobrunner.api.job_metrics), read straight."""

from __future__ import annotations

from jobrunner import client
from jobrunner.api.job_metrics import read_figures
from jobrunner.db.pool import Pool


async def test_the_oldest_queued_job_is_found_in_any_lane_and_depth_is_per_state(
    pool: Pool,
) -> None:
    async with pool.acquire() as conn:
        for priority, key in [(5, "a"), (5, "b"), (0, "a"), (0, "c")]:
            for _ in range(3):
                await client.enqueue(
                    "echo", {}, conn=conn, queue="gauged", priority=priority, fairness_key=key
                )
        await client.enqueue("echo", {}, conn=conn, queue="gauged", delay=3600)
        # The oldest is neither the top priority's nor its lane's first in key order.
        await conn.execute(
            "UPDATE jobrunner.jobs SET run_at = now() - interval '120 seconds' WHERE id = ("
            "SELECT id FROM jobrunner.jobs WHERE priority = 0 AND fairness_key = 'c' "
            "ORDER BY run_at DESC LIMIT 1)"
        )
        figures = await read_figures(conn, max_queues=20, snapshot_warn=120)
    assert 120 <= figures.oldest["gauged"] < 180
    assert figures.depth[("gauged", "queued")] == 12
    assert figures.depth[("gauged", "scheduled")] == 1
    assert figures.snapshot_seconds >= 0
