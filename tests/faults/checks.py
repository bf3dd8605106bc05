"""What every fault test checks, and a test connection that survives a PostgreSQL restart."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg

from jobrunner import client
from jobrunner.db.errors import TRANSIENT_ERRORS
from jobrunner.db.pool import connect
from jobrunner.models import JobState

TERMINAL = ("succeeded", "failed", "cancelled")
BATCH = 20


class Db:
    """One connection for the test's own reads and writes, made again after it breaks."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: asyncpg.Connection[asyncpg.Record] | None = None

    async def conn(self) -> asyncpg.Connection[asyncpg.Record]:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect(self.dsn, role="faults")
        return self._conn

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        conn = await self.conn()
        try:
            return await getattr(conn, method)(sql, *args)
        except BaseException as exc:
            if conn.is_closed() or isinstance(exc, TRANSIENT_ERRORS):
                conn.terminate()
                self._conn = None
            raise

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run("fetch", sql, *args)
        return rows

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, *args)

    async def execute(self, sql: str, *args: Any) -> None:
        await self._run("execute", sql, *args)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    # ----- reads the tests share ----------------------------------------------------

    async def enqueue_many(
        self, task: str, args: Sequence[dict[str, Any]], **options: Any
    ) -> list[UUID]:
        return await client.enqueue_many(task, args, conn=await self.conn(), **options)

    async def serves(self, queue: str = "default") -> bool:
        """A worker registered for `queue`: the API refuses a user's submission to a queue
        no worker serves, so a test submitting as a user waits for this first."""
        return bool(
            await self.fetchval(
                "SELECT EXISTS (SELECT 1 FROM jobrunner.workers WHERE queues @> ARRAY[$1])",
                queue,
            )
        )

    async def count(self, ids: Sequence[UUID], *states: str) -> int:
        value: int = await self.fetchval(
            "SELECT count(*) FROM jobrunner.all_jobs WHERE id = any($1::uuid[])"
            " AND state::text = any($2::text[])",
            list(ids), list(states),
        )  # fmt: skip
        return value

    async def running_on(self, worker_pattern: str) -> int:
        value: int = await self.fetchval(
            "SELECT count(*) FROM jobrunner.jobs WHERE state = 'running' AND worker_id LIKE $1",
            worker_pattern,
        )
        return value

    async def unfinished(self) -> int:
        """Jobs anywhere in the table not yet in a terminal state."""
        value: int = await self.fetchval(
            "SELECT count(*) FROM jobrunner.jobs"
            " WHERE state NOT IN ('succeeded', 'failed', 'cancelled')"
        )
        return value

    async def all_done(self, ids: Sequence[UUID]) -> bool:
        return await self.count(ids, *TERMINAL) == len(ids)

    async def runs(self) -> int:
        """Handler runs logged in fault_runs (by the tasks that log them)."""
        value: int = await self.fetchval("SELECT count(*) FROM fault_runs")
        return value

    async def backends(self, application_name: str) -> list[int]:
        rows = await self.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = $1 ORDER BY pid",
            application_name,
        )
        return [r["pid"] for r in rows]

    async def jobs(self, ids: Sequence[UUID]) -> dict[UUID, asyncpg.Record]:
        rows = await self.fetch(
            "SELECT * FROM jobrunner.all_jobs WHERE id = any($1::uuid[])", list(ids)
        )
        return {r["id"]: r for r in rows}


async def assert_repeats_explained(db: Db) -> int:
    """A second write of a `fault.record` row is allowed only for a job with an earlier attempt
    that failed or was lost (an error recorded): its write committed but its worker died or
    never heard the answer, so the job ran again, as promised. Returns how many there were."""
    repeats = await db.fetch(
        "SELECT v.n, j.attempt, jsonb_array_length(j.errors) AS failures"
        " FROM fault_violations v JOIN jobrunner.jobs j ON (j.args->>'n')::int = v.n"
    )
    unexplained = [dict(r) for r in repeats if r["attempt"] < 2 or r["failures"] < 1]
    assert unexplained == [], "a job ran twice though no attempt of it failed"
    return len(repeats)


async def assert_nothing_lost(
    db: Db, ids: Sequence[UUID], state: JobState = JobState.SUCCEEDED, *, others_busy: bool = False
) -> dict[UUID, asyncpg.Record]:
    """Every job is still there, in `state`, finished once; no job anywhere is `running`
    (unless `others_busy`: jobs outside `ids` still at work, checked later)."""
    jobs = await db.jobs(ids)
    assert len(jobs) == len(ids), f"{len(ids) - len(jobs)} jobs lost"
    wrong = {str(i): r["state"] for i, r in jobs.items() if r["state"] != state.value}
    assert not wrong, f"jobs not {state.value}: {dict(list(wrong.items())[:10])}"
    stuck = await db.fetchval(
        "SELECT count(*) FROM jobrunner.jobs WHERE state = 'running' AND (NOT $1 OR id = ANY($2))",
        others_busy,
        list(ids),
    )
    assert stuck == 0, f"{stuck} jobs stuck in running"
    for job_id, row in jobs.items():
        assert row["finished_at"] is not None
        # A terminal outcome, if recorded in the errors, can only be the last entry: a job
        # that was finalised and then ran on would show one earlier.
        outcomes = [e.get("outcome") for e in row["errors"]]
        assert not any(o in TERMINAL for o in outcomes[:-1]), f"{job_id} finalised twice"
    return jobs


@dataclass
class Producer:
    """Submits `fault.record` jobs in small batches until stopped, through any outage."""

    db: Db
    accepted: dict[UUID, int] = field(default_factory=dict)  # id -> n
    refused_batches: int = 0
    next_n: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            numbers = list(range(self.next_n, self.next_n + BATCH))
            self.next_n += BATCH  # never reused: a batch whose commit we never heard of may exist
            try:
                ids = await self.db.enqueue_many(
                    "fault.record", [{"n": n} for n in numbers], max_attempts=50
                )
            except Exception:  # any failure means "not accepted": go on
                self.refused_batches += 1
                await asyncio.sleep(0.05)  # pacing retries while the database is away
                continue
            self.accepted.update(zip(ids, numbers, strict=True))
            await asyncio.sleep(0.01)
