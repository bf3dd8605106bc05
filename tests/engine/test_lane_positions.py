"""Lane positions (jobrunner.worker.lanes): behind a held snapshot the claim starts each lane
where this worker's claims reached, not at its oldest dead index entry; a job that appears
behind a position is found by the check and claimed next; fairness and priorities hold."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.db.queries import QUERIES, LanePosition
from jobrunner.worker.claimer import Claimer
from tests.support.plans import buffers_read

PROBE = (
    "SELECT id FROM jobrunner.jobs WHERE state = 'queued' AND queue = $1"
    " ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1"
)


@asynccontextmanager
async def held_snapshot(pool: Pool) -> AsyncIterator[None]:
    """A REPEATABLE READ transaction holding its snapshot, as a long report would."""
    async with pool.acquire() as holder, holder.transaction(isolation="repeatable_read"):
        await holder.fetchval("SELECT count(*) FROM jobrunner.jobs")
        yield


async def active_claimer(conn: Conn) -> Claimer:
    """A claimer whose positions are on as soon as any snapshot is held (not after 10 s)."""
    claimer = Claimer(["default"], worker_id="w", lease_seconds=30)
    claimer.lanes.held_after = 0.0
    await claimer.lanes.check(conn)
    assert claimer.lanes.active
    return claimer


async def _finish(conn: Conn, ids: list[UUID]) -> None:
    await conn.execute(
        "UPDATE jobrunner.jobs SET state = 'succeeded', finished_at = now()"
        " WHERE id = any($1::uuid[])",
        ids,
    )


def _arrays(positions: list[LanePosition]) -> list[list[object]]:
    return [
        [p.queue for p in positions],
        [p.priority for p in positions],
        [p.fairness_key for p in positions],
        [p.run_at for p in positions],
        [p.id for p in positions],
    ]


async def test_behind_a_held_snapshot_a_claim_with_positions_skips_the_dead_entries(
    pool: Pool,
) -> None:
    """10,000 claimed jobs' entries stand dead before the first live one (their run_at spread
    over a day, in no heap order, so each costs a page), and a probe from
    the lane's start steps over them all (the old claim did, once per claim); the claim
    started at its lane's position reads what its 20 rows take."""
    async with pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO jobrunner.jobs (task, queue, state, run_at)
            SELECT 'echo', 'default', 'queued', now() - random() * interval '1 day'
            FROM generate_series(1, 20000)""")
        await conn.execute("ANALYZE jobrunner.jobs")
        async with held_snapshot(pool):
            claimer = await active_claimer(conn)
            for _ in range(40):
                await _finish(conn, [c.id for c in await claimer.claim(conn, 250)])
            positions = claimer.lanes.for_claim(["default"])
            args = (["default"], "w", 20, 30.0, [""], False)
            assert positions is not None
            claim_from = QUERIES["job_claim_from_positions"]
            with_positions = await buffers_read(conn, claim_from, *args, *_arrays(positions))
            without = await buffers_read(conn, QUERIES["job_claim"], *args)
            one_probe = await buffers_read(conn, PROBE, "default")
    assert len(positions) == 1
    assert one_probe > 1_000, "10,000 dead entries should stand before the first live one"
    assert without >= one_probe, (without, one_probe)
    # what 20 rows, their updates and index entries take (~300), not the dead entries
    assert with_positions < 500, (with_positions, one_probe)


async def test_a_job_that_appears_behind_a_position_is_claimed_after_the_check(
    pool: Pool,
) -> None:
    """A job committed late with an older run_at (a transaction that began long before it
    committed): the claims have passed its place, so the check finds it and the next claim
    takes it first, as the claim without positions would."""
    async with pool.acquire() as conn, held_snapshot(pool):
        claimer = await active_claimer(conn)
        await client.enqueue_many("test.add", [{"a": i, "b": 1} for i in range(100)], conn=conn)
        await _finish(conn, [c.id for c in await claimer.claim(conn, 50)])
        late = await conn.fetchval("""
            INSERT INTO jobrunner.jobs (task, queue, state, run_at, args)
            VALUES ('test.add', 'default', 'queued', now() - interval '1 hour',
                    '{"a": 0, "b": 1}') RETURNING id""")
        before_check = await claimer.claim(conn, 10)
        await claimer.lanes.check(conn)
        after_check = await claimer.claim(conn, 10)
    assert late not in [c.id for c in before_check], "the claims have passed its place"
    assert after_check[0].id == late


async def test_with_positions_every_key_gets_a_turn_and_higher_priorities_go_first(
    pool: Pool,
) -> None:
    keys = [f"tenant-{i:02}" for i in range(30)]
    async with pool.acquire() as conn, held_snapshot(pool):
        claimer = await active_claimer(conn)
        for key in keys:
            await client.enqueue_many(
                "test.add", [{"a": i, "b": 1} for i in range(3)], conn=conn, fairness_key=key
            )
        rounds = [await claimer.claim(conn, 10) for _ in range(3)]
        fourth = await claimer.claim(conn, 10)
        assert len(claimer.lanes.for_claim(["default"]) or []) == 30, "a position per lane"
        urgent = await client.enqueue_many(
            "test.add", [{"a": 1, "b": 1}] * 4, conn=conn, fairness_key="zz-late", priority=5
        )
        fifth = await claimer.claim(conn, 10)
        low = await client.enqueue_many(
            "test.add", [{"a": 1, "b": 1}] * 2, conn=conn, fairness_key="aa", priority=-5
        )
        rest = [c for _ in range(6) for c in await claimer.claim(conn, 10)]
    first_turns = [c.fairness_key for claim in rounds for c in claim]
    assert sorted(first_turns) == keys, "30 keys, 30 jobs: one each in the first round"
    assert [c.fairness_key for c in fourth] == keys[:10], "the second round starts over"
    assert [c.id for c in fifth[:4]] == urgent, "a new lane of a higher priority goes first"
    taken = [c.fairness_key for c in [*fifth[4:], *rest[:-2]]]
    assert Counter(taken) == Counter(keys[10:] * 2 + keys[:10]), "each job once, turn by turn"
    assert [c.id for c in rest[-2:]] == low, "the lower priority fills what is left, last"


async def test_positions_are_off_and_dropped_when_no_snapshot_is_old_enough(pool: Pool) -> None:
    async with pool.acquire() as conn, held_snapshot(pool):
        claimer = await active_claimer(conn)
        await client.enqueue_many("test.add", [{"a": 1, "b": 1}] * 5, conn=conn)
        await claimer.claim(conn, 2)
        assert claimer.lanes.for_claim(["default"])
        claimer.lanes.held_after = 1e9
        claimer.lanes.clean_check = 60.0  # whatever this machine's speed: the entries are few
        await claimer.lanes.check(conn)
        assert not claimer.lanes.active
        assert claimer.lanes.for_claim(["default"]) is None
        assert len(await claimer.claim(conn, 10)) == 3


async def test_a_snapshot_in_another_database_leaves_positions_off(pool: Pool, db_dsn: str) -> None:
    """It does not hold back the cleanup of this database's jobs: claims walk as usual."""
    elsewhere = await asyncpg.connect(urlunsplit(urlsplit(db_dsn)._replace(path="/postgres")))
    try:
        async with elsewhere.transaction(isolation="repeatable_read"):
            await elsewhere.fetchval("SELECT count(*) FROM pg_class")  # takes the snapshot
            async with pool.acquire() as conn:
                assert await queries.server_oldest_snapshot(conn) is not None
                claimer = Claimer(["default"], worker_id="w", lease_seconds=30)
                claimer.lanes.held_after = 0.0
                await claimer.lanes.check(conn)
                assert not claimer.lanes.active
                async with held_snapshot(pool):  # one here does turn them on
                    await claimer.lanes.check(conn)
                    assert claimer.lanes.active
    finally:
        await elsewhere.close()


async def test_positions_stay_on_after_the_snapshot_while_the_check_is_slow(pool: Pool) -> None:
    """The snapshot gone, its dead entries stay until a vacuum: while the check (which steps
    over them) is not quick, the claims keep their positions."""
    async with pool.acquire() as conn:
        async with held_snapshot(pool):
            claimer = await active_claimer(conn)
            await client.enqueue_many("test.add", [{"a": 1, "b": 1}] * 5, conn=conn)
            await claimer.claim(conn, 2)
        claimer.lanes.held_after = 1e9  # as if no snapshot were old enough any more
        claimer.lanes.clean_check = 0.0  # no check is quick enough
        await claimer.lanes.check(conn)
        assert claimer.lanes.active
        assert claimer.lanes.for_claim(["default"])
        claimer.lanes.clean_check = 60.0
        await claimer.lanes.check(conn)
        assert not claimer.lanes.active


async def test_both_claims_take_the_same_jobs_in_the_same_order(pool: Pool) -> None:
    """job_claim_from_positions is job_claim with positions: with none, it claims what
    job_claim claims (priorities, owners' turns, the cursor), and with positions at the
    lanes' starts too."""
    async with pool.acquire() as conn:
        for key, priority in (("a", 0), ("b", 0), ("c", 5), ("d", -5), ("e", 0)):
            await client.enqueue_many(
                "test.add", [{"a": i, "b": 1} for i in range(7)], conn=conn,
                fairness_key=key, priority=priority,
            )  # fmt: skip
        first = await conn.fetchrow(
            "SELECT run_at, id FROM jobrunner.jobs WHERE fairness_key = 'b' ORDER BY run_at, id"
        )
        assert first is not None
        at_start = [LanePosition("default", 0, "b", first["run_at"], first["id"])]
        for limit, after in ((10, ""), (4, "b"), (25, "e"), (40, "a")):
            claims = []
            for positions in (None, [], at_start):
                probe = conn.transaction()  # rolled back: each claims the same jobs
                await probe.start()
                try:
                    claimed = await queries.job_claim(
                        conn, queues=["default"], worker_id="w", limit=limit, lease_seconds=30,
                        after_keys=[after], positions=positions,
                    )  # fmt: skip
                finally:
                    await probe.rollback()
                claims.append([c.id for c in claimed])
            assert claims[0] == claims[1] == claims[2], (limit, after)
            assert len(claims[0]) == min(limit, 35)
