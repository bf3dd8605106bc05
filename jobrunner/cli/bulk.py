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

from jobrunner import bulk, client
from jobrunner.cli.common import out, settings_from, task_database
from jobrunner.db import queries
from jobrunner.search import check_tags, parse_args_filter

PAST = {"cancel": "cancelled", "retry": "retried", "delete": "deleted"}


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
