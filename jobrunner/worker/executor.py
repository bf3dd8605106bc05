"""One attempt of one job in, one outcome out.

The mapping from what a handler did to what the job becomes lives here and only here:
returned -> succeeded; Retry -> retrying at its time; Cancel -> cancelled; a timeout or any
other exception -> retrying with backoff (failed once attempts are spent).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import traceback
from concurrent.futures import Executor
from typing import Any

import structlog

from jobrunner.db.queries import Outcome
from jobrunner.errors import Cancel, JobrunnerError, Retry
from jobrunner.models import ClaimedJob
from jobrunner.registry import get_task
from jobrunner.settings import Settings
from jobrunner.tasks import Task

log = structlog.get_logger("jobrunner.worker")


class AttemptStopped(Exception):
    """The worker stopped this attempt (shutdown release or lost lease): record nothing."""


async def run_attempt(
    job: ClaimedJob,
    settings: Settings,
    threads: Executor,
    cancel_requested: set[Any],
) -> Outcome:
    """Run the handler once and turn what happened into an Outcome.

    A CancelledError is the worker stopping this attempt: if the job's id is in
    `cancel_requested` a user asked for it (outcome `cancelled`); otherwise the worker is
    releasing or has lost the attempt, and AttemptStopped says to record nothing.
    """
    started = time.perf_counter()
    try:
        task = get_task(job.task)
        result = await _call(task, job, threads)
        outcome = _succeeded(job, result)
    except asyncio.CancelledError:
        if job.id not in cancel_requested:
            raise AttemptStopped() from None
        outcome = _ended(job, "cancelled", "cancelled on request")
    except Retry as exc:
        delay = None if exc.after_seconds is None else max(exc.after_seconds, 0.0)
        outcome = _ended(job, "retry", str(exc), retry_delay=delay)
    except Cancel as exc:
        outcome = _ended(job, "cancelled", exc.reason)
    except TimeoutError:
        limit = job.timeout.total_seconds() if job.timeout else 0
        outcome = _ended(job, "retry", f"timed out after {limit:g}s")
    except JobrunnerError as exc:  # e.g. no such task on this worker, or arguments changed
        outcome = _ended(job, "retry", str(exc))
    except Exception as exc:
        outcome = _ended(
            job,
            "retry",
            f"{type(exc).__name__}: {exc}",
            trace=traceback.format_exc(),
        )
    log.info(
        "job attempt ended",
        job_id=str(job.id),
        task=job.task,
        attempt=job.attempt,
        outcome=outcome.kind,
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return outcome


async def _call(task: Task[Any, Any], job: ClaimedJob, threads: Executor) -> Any:
    kwargs = task.call_kwargs(job.args)
    timeout = job.timeout.total_seconds() if job.timeout else None
    if task.is_async:
        coro = task.func(**kwargs)
    else:
        loop = asyncio.get_running_loop()
        coro = loop.run_in_executor(threads, functools.partial(task.func, **kwargs))
    if timeout is None:
        return await coro
    async with asyncio.timeout(timeout):
        return await coro


def _succeeded(job: ClaimedJob, result: Any) -> Outcome:
    if result is None:  # most handlers return nothing
        return Outcome(job.id, job.attempt, "succeeded", result_json="null")
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        # The same result would fail the same way on every retry.
        return _ended(job, "failed", f"result is not JSON-serialisable: {exc}")
    return Outcome(job.id, job.attempt, "succeeded", result_json=encoded)


def _ended(
    job: ClaimedJob,
    kind: str,
    message: str,
    *,
    retry_delay: float | None = None,
    trace: str | None = None,
) -> Outcome:
    error = {"error": message} if trace is None else {"error": message, "traceback": trace}
    return Outcome(job.id, job.attempt, kind, error_json=json.dumps(error), retry_delay=retry_delay)
