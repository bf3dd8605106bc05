"""`jobrunner jobs bulk cancel|retry|delete`: a bulk action by filter, as an admin would.

The CLI runs on the database directly, so it runs the action to the end (jobrunner.bulk's
batches, each committed on its own) rather than in capped calls as the API does; it is
audited as made by `cli:<login name>`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
from datetime import datetime
from typing import Any

from jobrunner import bulk, client
from jobrunner.cli.common import out, settings_from, task_database
from jobrunner.db import queries
from jobrunner.models import JobState
from jobrunner.search import check_tags, parse_args_filter

PAST = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}


def add_bulk_parser(jobs: Any) -> None:
    """`bulk` under `jobrunner jobs` (`jobs` is its subparsers)."""
    p = jobs.add_parser(
        "bulk",
        help="cancel, retry or delete every job a filter matches",
        description="Cancel unfinished jobs, retry failed or cancelled ones, or delete "
        "finished ones: every job the filter matches, in batches of 1,000. Audited in "
        "jobrunner.bulk_actions.",
    )
    p.add_argument("action", choices=bulk.ACTIONS, help="what to do to them")
    p.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    p.add_argument("--task", help="only this task")
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--tag", action="append", help="only jobs with this tag (repeat: all of them)")
    p.add_argument("--args", help='only jobs whose args contain this JSON object, e.g. {"a": 1}')
    p.add_argument("--created-after", type=_aware, help="ISO time with a timezone")
    p.add_argument("--created-before", type=_aware, help="ISO time with a timezone")
    p.add_argument("--dry-run", action="store_true", help="count them; change nothing")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=cmd_bulk)


def _aware(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2026-01-31T00:00:00+00:00")
    return when


def request_of(args: argparse.Namespace) -> bulk.BulkRequest:
    """The request the flags describe; InvalidFilter for bad tags or args (one line out)."""
    where = queries.JobFilter(
        state=args.state,
        task=args.task,
        queue=args.queue,
        created_after=args.created_after,
        created_before=args.created_before,
        tags=check_tags(args.tag),
        args=parse_args_filter(args.args),
    )
    return bulk.BulkRequest(args.action, where, dry_run=args.dry_run)


async def _run(dsn: str, request: bulk.BulkRequest) -> bulk.BulkResult:
    pool = await client.configure(dsn)
    try:
        async with pool.acquire() as conn:
            actor = f"cli:{getpass.getuser()}"
            return await bulk.run(conn, request, actor=actor, user=None, admin=True)
    finally:
        await client.close()


def cmd_bulk(args: argparse.Namespace) -> int:
    request = request_of(args)
    with task_database(settings_from({})) as db:
        result = asyncio.run(_run(db.dsn, request))
    if args.json:
        out(json.dumps({"action": result.action, "dry_run": result.dry_run,
                        "jobs": result.jobs, "audit_id": result.audit_id}))  # fmt: skip
    elif result.dry_run:
        out(f"would {result.action} {result.jobs:,} jobs (dry run, audit #{result.audit_id})")
    else:
        out(f"{PAST[result.action]} {result.jobs:,} jobs (audit #{result.audit_id})")
    return 0
