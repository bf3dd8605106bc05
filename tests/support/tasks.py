"""Tasks the tests enqueue; workers started as subprocesses import this module too."""

from __future__ import annotations

import asyncio
import datetime
import os
import time
import uuid
from datetime import timedelta

import structlog

from jobrunner import (
    Backoff,
    Cancel,
    JobContext,
    Retry,
    current_job,
    parent_result,
    parent_results,
    task,
)

calls: dict[str, int] = {}


@task(name="test.add")
async def add(a: int, b: int) -> int:
    return a + b


@task(name="test.fail_until", max_attempts=5)
async def fail_until(key: str, succeed_on: int) -> str:
    calls[key] = calls.get(key, 0) + 1
    if calls[key] < succeed_on:
        raise ValueError(f"boom {calls[key]}")
    return "ok"


@task(name="test.always_fail", max_attempts=2)
async def always_fail() -> None:
    raise RuntimeError("always")


@task(name="test.retry_later")
async def retry_later(seconds: float) -> None:
    raise Retry(after=timedelta(seconds=seconds))


@task(name="test.cancel_me")
async def cancel_me(reason: str) -> None:
    raise Cancel(reason)


@task(name="test.sleep")
async def sleep(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@task(name="test.sync_mul")
def sync_mul(a: int, b: int) -> int:
    return a * b


@task(name="test.slow_timeout", timeout=0.1, max_attempts=2)
async def slow_timeout() -> None:
    await asyncio.sleep(10)


@task(name="test.unserialisable")
async def unserialisable() -> object:
    return object()


@task(name="test.block_loop", max_attempts=2)
async def block_loop(seconds: float) -> None:
    time.sleep(seconds)  # noqa: ASYNC251 - deliberately blocks the event loop


@task(name="test.suicide", max_attempts=3)
async def suicide() -> None:
    os.kill(os.getpid(), 9)


# Defaults on every setting the parameter maker fills: each way in must write these.
DEFAULTS_QUEUE = "defaults-q"


@task(
    name="test.with_defaults",
    queue=DEFAULTS_QUEUE,
    priority=7,
    max_attempts=4,
    timeout=12.5,
    backoff=Backoff(base=2.0, cap=30.0),
)
async def with_defaults(n: int = 0) -> int:
    return n


ran_past_timeout: dict[str, int] = {}  # token -> handlers that ran on to their end


@task(name="test.ignore_timeout", timeout=0.3, max_attempts=2)
async def ignore_timeout(token: str, seconds: float) -> str:
    """Swallow every cancellation (the timeout's too) and run `seconds` regardless."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue
    ran_past_timeout[token] = ran_past_timeout.get(token, 0) + 1
    return "ran on"


@task(name="test.parents")
async def parents_seen(tag: str = "") -> list[list[object]]:
    """What its parents left, in order: [task, state, result, error] each."""
    return [[p.task, p.state.value, p.result, p.error] for p in parent_results()]


@task(name="test.sync_parents")
def sync_parents_seen() -> list[str]:
    """parent_results() from a plain function, which runs in a thread."""
    return [str(p.id) for p in parent_results()]


@task(name="test.plus_parent")
async def plus_parent(n: int) -> int:
    """A chain's step: its one parent's result plus n."""
    return int(parent_result()) + n


def _seen(job: JobContext) -> dict[str, object]:
    return {
        "id": str(job.id),
        "task": job.task,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "queue": job.queue,
        "same_as_current": current_job() is job,
        "log_context": {k: str(v) for k, v in structlog.get_context(job.log).items()},
    }


@task(name="test.context", max_attempts=2)
async def context(fail_first: bool, job: JobContext) -> dict[str, object]:
    """What a handler sees of its job; with fail_first, the first attempt fails."""
    if fail_first and job.attempt == 1:
        raise RuntimeError("first attempt")
    return _seen(job)


@task(name="test.sync_context")
def sync_context() -> dict[str, object]:
    """A sync handler (in a thread) finds its job through the context variable."""
    return _seen(current_job())


@task(name="test.on_day")
async def on_day(day: datetime.date, ref: uuid.UUID) -> str:
    return f"{day.isoformat()} {ref}"


# Progress (jobrunner.progress). A handler waits at its gate until the test opens it: engine
# tests run their workers in this process and loop.
gates: dict[str, asyncio.Event] = {}


def gate(key: str) -> asyncio.Event:
    return gates.setdefault(key, asyncio.Event())


@task(name="test.progress_steps", max_attempts=2)
async def progress_steps(key: str, steps: int, fail_first: bool, job: JobContext) -> int:
    """Reports `steps` times in a tight loop, waits at its gate, reports "finished" and
    returns. With fail_first the
    first attempt reports, waits at gate `key:first` and fails; the second waits at the
    gate before reporting."""
    if fail_first and job.attempt == 2:
        await gate(key).wait()
    for step in range(1, steps + 1):
        job.progress(step / steps, f"step {step} of {steps}", data={"step": step})
    if fail_first and job.attempt == 1:
        await gate(f"{key}:first").wait()
        raise RuntimeError("first attempt fails after reporting")
    await gate(key).wait()
    job.progress(1.0, "finished")  # its last report, made as it ends
    return steps


@task(name="test.sync_progress")
def sync_progress(fraction: float, message: str) -> None:
    """A plain `def` handler (in a thread) reports once and returns at once: it ends before
    the writer's first round, so its report is never written."""
    current_job().progress(fraction, message)
