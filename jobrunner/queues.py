"""Queue controls and who may submit where: what the API, the CLI and the dashboard call.

A queue's controls live in its row in jobrunner.queues (migration 0008): paused, the most
jobs running at once (across all workers, and per owner), and a start rate. Every worker
reads them at its next claim, so a change holds everywhere within about a second; a change
that leaves the queue running rings its doorbell, so idle workers claim at once what a
resume or a raised limit lets start. A queue without a row has no limits and is open to
admins only.

Users submit to the queues open to all (`default`, from the start) and those an admin opened
to them one by one (grants), never to the webhook delivery queue, which is jobrunner's own;
a priority above their maximum (0 unless an admin raised it) is refused. `refusal` says
why; the check on the API's hot path is jobrunner.api.queue_access.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from jobrunner.accounts import UnknownUser
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.errors import InvalidQueueControls, JobrunnerError
from jobrunner.models import (
    TERMINAL_STATES,
    JobState,
    QueueChanges,
    QueueControls,
    QueueCounts,
    UserAccess,
)
from jobrunner.webhooks import deliver_webhook

# Where workers deliver every user's webhooks: a user's jobs there would hold up everyone's
# deliveries, and operators size its workers for deliveries alone.
RESERVED_QUEUE = deliver_webhook.queue
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # as the API's QueueName says
LIVE_STATES = [s.value for s in JobState if s not in TERMINAL_STATES]
COUNT_CAP = 100_000  # each state's count stops here (shown as "at least"), as in /stats


class QueueAccessDenied(JobrunnerError):
    """A user may not submit there (the queue is closed to them or reserved), or not with
    that priority."""

    def __init__(self, queue: str, reason: str) -> None:
        super().__init__(reason)
        self.queue = queue


class GrantNotFound(JobrunnerError):
    def __init__(self, queue: str, username: str) -> None:
        super().__init__(f"queue {queue!r} was not opened to {username!r}")


@dataclass(frozen=True, slots=True)
class QueueView:
    controls: QueueControls
    counts: QueueCounts


def refusal(queue: str, priority: int | None, access: UserAccess) -> str | None:
    """Why a submission to `queue` with `priority` (None: the task's own) is refused, or
    None. The task's own priority is the deployer's choice, so only one asked for counts."""
    if access.admin:
        return None
    if queue == RESERVED_QUEUE:
        return f"queue {queue!r} is reserved for jobrunner's webhook deliveries"
    if not access.open:
        return f"queue {queue!r} is not open to you: an admin can open it"
    if priority is not None and priority > access.max_priority:
        return (
            f"priority {priority} for queue {queue!r} is above the highest you may give, "
            f"{access.max_priority}"
        )
    return None


def check_name(name: str) -> str:
    if not QUEUE_NAME.fullmatch(name):
        raise InvalidQueueControls("a queue name is 1 to 128 of A-Z a-z 0-9 _ . : -")
    return name


# ----- reading --------------------------------------------------------------------------


def _counts(rows: Sequence[tuple[str, str, int]], cap: int) -> dict[str, QueueCounts]:
    return QueueCounts.of_rows(rows, cap, LIVE_STATES)


def no_counts(queue: str, cap: int) -> QueueCounts:
    return QueueCounts(queue, dict.fromkeys(LIVE_STATES, 0), cap)


async def live_counts(conn: Conn, *, cap: int = COUNT_CAP) -> dict[str, QueueCounts]:
    """Every queue's unfinished jobs per state, each state counted up to `cap`."""
    return _counts(await queries.job_count_live_by_queue(conn, cap=cap), cap)


async def list_all(
    conn: Conn, counts: dict[str, QueueCounts], *, cap: int = COUNT_CAP
) -> list[QueueView]:
    """Every queue with a row or with unfinished jobs (an admin's view), by name, with the
    counts `live_counts` read (up to `cap`; the caller may have kept them a moment)."""
    rows = {c.name: c for c in await queries.queue_list(conn)}
    return [
        QueueView(
            rows.get(name) or QueueControls.unset(name), counts.get(name) or no_counts(name, cap)
        )
        for name in sorted(rows.keys() | counts.keys())
    ]


async def list_open(conn: Conn, username: str, *, max_jobs: int) -> list[QueueView]:
    """The queues a user may submit to, each with that user's own unfinished jobs (read
    along their own index, over at most `max_jobs`: the unfinished-jobs cap)."""
    mine = _counts(
        await queries.job_count_owned_live_by_queue(conn, owner=username, limit=max_jobs),
        max_jobs,
    )
    return [
        QueueView(q, mine.get(q.name) or no_counts(q.name, max_jobs))
        for q in await queries.queue_list_open(conn, username=username)
        if q.name != RESERVED_QUEUE
    ]


async def get(conn: Conn, name: str) -> QueueControls:
    return await queries.queue_get(conn, name) or QueueControls.unset(name)


# ----- changing -------------------------------------------------------------------------


async def change(conn: Conn, name: str, changes: QueueChanges, *, by: str) -> QueueControls:
    """Create the queue's row or change its controls; `by` is recorded as updated_by."""
    return await queries.queue_set(conn, check_name(name), changes, by=by)


async def pause(conn: Conn, name: str, *, by: str) -> QueueControls:
    """No worker starts the queue's jobs until it is resumed (running ones run on)."""
    return await change(conn, name, QueueChanges(paused=True), by=by)


async def resume(conn: Conn, name: str, *, by: str) -> QueueControls:
    return await change(conn, name, QueueChanges(paused=False), by=by)


async def grant(conn: Conn, name: str, username: str, *, by: str) -> QueueControls:
    """Open the queue to one user (giving it a row without limits if it has none)."""
    if not await queries.queue_grant(conn, queue=check_name(name), username=username, by=by):
        raise UnknownUser(username)
    return await get(conn, name)


async def revoke(conn: Conn, name: str, username: str) -> None:
    if not await queries.queue_revoke(conn, queue=name, username=username):
        raise GrantNotFound(name, username)
