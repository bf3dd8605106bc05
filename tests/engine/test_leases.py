"""Lease renewal (the heartbeat query) next to the worker's own outcome flush.

The two run on different connections of one worker and touch the same rows, each locking them
in its own order. Found by the CI soak as "deadlock detected" between them.
"""

from __future__ import annotations

import asyncio

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.db.queries import OutcomePolicy
from jobrunner.models import Outcome, OutcomeKind
from jobrunner.webhooks import delivery_rows

POLICY = OutcomePolicy(
    backoff_base=0.01, backoff_cap=0.05, max_deferrals=20, delivery=delivery_rows()
)

WORKER = "w-lease"


async def test_heartbeat_skips_rows_the_flush_holds_instead_of_deadlocking(pool: Pool) -> None:
    async with pool.acquire() as flush, pool.acquire() as beat:
        for n in range(2):
            await client.enqueue("test.add", {"a": n, "b": 1}, conn=flush)
        claimed = await queries.job_claim(
            flush, queues=["default"], worker_id=WORKER, limit=2, lease_seconds=30
        )
        first, second = claimed
        held = [(job.id, job.attempt) for job in claimed]
        async with flush.transaction():
            await queries.job_record_outcomes(
                flush,
                [Outcome(second.id, second.attempt, OutcomeKind.SUCCEEDED, "1")],
                worker_id=WORKER,
                policy=POLICY,
            )
            # The flush holds `second`. The heartbeat renews `first` and must not queue behind
            # `second`: had it locked `first` and waited, the flush's next write would close a
            # cycle. A deadline well past PostgreSQL's 1 s deadlock_timeout tells the two apart.
            still_held = await asyncio.wait_for(
                queries.job_heartbeat(beat, held, worker_id=WORKER, lease_seconds=60), 10
            )
            assert still_held == {first.id: False, second.id: False}
            accepted = await asyncio.wait_for(
                queries.job_record_outcomes(
                    flush,
                    [Outcome(first.id, first.attempt, OutcomeKind.SUCCEEDED, "1")],
                    worker_id=WORKER,
                    policy=POLICY,
                ),
                10,
            )
            assert first.id in accepted
        states = await beat.fetch(
            "SELECT id, state::text FROM jobrunner.jobs WHERE id = ANY($1)", [first.id, second.id]
        )
    assert {r["id"]: r["state"] for r in states} == {
        first.id: OutcomeKind.SUCCEEDED,
        second.id: "succeeded",
    }


async def test_heartbeat_renews_what_is_held_and_reports_what_was_lost(pool: Pool) -> None:
    async with pool.acquire() as conn:
        for n in range(2):
            await client.enqueue("test.add", {"a": n, "b": 1}, conn=conn)
        kept, taken = await queries.job_claim(
            conn, queues=["default"], worker_id=WORKER, limit=2, lease_seconds=1
        )
        await conn.execute(  # rescued and claimed by another worker meanwhile
            "UPDATE jobrunner.jobs SET worker_id = 'other', attempt = attempt + 1 WHERE id = $1",
            taken.id,
        )
        await conn.execute(
            "UPDATE jobrunner.jobs SET cancel_requested_at = now() WHERE id = $1", kept.id
        )
        still_held = await queries.job_heartbeat(
            conn, [(kept.id, kept.attempt), (taken.id, taken.attempt)],
            worker_id=WORKER, lease_seconds=3600,
        )  # fmt: skip
        renewed = await conn.fetchval(
            "SELECT lease_expires_at > now() + interval '3000 seconds'"
            " FROM jobrunner.jobs WHERE id = $1",
            kept.id,
        )
    assert still_held == {kept.id: True}
    assert renewed
