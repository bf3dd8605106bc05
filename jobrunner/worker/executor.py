"""One attempt of one job in, one outcome out.

The mapping from what happened to an attempt to the Outcome reported lives here and only
here: returned -> succeeded; Retry -> retry at its time; Cancel -> cancelled; a timeout or any
other exception -> retry with the job's backoff (failed once attempts are spent); a task this
worker does not know, or parents' results that could not be read -> defer. The worker's
own verdicts (cancelled before the handler ran, a bug of ours) are built here too.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import json
import traceback
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from jobrunner import dependencies
from jobrunner.context import JobContext, enter
from jobrunner.errors import Cancel, JobrunnerError, Retry, UnknownTask
from jobrunner.models import ClaimedJob, Outcome, OutcomeKind
from jobrunner.registry import get_task
from jobrunner.tasks import Task

CANCELLED_ERROR = '{"error":"cancelled on request"}'
WORKER_ERROR = '{"error":"worker error"}'
PARENTS_UNREAD_DELAY = 1.0  # seconds a job waits when its parents' results were not read


async def run_attempt(
    job: ClaimedJob,
    threads: Executor,
    *,
    unknown_task_delay: float,
    report_progress: Callable[[JobContext], None] | None = None,
) -> Outcome:
    """Run the handler once and turn what happened into an Outcome.

    A task this worker does not know (a deploy in progress: a newer worker may know it) is
    deferred `unknown_task_delay` seconds without spending the attempt; job_record_outcomes
    bounds how many times. A CancelledError (the worker stopping this attempt) propagates:
    the worker knows why it stopped it, and asks `cancelled` for the outcome of a cancel.
    """
    try:
        task = get_task(job.task)
    except UnknownTask:
        message = f"no worker knows task {job.task!r}"
        return _ended(job, OutcomeKind.DEFER, message, retry_delay=unknown_task_delay)
    if job.parents is None:  # the read after the claim failed: try again soon
        message = "its parents' results could not be read"
        return _ended(job, OutcomeKind.DEFER, message, retry_delay=PARENTS_UNREAD_DELAY)
    if job.parents:  # in this attempt's own task, where parent_results() reads them
        dependencies.run_with_parents(job)
    try:
        result = await _call(task, job, threads, report_progress)
    except Retry as exc:
        delay = None if exc.after_seconds is None else max(exc.after_seconds, 0.0)
        return _ended(job, OutcomeKind.RETRY, str(exc), retry_delay=delay)
    except Cancel as exc:
        return _ended(job, OutcomeKind.CANCELLED, exc.reason)
    except TimeoutError:
        return timed_out(job)
    except JobrunnerError as exc:  # e.g. arguments that no longer fit the task
        return _ended(job, OutcomeKind.RETRY, str(exc))
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        return _ended(job, OutcomeKind.RETRY, message, trace=traceback.format_exc())
    return _succeeded(job, result)


def cancelled(job: ClaimedJob) -> Outcome:
    """A user asked to cancel: the handler was stopped, or never started."""
    return Outcome(job.id, job.attempt, OutcomeKind.CANCELLED, error_json=CANCELLED_ERROR)


def timed_out(job: ClaimedJob) -> Outcome:
    """The attempt ran past its timeout (or ignored it and was abandoned)."""
    limit = job.timeout.total_seconds() if job.timeout else 0
    outcome = _ended(job, OutcomeKind.RETRY, f"timed out after {limit:g}s")
    return dataclasses.replace(outcome, timed_out=True)


def worker_error(job: ClaimedJob) -> Outcome:
    """A bug of the worker's, not the handler's: the job is kept alive."""
    return Outcome(job.id, job.attempt, OutcomeKind.RETRY, error_json=WORKER_ERROR)


async def _call(
    task: Task[Any, Any],
    job: ClaimedJob,
    threads: Executor,
    report_progress: Callable[[JobContext], None] | None,
) -> Any:
    kwargs = task.call_kwargs(job.args)
    # This runs in the attempt's own asyncio task, so the context variable is the attempt's.
    context = JobContext(
        job.id, job.task, job.attempt, job.max_attempts, job.queue, report_progress
    )
    enter(context)
    if task.context_param is not None:
        kwargs[task.context_param] = context
    timeout = job.timeout.total_seconds() if job.timeout else None
    if task.is_async:
        coro = task.func(**kwargs)
    else:  # threads do not inherit context variables: the job and its parents ride along
        run_in_context = functools.partial(contextvars.copy_context().run, task.func, **kwargs)
        coro = asyncio.get_running_loop().run_in_executor(threads, run_in_context)
    if timeout is None:
        return await coro
    async with asyncio.timeout(timeout):
        return await coro


def _succeeded(job: ClaimedJob, result: Any) -> Outcome:
    if result is None:  # most handlers return nothing
        return Outcome(job.id, job.attempt, OutcomeKind.SUCCEEDED, result_json="null")
    try:
        encoded = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        # The same result would fail the same way on every retry.
        return _ended(job, OutcomeKind.FAILED, f"result is not JSON-serialisable: {exc}")
    return Outcome(job.id, job.attempt, OutcomeKind.SUCCEEDED, result_json=encoded)


def _ended(
    job: ClaimedJob,
    kind: OutcomeKind,
    message: str,
    *,
    retry_delay: float | None = None,
    trace: str | None = None,
) -> Outcome:
    error = {"error": message} if trace is None else {"error": message, "traceback": trace}
    return Outcome(job.id, job.attempt, kind, error_json=json.dumps(error), retry_delay=retry_delay)
