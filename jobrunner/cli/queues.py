"""`jobrunner queues ls|pause|resume|set|grant|revoke`, straight against the database.

Changes are recorded as made by `cli:<login name>` (updated_by), and workers obey them at
their next claim, as they do the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass

from jobrunner import queues
from jobrunner.cli import console
from jobrunner.cli.common import database, out, settings_from
from jobrunner.db.pool import Conn, connect
from jobrunner.models import QueueChanges, QueueControls, QueueCounts


def who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container's arbitrary uid)
        return "cli"


def _changes(args: argparse.Namespace) -> QueueChanges:
    """An absent flag is KEEP (its default): that control stays as it is."""
    return QueueChanges(
        open_to_all=None if args.open_to_all is None else args.open_to_all == "yes",
        max_running=args.max_running,
        max_running_per_owner=args.max_running_per_owner,
        rate=args.rate,
    )


def _rate_text(queue: QueueControls) -> str:
    return queue.rate_text or "-"


def _show(queue: QueueControls) -> str:
    def value(limit: int | None) -> str:
        return "-" if limit is None else str(limit)

    state = "paused" if queue.paused else "running"
    return (
        f"{queue.name}: {state}, max running {value(queue.max_running)}, per owner "
        f"{value(queue.max_running_per_owner)}, rate {_rate_text(queue)}, "
        f"open to all {'yes' if queue.open_to_all else 'no'}"
        + (f", opened to {', '.join(queue.granted_to)}" if queue.granted_to else "")
    )


async def _list(conn: Conn, as_json: bool) -> None:
    views = await queues.list_all(conn, await queues.live_counts(conn))
    if as_json:
        for v in views:
            record = {**dataclasses.asdict(v.controls), "counts": v.counts.states}
            out(console.to_json(record, indent=None))
        return
    headers = ["QUEUE", "STATE", "MAX_RUNNING", "PER_OWNER", "RATE", "OPEN", *queues.LIVE_STATES]
    rows = [
        [
            v.controls.name,
            "paused" if v.controls.paused else "running",
            v.controls.max_running if v.controls.max_running is not None else "-",
            v.controls.max_running_per_owner or "-",
            _rate_text(v.controls),
            "all" if v.controls.open_to_all else ",".join(v.controls.granted_to) or "admins",
            *(_count(v.counts, state) for state in v.counts.states),
        ]
        for v in views
    ]
    out(console.table(headers, rows))


def _count(counts: QueueCounts, state: str) -> str:
    n = counts.states[state]
    return f"{n}+" if counts.at_least(state) else str(n)


async def _queues(dsn: str, args: argparse.Namespace) -> int:
    conn: Conn = await connect(dsn, role="cli")
    try:
        action = args.queues_command
        if action == "ls":
            await _list(conn, args.json)
        elif action in ("pause", "resume"):
            act = queues.pause if action == "pause" else queues.resume
            out(_show(await act(conn, args.name, by=who())))
        elif action == "set":
            out(_show(await queues.change(conn, args.name, _changes(args), by=who())))
        elif action == "grant":
            out(_show(await queues.grant(conn, args.name, args.user, by=who())))
        else:
            await queues.revoke(conn, args.name, args.user)
            out(f"revoked {args.user}'s grant on {args.name}")
        return 0
    finally:
        await conn.close()


def cmd_queues(args: argparse.Namespace) -> int:
    with database(settings_from({})) as db:
        return asyncio.run(_queues(db.dsn, args))
