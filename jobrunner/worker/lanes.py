"""Lane positions: where this worker's claims have reached in each lane (queue, priority,
fairness key), used while a long transaction holds back cleanup (README "Long
transactions").

Behind such a transaction every job claimed since it began leaves a dead entry at the front
of its lane in the claim index, which no vacuum may remove yet; a claim probing the lane
from its oldest entry steps over all of them (35-90 ms a claim three minutes in, at 2,000
jobs/s, and the queue fell behind). So while the oldest snapshot on the server is older
than HELD_AFTER, each claim starts the lanes this worker took from lately at the place its
claims reached, less SLACK (jobs whose transaction began a little before others that
committed first: enqueues in concurrent transactions).

A job can still appear further behind a position: enqueued in a transaction that began
long before it committed, promoted or put back with an older run_at, or locked when the
claims passed it. `check` looks for such jobs, one probe per lane on its own connection
(stepping over the dead entries the claims skip), every CHECK_EVERY seconds and spending
at most CHECK_SHARE of the time; a position with a job behind it moves back to that job
before the next claim, which takes it. Such a job waits up to about one check period more,
and only while positions are on. They stay on after the snapshot ends while the dead
entries it left are still there (the check, which steps over them, takes over CLEAN_CHECK:
they are no longer heap visits, but every claim would still read their index pages until
a vacuum removes them); then they are dropped and claims walk every lane from its start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import Conn, Pool
from jobrunner.db.queries import LanePosition
from jobrunner.models import ClaimedJob

log = structlog.get_logger("jobrunner.lanes")

HELD_AFTER = 10.0  # seconds a snapshot is held before claims use positions
SLACK = timedelta(milliseconds=200)
MAX_LANES = 64  # lanes remembered, the most recently claimed from (each probe reads them)
CHECK_EVERY = 1.0  # seconds between checks, at least
CHECK_SHARE = 0.1  # of the time spent checking, at most: the probes grow with the snapshot
CLEAN_CHECK = 0.005  # seconds: a check this quick found no dead entries to speak of

Lane = tuple[str, int, str]  # queue, priority, fairness_key
_FIRST_ID = UUID(int=0)


class LanePositions:
    def __init__(self, *, held_after: float = HELD_AFTER) -> None:
        self.held_after = held_after
        self.clean_check = CLEAN_CHECK
        self.active = False
        self._at: dict[Lane, tuple[datetime, UUID]] = {}  # oldest claimed from first
        self._behind: list[LanePosition] = []  # found by check, applied at the next claim

    def for_claim(self, queues: Iterable[str]) -> list[LanePosition] | None:
        """Where the next claim of `queues` starts its lanes; None unless active (then the
        claim is job_claim, not job_claim_from_positions)."""
        if not self.active:
            return None
        for found in self._behind:  # in the claim loop: no claim is in flight
            lane = (found.queue, found.priority, found.fairness_key)
            if lane in self._at:
                self._at[lane] = min(self._at[lane], (found.run_at, found.id))
        self._behind.clear()
        return self._starts(set(queues))

    def advance(self, claimed: Sequence[ClaimedJob]) -> None:
        """Move each lane's position to the last job claimed from it."""
        if not self.active:
            return
        for job in claimed:
            if job.run_at is None:
                continue
            lane, at = (job.queue, job.priority, job.fairness_key), (job.run_at, job.id)
            was = self._at.pop(lane, None)
            self._at[lane] = at if was is None else max(was, at)
        while len(self._at) > MAX_LANES:
            del self._at[next(iter(self._at))]

    async def check(self, conn: Conn) -> None:
        """Turn positions on or off by the oldest snapshot's age (and the dead entries it
        left); find jobs behind them."""
        # Only a snapshot in this database holds back the cleanup of its jobs' entries.
        holder = await queries.server_oldest_snapshot(conn, this_database=True)
        held = holder is not None and holder.held_for.total_seconds() >= self.held_after
        if held and not self.active:
            self._turn(on=True)
        if not self.active:
            return
        began = time.monotonic()
        if self._at:
            self._behind += await queries.job_lanes_behind(conn, self._starts(None))
        if not held and time.monotonic() - began < self.clean_check:
            self._turn(on=False)

    def _turn(self, *, on: bool) -> None:
        log.info("lane positions", active=on)
        self.active = on
        self._at.clear()
        self._behind.clear()

    async def run(self, pool: Pool) -> None:
        wait = CHECK_EVERY
        while True:
            await asyncio.sleep(wait)
            began = time.monotonic()
            try:
                async with pool.acquire() as conn:
                    await self.check(conn)
            except DB_ERRORS as exc:
                log.warning("lane check failed", error=str(exc))
            wait = max(CHECK_EVERY, (time.monotonic() - began) / CHECK_SHARE)

    def _starts(self, queues: set[str] | None) -> list[LanePosition]:
        return [
            LanePosition(queue, priority, key, run_at - SLACK, _FIRST_ID)
            for (queue, priority, key), (run_at, _) in self._at.items()
            if queues is None or queue in queues
        ]
