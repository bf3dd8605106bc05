from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.models import JobState
from jobrunner.settings import Settings
from jobrunner.testing import drain


async def test_enqueue_and_drain(pool: Pool, settings: Settings) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue("test.add", {"a": 2, "b": 3}, conn=conn)
    assert job.state is JobState.QUEUED
    stats = await drain(pool, settings=settings)
    assert stats.recorded == {"succeeded": 1}
    async with pool.acquire() as conn:
        done = await client.get_job(job.id, conn=conn)
    assert done.state is JobState.SUCCEEDED
    assert done.result == 5
