"""The cleanup horizon: the oldest snapshot anywhere on the server. While a transaction holds
one, PostgreSQL removes no row version that died after it began, so the claim steps over
the index entries of every job finished since; a snapshot held for minutes slows every
claim (README "Long transactions"). doctor, the dashboard and /metrics report who holds it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.db.queries import SnapshotHolder


@dataclass(frozen=True, slots=True)
class Horizon:
    holder: SnapshotHolder | None
    warn_after: float  # seconds

    @property
    def held_seconds(self) -> float:
        return self.holder.held_for.total_seconds() if self.holder else 0.0

    @property
    def too_old(self) -> bool:
        return self.held_seconds > self.warn_after


async def read(conn: Conn, *, warn_after: float) -> Horizon:
    return Horizon(await queries.server_oldest_snapshot(conn), warn_after)


def describe(holder: SnapshotHolder) -> str:
    """Who holds it, for how long, doing what: one line for an operator."""
    if holder.holder == "prepared transaction":
        who = f"prepared transaction {holder.application_name!r} (owner {holder.user})"
    else:
        where = f", from {holder.client_addr}" if holder.client_addr else ""
        app = f", {holder.application_name}" if holder.application_name else ""
        who = f"session pid {holder.pid} ({holder.user}{app}{where}, {holder.state})"
    line = f"{who} has held its snapshot for {duration(holder.held_for.total_seconds())}"
    if holder.query:
        line += f"; its last query: {' '.join(holder.query.split())[:120]}"
    return line


def remedy(holder: SnapshotHolder) -> str:
    if holder.holder == "prepared transaction":
        return f"COMMIT PREPARED or ROLLBACK PREPARED '{holder.application_name}'"
    return (
        f"end that transaction (if abandoned: SELECT pg_terminate_backend({holder.pid})); "
        "keep reports and pg_dump off the primary or short"
    )


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
