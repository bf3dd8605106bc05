"""The worker's side of the claim (the `job_claim` statement does the choosing):

- whose turn is next: for each queue, the fairness key this worker's last claim stopped
  at, so its next claim starts with the key after it and every owner gets a turn;
- which of its queues have limits (jobrunner.queues), read about once a second: those are
  claimed in a transaction that first locks their control rows, so workers take turns at
  counting what runs and spending the start-rate bucket. Queues without limits take no
  lock: the claim statement skips a queue that gained a limit since, until the next read;
- where its claims have reached in each lane, while a long transaction holds back cleanup
  (lanes.py): the claim starts those lanes there, not at their oldest dead index entry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.models import ClaimedJob
from jobrunner.worker.lanes import LanePositions

LIMITS_READ_EVERY = 1.0  # seconds: a new limit holds in every worker within this


class Claimer:
    def __init__(self, queues: Sequence[str], *, worker_id: str, lease_seconds: float) -> None:
        self.queues = tuple(queues)
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self._after: dict[str, str] = dict.fromkeys(self.queues, "")
        self._limited: frozenset[str] = frozenset()
        self._limits_read_at = float("-inf")
        self._limited_first = False
        self.lanes = LanePositions()  # its check runs beside the worker (lanes.run)

    @property
    def has_limits(self) -> bool:
        """Whether a freed slot may let this worker start more (a concurrency limit)."""
        return bool(self._limited)

    async def claim(self, conn: Conn, limit: int) -> list[ClaimedJob]:
        if time.monotonic() - self._limits_read_at >= LIMITS_READ_EVERY:
            self._limited = await queries.queue_limited_names(conn, self.queues)
            self._limits_read_at = time.monotonic()
        free = [q for q in self.queues if q not in self._limited]
        limited = [q for q in self.queues if q in self._limited]
        # The two kinds take turns at going first: a busy queue without limits would
        # otherwise fill every batch and the limited queues beside it would never start.
        self._limited_first = not self._limited_first
        claimed: list[ClaimedJob] = []
        for kind in (True, False) if self._limited_first else (False, True):
            room = limit - len(claimed)
            if room <= 0:
                break
            if kind and limited:
                claimed += await self._claim_limited(conn, limited, room)
            elif not kind and free:
                claimed += await self._claim(conn, free, room, limited=False)
        self._advance(claimed)
        self.lanes.advance(claimed)
        return claimed

    async def _claim_limited(self, conn: Conn, queues: list[str], limit: int) -> list[ClaimedJob]:
        async with conn.transaction():
            locked = await queries.queue_lock_limited(conn, queues)
            claimed = await self._claim(conn, locked, limit, limited=True) if locked else []
        if len(locked) != len(queues):
            self._limits_read_at = float("-inf")  # a limit was lifted: read them again
        return claimed

    async def _claim(
        self, conn: Conn, queues: list[str], limit: int, *, limited: bool
    ) -> list[ClaimedJob]:
        return await queries.job_claim(
            conn,
            queues=queues,
            worker_id=self.worker_id,
            limit=limit,
            lease_seconds=self.lease_seconds,
            after_keys=[self._after[q] for q in queues],
            limited=limited,
            positions=self.lanes.for_claim(queues),
        )

    def _advance(self, claimed: Sequence[ClaimedJob]) -> None:
        """Move each queue's cursor to the key of the last job it gave at its top priority,
        in claim order (round by round, lane by lane): the next claim starts with the lane
        after it, so the lanes that lost the last, partial round of a batch go first next."""
        last: dict[str, ClaimedJob] = {}
        for job in claimed:  # in claim order: by priority, then round, then lane
            top = last.get(job.queue)
            if top is None or job.priority == top.priority:
                last[job.queue] = job
        for queue, job in last.items():
            self._after[queue] = job.fairness_key
