"""A worker's way out: let running attempts finish for a while, then hand the rest back.

On the first stop request the worker stops claiming and drains (up to the drain timeout, or
until a second request); what still runs is cancelled and, with every claimed job that never
started, handed back to the queue at once rather than after its lease.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Pool
from jobrunner.worker.attempts import AttemptBook, StopReason

if TYPE_CHECKING:  # the worker imports this module
    from jobrunner.worker.worker import Worker

log = structlog.get_logger("jobrunner.worker")


async def drain(book: AttemptBook, skip: asyncio.Event, timeout: float) -> None:
    """Let running attempts finish, up to `timeout` or until `skip` is set."""
    tasks = book.running_tasks()
    if not tasks or skip.is_set():
        return
    # Neither waiter is cancelled with what it waits for: the handlers still running are
    # release_unfinished's to cancel, with their reason. (Cancelling a gather here left
    # "_GatheringFuture exception was never retrieved" in the log at every Ctrl-C.)
    running = asyncio.ensure_future(asyncio.wait(tasks))
    skipped = asyncio.ensure_future(skip.wait())
    await asyncio.wait({running, skipped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for waiter in (running, skipped):
        waiter.cancel()


async def release_unfinished(book: AttemptBook, pool: Pool, worker_id: str) -> None:
    """Stop what still runs and hand it back to the queue at once, not after its lease."""
    tasks = book.running_tasks()
    for job_id in list(book.held):
        book.stop(job_id, StopReason.RELEASE)
    if tasks:
        # A handler that swallows cancellation cannot hold the shutdown hostage.
        await asyncio.wait(tasks, timeout=1.0)
    unfinished = book.unfinished()
    if not unfinished:
        return
    try:
        async with pool.acquire() as conn:
            released = await queries.job_release_many(conn, unfinished, worker_id=worker_id)
    except DB_ERRORS as exc:
        log.warning("could not release jobs; their leases will expire", error=str(exc))
        return
    book.released(released)
    log.info("released unfinished jobs to the queue", count=len(released))


async def stuck_handlers(book: AttemptBook, thread_prefix: str, grace: float) -> int:
    """Handlers still running though told to stop: coroutines that swallowed their
    cancellation, and sync functions, whose threads nothing can cancel. Their jobs were
    handed back already; the process should exit without waiting for them."""
    ours = [t for t in threading.enumerate() if t.name.startswith(thread_prefix)]
    deadline = time.monotonic() + grace

    def still_busy() -> int:  # idle pool threads exit at once on shutdown; busy ones don't
        for thread in ours:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(t.is_alive() for t in ours)

    return book.running_count + len(book.abandoned) + await asyncio.to_thread(still_busy)


async def exit_if_handlers_stuck(worker: Worker | None, code: int = 0) -> None:
    """Exit now if handlers ignore their cancellation after the worker stopped.

    Their jobs are back in the queue (maybe running elsewhere already); waiting for them,
    as asyncio.run() and the interpreter's exit would, only holds a finished process hostage.
    """
    stuck = await worker.stuck_handlers() if worker is not None else 0
    if not stuck:
        return
    log.warning(
        "exiting without waiting for handlers that ignore cancellation; their jobs were released",
        handlers=stuck,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
