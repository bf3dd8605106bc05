"""Tasks every install has, so a fresh setup does real work and the benchmark has a no-op."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from jobrunner.dependencies import parent_results
from jobrunner.tasks import task
from jobrunner.webhooks import deliver_webhook  # noqa: F401 - registers the webhook task

Numbers = Annotated[list[float], Field(max_length=100_000)]


@task(name="square_sum")
def square_sum(data: Numbers) -> float:
    """Sum of squares: {"data": [1, 2, 3]} gives 14."""
    return _integral(sum(x * x for x in data))


@task(name="cube_sum")
def cube_sum(data: Numbers) -> float:
    """Sum of cubes: {"data": [1, 2, 3]} gives 36."""
    return _integral(sum(x * x * x for x in data))


@task(name="sleep")
async def sleep(seconds: Annotated[float, Field(ge=0, le=3600)] = 1.0) -> float:
    """Wait, then return the seconds waited; handy for trying timeouts and cancellation."""
    await asyncio.sleep(seconds)
    return seconds


@task(name="echo")
async def echo(message: Any = None) -> Any:
    """Return the message unchanged."""
    return message


@task(name="total")
async def total() -> float:
    """The sum of its parents' results (depends_on): a fan-in to try graphs with."""
    return _integral(sum(float(p.result) for p in parent_results() if p.result is not None))


@task(name="noop", max_attempts=1)
async def noop() -> None:
    """Do nothing: the benchmark's handler."""


def _integral(value: float) -> float:
    # JSON readers expect 14, not 14.0, when every input was a whole number.
    return int(value) if float(value).is_integer() else value
