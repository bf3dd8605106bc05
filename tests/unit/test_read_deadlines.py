"""The body-read deadlines of the API middleware (jobrunner.api.read_deadlines)."""

from __future__ import annotations

import asyncio

import pytest

from jobrunner.api.read_deadlines import ReadDeadlines
from tests.support.waiting import wait_for

GUARD = 5.0  # seconds: a hang fails the test instead of stalling the suite


async def test_a_read_past_its_deadline_is_a_timeout_error() -> None:
    deadlines = ReadDeadlines(0.05)
    never = asyncio.get_running_loop().create_future()
    async with asyncio.timeout(GUARD):
        with pytest.raises(TimeoutError):
            await deadlines.read(never)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_read_in_time_gives_its_value_and_the_sweeper_ends() -> None:
    deadlines = ReadDeadlines(0.05)

    async def body() -> bytes:
        await asyncio.sleep(0)
        return b"{}"

    async with asyncio.timeout(GUARD):
        assert await deadlines.read(body()) == b"{}"
    # it stops once nothing reads
    await wait_for(lambda: deadlines._sweeper is None or None, what="the sweeper to stop")


async def test_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    deadlines = ReadDeadlines(60)
    reader = asyncio.create_task(deadlines.read(asyncio.get_running_loop().create_future()))
    # reading (not just created): a cancel before the read began would prove nothing
    await wait_for(lambda: deadlines._reading or None, what="the read to begin")
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader


async def test_only_the_late_reads_are_timed_out() -> None:
    deadlines = ReadDeadlines(0.1)
    loop = asyncio.get_running_loop()
    slow = asyncio.create_task(deadlines.read(loop.create_future()))
    quick_body = loop.create_future()
    quick = asyncio.create_task(deadlines.read(quick_body))
    await asyncio.sleep(0)
    quick_body.set_result(b"x")
    async with asyncio.timeout(GUARD):
        assert await quick == b"x"
        with pytest.raises(TimeoutError):
            await slow
