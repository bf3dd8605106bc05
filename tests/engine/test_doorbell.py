"""The doorbell of jobs that commit on their own: rung in the insert's own statement when the
caller is alone, after the commit (coalesced) when callers overlap; either way every queue
with a new ready job is heard."""

from __future__ import annotations

import asyncio

from jobrunner import client
from jobrunner.db.pool import Pool
from jobrunner.doorbell import Doorbell
from tests.support.waiting import rang_nothing


async def test_an_insert_alone_rings_in_its_statement_and_overlapping_ones_after(
    pool: Pool,
) -> None:
    doorbell = Doorbell(pool)
    with doorbell.inserting() as first, doorbell.inserting() as overlapping:
        assert (first, overlapping) == (True, False)
    with doorbell.inserting() as alone_again:
        assert alone_again
    doorbell.ring("q")  # a ring under way: the next insert would queue behind its commit
    with doorbell.inserting() as behind_a_ring:
        assert not behind_a_ring
    await doorbell.flush()
    with doorbell.inserting() as after_the_ring:
        assert after_the_ring


async def test_one_caller_rings_every_job_without_the_doorbells_second_statement(
    pool: Pool, rung: asyncio.Queue[str]
) -> None:
    await client.configure(pool)
    doorbell = client.default_doorbell()
    assert doorbell is not None
    for n in range(3):
        await client.enqueue("test.add", {"a": n, "b": 0}, queue=f"alone-{n}")
        # Rung by the insert's own commit: nothing left for the doorbell to send.
        assert doorbell.idle()
    assert [await asyncio.wait_for(rung.get(), timeout=10) for _ in range(3)] == [
        "alone-0",
        "alone-1",
        "alone-2",
    ]
    assert await rang_nothing(pool, rung)


async def test_overlapping_callers_are_all_heard(pool: Pool, rung: asyncio.Queue[str]) -> None:
    await client.configure(pool)
    queues = {f"overlap-{n}" for n in range(8)}
    await asyncio.gather(
        *(client.enqueue("test.add", {"a": 1, "b": 2}, queue=queue) for queue in queues)
    )
    heard: set[str] = set()
    while heard != queues:
        heard.add(await asyncio.wait_for(rung.get(), timeout=10))
    doorbell = client.default_doorbell()
    assert doorbell is not None
    await doorbell.flush()
    assert doorbell.idle()
