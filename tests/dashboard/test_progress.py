"""The job page shows what its handler last reported: a bar, the percentage, its words."""

from __future__ import annotations

import httpx

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.progress import ProgressReport

WORKER = "w-dashboard-progress"


async def test_the_job_page_shows_progress_once_reported(
    admin: httpx.AsyncClient, pool: Pool
) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        before = await admin.get(f"/dashboard/jobs/{job.id}")
        assert before.status_code == 200 and "<progress" not in before.text
        (claimed,) = await queries.job_claim(
            conn, queues=["default"], worker_id=WORKER, limit=1, lease_seconds=30
        )
        report = ProgressReport(
            claimed.id, claimed.attempt, 0.427, "resized <b>42</b> of 100", '{"last": "a.png"}'
        )
        assert await queries.progress_write_many(conn, [report], worker_id=WORKER) == {
            claimed.id: True
        }
    page = await admin.get(f"/dashboard/jobs/{job.id}")
    assert page.status_code == 200
    assert '<progress max="100" value="42">' in page.text
    assert "42%" in page.text
    assert "resized &lt;b&gt;42&lt;/b&gt; of 100" in page.text  # the handler's words, escaped
    assert "a.png" in page.text
