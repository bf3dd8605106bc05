"""`jobrunner enqueue` and `jobrunner jobs ls|show|cancel|retry`."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from jobrunner import client, fleet
from jobrunner.cli import console
from jobrunner.cli.common import err, out, settings_from, task_database
from jobrunner.db import queries
from jobrunner.errors import ConfigError
from jobrunner.models import Job, JobState
from jobrunner.search import check_tags, parse_args_filter

# ----- enqueue --------------------------------------------------------------------------


async def _enqueue(dsn: str, args: argparse.Namespace, *, seen_timeout: float) -> int:
    pool = await client.configure(dsn)
    try:
        job = await client.enqueue(
            args.task,
            args.args,
            queue=args.queue,
            priority=args.priority,
            delay=args.delay,
            max_attempts=args.max_attempts,
        )
        async with pool.acquire() as conn:
            workers = await fleet.list_workers(conn, seen_timeout=seen_timeout)
        if job.queue not in fleet.served_queues(workers):  # else it would wait in silence
            err(
                f"warning: no live worker serves queue {job.queue!r}, so the job waits until "
                f"one does: `jobrunner worker --queues {job.queue}`"
            )
        if not args.wait:
            out(console.job_json(job))
            return 0
        err(f"enqueued {job.id} ({job.task} on queue {job.queue})")
        return _report_final(await _follow(job, args.timeout))
    finally:
        await client.close()  # rings the job's queue before the pool goes


async def _follow(job: Job, timeout: float | None) -> Job:
    """Poll the job until it ends, showing its state; raises TimeoutError after `timeout`."""
    status = console.StatusLine()
    started = time.monotonic()
    interval = 0.05
    try:
        while not job.state.is_terminal:
            elapsed = time.monotonic() - started
            if timeout is not None and elapsed > timeout:
                raise TimeoutError(f"job {job.id} is still {job.state} after {timeout:g}s")
            at = f"  {job.progress.percent}%" if job.progress else ""
            status.show(
                f"{job.state}  attempt {job.attempt}/{job.max_attempts}{at}  {elapsed:.1f}s"
            )
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 0.5)
            job = await client.get_job(job.id)
        status.show(
            f"{job.state}  attempt {job.attempt}/{job.max_attempts}  "
            f"{time.monotonic() - started:.1f}s"
        )
    finally:
        status.close()
    return job


def _report_final(job: Job) -> int:
    if job.state is JobState.SUCCEEDED:
        out(console.to_json(job.result))
        return 0
    error = job.last_error or {}
    err(f"job {job.id} {job.state}: {error.get('error', 'no error recorded')}")
    if error.get("traceback"):
        err(str(error["traceback"]).rstrip())
    return 1


def cmd_enqueue(args: argparse.Namespace) -> int:
    settings = settings_from({})
    with task_database(settings) as db:
        try:
            return asyncio.run(_enqueue(db.dsn, args, seen_timeout=settings.worker_seen_timeout))
        except TimeoutError as exc:
            err(f"jobrunner: {exc}")
            return 124


# ----- jobs -----------------------------------------------------------------------------


async def _jobs(dsn: str, args: argparse.Namespace, where: queries.JobFilter) -> int:
    pool = await client.configure(dsn)
    try:
        if args.jobs_command == "ls":
            jobs = await _list_jobs(args, where)
            if args.json:
                for job in jobs:
                    out(console.job_json(job, indent=None))
            else:
                out(console.table(console.JOB_HEADERS, [console.job_row(j) for j in jobs]))
            return 0
        job_id = _job_id(args.id)
        actions: dict[str, Callable[..., Any]] = {
            "show": client.get_job,
            "cancel": client.cancel_job,
            "retry": client.retry_job,
        }
        job = await actions[args.jobs_command](job_id)
        out(console.job_json(job) if args.json else console.job_details(job))
        return 0
    finally:
        await pool.close()


def _ls_filter(args: argparse.Namespace) -> queries.JobFilter:
    """`jobs ls`'s flags, checked before any database is started (InvalidFilter: one line
    and a failure, as `jobs bulk` has it)."""
    return queries.JobFilter(
        state=args.state,
        task=args.task,
        queue=args.queue,
        tags=check_tags(args.tag),
        args=parse_args_filter(args.args),
    )


async def _list_jobs(args: argparse.Namespace, where: queries.JobFilter) -> list[Job]:
    # The table shows neither args nor results: only --json reads them.
    include = queries.Include(args=True, result=True) if args.json else queries.Include()
    return await client.list_jobs(where=where, limit=args.limit, include=include)


def _job_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a job id (a UUID)") from None


def cmd_jobs(args: argparse.Namespace) -> int:
    where = _ls_filter(args) if args.jobs_command == "ls" else queries.JobFilter()
    with task_database(settings_from({})) as db:
        return asyncio.run(_jobs(db.dsn, args, where))
