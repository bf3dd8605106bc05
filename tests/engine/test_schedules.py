"""Schedules, the worker's side: code schedules synced, due schedules fired once per tick,
time zones across daylight saving, and the upgrade from periodic_ticks (migration 0015)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from jobrunner import schedules
from jobrunner.cron import InvalidCron, next_tick
from jobrunner.db import migrate, queries
from jobrunner.db.pool import Conn, Pool, init_connection
from jobrunner.models import JobState, Schedule
from jobrunner.registry import _registry
from jobrunner.tasks import task
from jobrunner.worker.periodic import fire_due_schedules, sync_code_schedules
from tests.support.database import Server, create_database, drop_database
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker

CODE_TASK = "test.every_minute"


@pytest.fixture
def code_task() -> Iterator[str]:
    @task(name=CODE_TASK, cron="* * * * *")
    async def every_minute(label: str = "tick") -> str:
        return label

    yield CODE_TASK
    del _registry[CODE_TASK]


async def _jobs_of(conn: Conn, task_name: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM jobrunner.jobs WHERE task = $1", task_name
    )
    return count


async def _make_due(conn: Conn, name: str) -> None:
    await conn.execute(
        "UPDATE jobrunner.schedules SET next_run_at = now() - interval '1 second' WHERE name = $1",
        name,
    )


def _runtime(name: str, task_name: str, **fields: object) -> queries.NewSchedule:
    values: dict[str, object] = {
        "name": name, "task": task_name, "args": {}, "cron": "0 3 * * *",
        "timezone": "UTC", "queue": None, "priority": None,
    }  # fmt: skip
    values.update(fields)
    return queries.NewSchedule(**values)  # type: ignore[arg-type]


# ----- time zones (pure) ------------------------------------------------------------------


def test_a_wall_clock_time_that_does_not_exist_fires_once_at_the_shifted_instant() -> None:
    # Europe/Berlin springs forward on 2026-03-29 at 02:00 CET to 03:00 CEST: 02:30 never
    # happens that night; the tick fires at 03:30 CEST (01:30 UTC), and the next one at
    # 02:30 CEST the night after.
    before = datetime(2026, 3, 28, 1, 30, 1, tzinfo=UTC)  # 02:30:01 CET, the night before
    shifted = next_tick("30 2 * * *", "Europe/Berlin", before)
    assert shifted == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert next_tick("30 2 * * *", "Europe/Berlin", shifted) == datetime(
        2026, 3, 30, 0, 30, tzinfo=UTC
    )


def test_a_wall_clock_time_that_repeats_fires_once() -> None:
    # Europe/Berlin falls back on 2026-10-25 at 03:00 CEST to 02:00 CET: 02:30 happens at
    # 00:30 UTC and again at 01:30 UTC. It fires at the first; from there (and from within
    # the repeated hour) the next tick is the next day's.
    first = next_tick("30 2 * * *", "Europe/Berlin", datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    tomorrow = datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert next_tick("30 2 * * *", "Europe/Berlin", first) == tomorrow
    in_the_repeat = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)  # 02:10 CET, the second pass
    assert next_tick("30 2 * * *", "Europe/Berlin", in_the_repeat) == tomorrow
    # Every quarter of the repeated hour fires once: after 02:45 CEST comes 03:00 CET.
    assert next_tick("*/15 * * * *", "Europe/Berlin", in_the_repeat) == datetime(
        2026, 10, 25, 2, 0, tzinfo=UTC
    )


def test_ticks_are_read_in_the_schedules_time_zone() -> None:
    noon = datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert next_tick("0 9 * * *", "UTC", noon) == datetime(2026, 7, 2, 9, tzinfo=UTC)
    assert next_tick("0 9 * * *", "America/New_York", noon) == datetime(2026, 7, 1, 13, tzinfo=UTC)
    for bad in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(InvalidCron):
            next_tick("0 9 * * *", bad, noon)
    for expression in ("61 * * * *", "* * * * * *", "every day"):
        with pytest.raises(InvalidCron):
            next_tick(expression, "UTC", noon)


# ----- code schedules: sync ---------------------------------------------------------------


async def test_a_code_schedule_is_synced_and_its_pause_survives_a_resync(
    pool: Pool, code_task: str
) -> None:
    async with pool.acquire() as conn:
        await sync_code_schedules(conn, by="worker:a")
        [row] = [s for s in await schedules.list_all(conn) if s.name == code_task]
        assert (row.source, row.task, row.cron, row.paused) == (
            "code",
            code_task,
            "* * * * *",
            False,
        )
        now = await queries.clock_now(conn)
        assert row.next_run_at is not None and now < row.next_run_at <= now + timedelta(minutes=1)
        # The first sync enqueues nothing at once (the next tick is after now).
        assert await fire_due_schedules(conn) == 0

        await schedules.pause(conn, code_task)
        _registry[code_task].cron = "*/5 * * * *"  # a deploy changed the cron
        await sync_code_schedules(conn, by="worker:b")
        again = await schedules.get(conn, code_task)
        assert again.paused and again.cron == "*/5 * * * *"
        assert again.next_run_at is not None and again.next_run_at.minute % 5 == 0

        # Paused: due or not, it does not fire.
        await _make_due(conn, code_task)
        assert await fire_due_schedules(conn) == 0
        resumed = await schedules.resume(conn, code_task)
        assert not resumed.paused
        assert resumed.next_run_at is not None and resumed.next_run_at > now
        assert await _jobs_of(conn, code_task) == 0


async def test_a_worker_syncs_its_code_schedules_as_it_starts(
    start_worker: StartWorker, pool: Pool, code_task: str
) -> None:
    worker = await start_worker()

    async def synced() -> Schedule | None:
        async with pool.acquire() as conn:
            return await queries.schedule_get(conn, code_task)

    found = await wait_for(synced, what="the code schedule synced")
    assert found.source == "code" and found.created_by == f"worker:{worker.worker_id}"


async def test_a_code_schedule_cannot_be_removed_and_one_whose_cron_left_the_code_goes(
    pool: Pool, code_task: str
) -> None:
    async with pool.acquire() as conn:
        await sync_code_schedules(conn, by="worker:a")
        with pytest.raises(schedules.ScheduleInCode, match="remove the cron"):
            await schedules.remove(conn, code_task)
        _registry[code_task].cron = None  # the task stays, its cron was removed from code
        await sync_code_schedules(conn, by="worker:b")
        with pytest.raises(schedules.ScheduleNotFound):
            await schedules.get(conn, code_task)


# ----- firing -----------------------------------------------------------------------------


async def test_two_concurrent_firings_on_two_connections_make_one_job_per_tick(
    pool: Pool, code_task: str
) -> None:
    async with pool.acquire() as first, pool.acquire() as second:
        await sync_code_schedules(first, by="worker:a")
        await _make_due(first, code_task)
        held = first.transaction()
        await held.start()
        try:
            assert await fire_due_schedules(first) == 1
            # While the first has it locked, the second skips it...
            assert await fire_due_schedules(second) == 0
        finally:
            await held.commit()
        # ... and once the first has committed, it is no longer due.
        assert await fire_due_schedules(second) == 0
        assert await _jobs_of(second, code_task) == 1
        row = await schedules.get(second, code_task)
        now = await queries.clock_now(second)
        assert row.next_run_at is not None and row.next_run_at > now
        assert row.last_job_id is not None and row.last_run_at is not None

        # Many callers at once, on their own connections: still one job for the tick.
        await _make_due(first, code_task)

        async def one_caller() -> int:
            async with pool.acquire() as conn:
                return await fire_due_schedules(conn)

        assert sum(await asyncio.gather(*(one_caller() for _ in range(8)))) == 1
        assert await _jobs_of(second, code_task) == 2


async def test_a_runtime_schedule_enqueues_with_its_args_and_overrides_and_lists_the_outcome(
    pool: Pool,
) -> None:
    async with pool.acquire() as conn:
        new = _runtime(
            "sums", "square_sum", args={"data": [1, 2]}, queue="reports", priority=7,
            timezone="Europe/Berlin",
        )  # fmt: skip
        added = await schedules.add(conn, new, by="ada")
        assert added.source == "runtime" and added.created_by == "ada"
        assert added.next_run_at == next_tick("0 3 * * *", "Europe/Berlin", added.created_at)
        await _make_due(conn, "sums")
        assert await fire_due_schedules(conn) == 1
        listed = await schedules.get(conn, "sums")
        assert listed.last_job_id is not None and listed.last_job_state is JobState.QUEUED
        job = await conn.fetchrow(
            "SELECT task, args, queue, priority, max_attempts, tags FROM jobrunner.jobs "
            "WHERE id = $1",
            listed.last_job_id,
        )
        assert job is not None
        assert dict(job) == {
            "task": "square_sum", "args": {"data": [1, 2]}, "queue": "reports",
            "priority": 7, "max_attempts": 3, "tags": ["schedule:sums"],
        }  # fmt: skip
        await conn.execute(
            "UPDATE jobrunner.jobs SET state = 'succeeded', finished_at = now() WHERE id = $1",
            listed.last_job_id,
        )
        assert (await schedules.get(conn, "sums")).last_job_state is JobState.SUCCEEDED


async def test_a_schedule_of_a_task_no_worker_knows_still_enqueues(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await schedules.add(conn, _runtime("later", "not.deployed.yet", args={"x": 1}), by="ada")
        await _make_due(conn, "later")
        assert await fire_due_schedules(conn) == 1
        job = await conn.fetchrow(
            "SELECT state, args, queue, max_attempts FROM jobrunner.jobs WHERE task = $1",
            "not.deployed.yet",
        )
        assert job is not None
        assert dict(job) == {"state": "queued", "args": {"x": 1}, "queue": "default",
                             "max_attempts": 3}  # fmt: skip


async def test_args_the_task_no_longer_takes_skip_the_tick_and_say_why(
    pool: Pool, code_task: str
) -> None:
    async with pool.acquire() as conn:
        await schedules.add(conn, _runtime("bad", code_task, args={"label": "x"}), by="ada")
        await conn.execute(
            "UPDATE jobrunner.schedules SET args = '{\"label\": 5}' WHERE name = 'bad'"
        )
        await _make_due(conn, "bad")
        assert await fire_due_schedules(conn) == 1
        row = await schedules.get(conn, "bad")
        assert row.last_job_id is None and row.last_error is not None
        assert "label" in row.last_error
        assert row.next_run_at is not None and row.next_run_at > await queries.clock_now(conn)
        assert not row.paused
        assert await _jobs_of(conn, code_task) == 0


# ----- the upgrade from periodic_ticks ----------------------------------------------------


@pytest.fixture
def empty_dsn(pg_server: Server) -> Iterator[str]:
    name = create_database(pg_server, "template0")
    yield pg_server.dsn_for(name)
    drop_database(pg_server, name)


async def test_a_periodic_tick_is_carried_over_and_fires_once(
    empty_dsn: str, code_task: str
) -> None:
    conn = await asyncpg.connect(empty_dsn)
    await init_connection(conn)
    try:
        await conn.execute(queries.QUERIES["migration_schema_create"])
        await conn.execute(queries.QUERIES["migration_table_create"])
        # A database of main's before this migration: every other one applied (0017 and
        # 0018 came first), so 0015 applies on top of them.
        for migration in migrate.discover():
            if migration.version == 15:
                continue
            for part in migration.parts:
                await conn.execute(part)
            await conn.execute(
                queries.QUERIES["migration_record"],
                migration.version, migration.name, migration.checksum,
            )  # fmt: skip
        # Before the upgrade the tick of three minutes ago was enqueued, and the task also
        # missed ticks since: the one after its last fires once, none twice.
        await conn.execute(
            "INSERT INTO jobrunner.periodic_ticks (task, last_tick) "
            "VALUES ($1, date_trunc('minute', now()) - interval '3 minutes')",
            code_task,
        )
        assert [m.version for m in await migrate.migrate(conn)] == [15]
        assert await conn.fetchval("SELECT to_regclass('jobrunner.periodic_ticks')") is None
        carried = await schedules.get(conn, code_task)
        assert (carried.source, carried.cron, carried.next_run_at) == ("code", None, None)
        assert carried.last_run_at is not None
        assert await fire_due_schedules(conn) == 0  # its cron is in code: it waits for it

        await sync_code_schedules(conn, by="worker:a")
        synced = await schedules.get(conn, code_task)
        assert synced.next_run_at == carried.last_run_at + timedelta(minutes=1)
        assert await fire_due_schedules(conn) == 1
        assert await fire_due_schedules(conn) == 0
        assert await _jobs_of(conn, code_task) == 1
    finally:
        await conn.close()
