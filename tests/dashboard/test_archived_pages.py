"""The dashboard shows a job the archiver moved to job_history (migration 0020): its page,
the jobs list, and its retry button, which brings it back to the live table."""

from __future__ import annotations

import re

import httpx

from jobrunner.db.pool import Pool
from jobrunner.settings import Settings
from tests.support.archive import archive_now, where
from tests.support.bulk import insert_jobs


async def test_an_archived_job_has_its_page_its_row_and_its_retry(
    user: httpx.AsyncClient, pool: Pool, settings: Settings
) -> None:
    await insert_jobs(pool, 1, owner="ada", state="failed", tags=["nightly"])
    assert await archive_now(pool, settings) == 1
    async with pool.acquire() as conn:
        job_id = await conn.fetchval("SELECT id FROM jobrunner.job_history")

    listed = await user.get("/dashboard/jobs", params={"state": "failed"})
    assert listed.status_code == 200
    assert set(re.findall(r'<td data-sort="([0-9a-f-]{36})">', listed.text)) == {str(job_id)}
    page = await user.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200 and "failed" in page.text

    retried = await user.post(f"/dashboard/jobs/{job_id}/retry")
    assert retried.status_code in (200, 303), retried.text
    async with pool.acquire() as conn:
        assert await where(conn, job_id) == ["jobs"]
        assert await conn.fetchval("SELECT state::text FROM jobrunner.jobs") == "queued"
