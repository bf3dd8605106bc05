from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from jobrunner.bench.queries import QUERIES as BENCH_QUERIES
from jobrunner.db import migrate
from jobrunner.db.pool import init_connection
from jobrunner.db.queries import QUERIES
from tests.support.database import Server, create_database, drop_database


@pytest.fixture
def empty_dsn(pg_server: Server) -> object:
    name = create_database(pg_server, "template0")
    yield pg_server.dsn_for(name)
    drop_database(pg_server, name)


async def test_migrates_an_empty_database_then_is_a_no_op(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert (await migrate.status(conn)).applied == []
        applied = await migrate.migrate(conn)
        assert [m.version for m in applied] == [m.version for m in migrate.discover()]
        assert await migrate.migrate(conn) == []
        state = await migrate.status(conn)
        assert state.pending == [] and len(state.applied) == len(applied)
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'jobrunner'")
        assert {"jobs", "schema_migrations", "users"} <= {r["tablename"] for r in tables}
    finally:
        await conn.close()


async def test_ten_processes_migrating_at_once_apply_each_migration_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(10)]
    try:
        results = await asyncio.gather(*(migrate.migrate(c) for c in conns))
        applied = [m.version for result in results for m in result]
        assert sorted(applied) == [m.version for m in migrate.discover()]
    finally:
        for c in conns:
            await c.close()


async def test_every_named_query_prepares_against_the_schema(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    await init_connection(conn)
    try:
        # The bench's horizon group reads pg_stat_statements, created where the server has it
        # (reading it also needs the library preloaded; preparing does not).
        stats = await conn.fetchval(
            "SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
        )
        if stats:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for name, sql in (QUERIES | BENCH_QUERIES).items():
            if name == "bench_horizon_claim_totals" and not stats:
                continue
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                pytest.fail(f"query {name} does not prepare: {exc}")
    finally:
        await conn.close()


async def test_claim_stays_an_index_scan_with_millions_of_rows(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs (queue, task, state, run_at)
            SELECT 'default', 'noop', 'queued', now() FROM generate_series(1, 1000000);
            INSERT INTO jobrunner.jobs (queue, task, state, run_at)
            SELECT 'default', 'noop', 'scheduled', now() + interval '1 day'
            FROM generate_series(1, 1000000);
            ANALYZE jobrunner.jobs;
            """
        )
        probe = conn.transaction()
        await probe.start()
        try:
            plan = await conn.fetchval(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + QUERIES["job_claim"],
                ["default"], "w", 100, 30.0, [""], False,
            )  # fmt: skip
            rows = await conn.fetch(
                "EXPLAIN " + QUERIES["job_claim"], ["default"], "w", 100, 30.0, [""], False
            )
        finally:
            await probe.rollback()
        text = "\n".join(r[0] for r in rows)
        assert "jobs_claim_idx" in text, text
        assert "Seq Scan on jobs" not in text, text
        # A claim of 100 reads about what 100 rows and their index entries take, not the
        # million queued beside them.
        root = json.loads(plan)[0]["Plan"]
        assert root["Actual Rows"] == 100
        assert root["Shared Hit Blocks"] + root["Shared Read Blocks"] < 2_000, root
    finally:
        await conn.close()


async def test_unknown_tasks_read_a_bounded_stretch_of_the_due_index(db_dsn: str) -> None:
    """doctor and every dashboard refresh run it: beside 200,000 scheduled jobs it must walk
    jobs_due_idx for its LIMIT, not scan the table."""
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.execute(
            """
            INSERT INTO jobrunner.jobs (queue, task, state, run_at)
            SELECT 'default', 'noop', 'scheduled', now() + interval '1 day'
            FROM generate_series(1, 200000);
            ANALYZE jobrunner.jobs;
            """
        )
        rows = await conn.fetch("EXPLAIN " + QUERIES["job_tasks_unknown"], 5000)
        text = "\n".join(r[0] for r in rows)
        assert "Index Scan using jobs_due_idx" in text, text
        assert "Seq Scan" not in text, text
    finally:
        await conn.close()
