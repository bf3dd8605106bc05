"""Waiting on a condition with a deadline: the only way our tests wait for work."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from jobrunner.db.pool import Pool

T = TypeVar("T")


@overload
async def wait_for(
    condition: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = ...,
    what: str = ...,
    interval: float = ...,
) -> T: ...


@overload
async def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = ...,
    what: str = ...,
    interval: float = ...,
) -> T: ...


async def wait_for(
    condition: Callable[[], Any],
    *,
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Call `condition` (plain or async) until it returns something truthy, and return that.

    Past `timeout` seconds it fails with an AssertionError naming `what` and the last value.
    A caller who needs how long it took measures that around the call.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout:g}s (last value: {value!r})")
        await asyncio.sleep(interval)


async def equals(value: Awaitable[object], expected: object) -> bool:
    """For conditions: `wait_for(lambda: equals(db.count(...), 3), ...)`."""
    return await value == expected


async def rang_nothing(pool: Pool, rung: asyncio.Queue[str]) -> bool:
    """Whether nothing was rung on the doorbell channel before now: ring `barrier` and see
    that it is the next name heard (notifications arrive in commit order). Checking that the
    queue is empty would pass as well for a ring still on its way."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_notify('jobrunner_jobs', 'barrier')")
    return await asyncio.wait_for(rung.get(), timeout=10) == "barrier"
