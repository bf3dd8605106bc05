"""Typed wrappers around the statements in jobrunner/bench/queries.sql."""

from __future__ import annotations

from importlib import resources
from typing import Any, LiteralString
from uuid import UUID

from jobrunner.db.pool import Conn
from jobrunner.db.queries import load_queries

QUERIES: dict[str, LiteralString] = load_queries(
    resources.files("jobrunner.bench").joinpath("queries.sql").read_text()
)


async def bench_server_lock(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_server_lock"])


async def bench_database_drop(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_database_drop"])


async def bench_database_create(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_database_create"])


async def bench_jobs_truncate(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_jobs_truncate"])


async def bench_jobs_vacuum(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_jobs_vacuum"])


async def bench_jobs_unfinished(conn: Conn, *, queue: str) -> bool:
    return bool(await conn.fetchval(QUERIES["bench_jobs_unfinished"], queue))


async def bench_jobs_span(conn: Conn, *, queue: str) -> tuple[int, int, float]:
    """(succeeded, finished, seconds from the first start to the last finish) of a queue."""
    row = await conn.fetchrow(QUERIES["bench_jobs_span"], queue)
    assert row is not None
    return int(row["succeeded"]), int(row["finished"]), float(row["seconds"] or 0.0)


async def bench_jobs_run_once(conn: Conn, *, queue: str) -> int:
    return int(await conn.fetchval(QUERIES["bench_jobs_run_once"], queue))


async def bench_fan_in_wait(conn: Conn, *, job_id: UUID) -> float:
    return float(await conn.fetchval(QUERIES["bench_fan_in_wait"], job_id))


async def bench_jobs_results(conn: Conn, *, task: str) -> dict[UUID, Any]:
    rows = await conn.fetch(QUERIES["bench_jobs_results"], task)
    return {r["id"]: r["result"] for r in rows}


async def bench_connections_count(conn: Conn, *, application_name: str) -> int:
    return int(await conn.fetchval(QUERIES["bench_connections_count"], application_name))


async def bench_server_version(conn: Conn) -> str:
    return str(await conn.fetchval(QUERIES["bench_server_version"]))


async def bench_jobs_run_spans(conn: Conn, *, queue: str) -> list[tuple[float, float]]:
    rows = await conn.fetch(QUERIES["bench_jobs_run_spans"], queue)
    return [(r["started"], r["finished"]) for r in rows]


async def bench_clock(conn: Conn) -> float:
    return float(await conn.fetchval(QUERIES["bench_clock"]))


async def bench_baseline_claim(conn: Conn, *, limit: int, queue: str) -> list[UUID]:
    return [r["id"] for r in await conn.fetch(QUERIES["bench_baseline_claim"], limit, queue)]


async def bench_baseline_finish(conn: Conn, ids: list[UUID]) -> None:
    await conn.execute(QUERIES["bench_baseline_finish"], ids)


BASELINE_CHANNEL = "jobrunner_bench_baseline"  # bench_baseline_enqueue's pg_notify channel


async def bench_baseline_insert(conn: Conn, *, queue: str, task: str, args_json: str) -> UUID:
    job_id: UUID = await conn.fetchval(QUERIES["bench_baseline_insert"], queue, task, args_json)
    return job_id


async def bench_baseline_insert_many(
    conn: Conn, *, queue: str, task: str, args_json: list[str]
) -> list[UUID]:
    rows = await conn.fetch(QUERIES["bench_baseline_insert_many"], queue, task, args_json)
    return [r["id"] for r in rows]


async def bench_baseline_enqueue(conn: Conn, *, queue: str, task: str) -> UUID:
    job_id: UUID = await conn.fetchval(QUERIES["bench_baseline_enqueue"], queue, task)
    return job_id


async def bench_baseline_finish_started(conn: Conn, ids: list[UUID], started: list[float]) -> None:
    await conn.execute(QUERIES["bench_baseline_finish_started"], ids, started)


# ----- the horizon group ----------------------------------------------------------------------


async def bench_horizon_enqueue_baseline(
    conn: Conn, *, queue: str, task: str, count: int, batch: int
) -> None:
    await conn.fetchval(QUERIES["bench_horizon_enqueue_baseline"], queue, task, count, batch)


async def bench_horizon_hold(conn: Conn) -> None:
    await conn.fetchval(QUERIES["bench_horizon_hold"])


async def bench_horizon_probe(conn: Conn, *, queue: str) -> None:
    await conn.fetchval(QUERIES["bench_horizon_probe"], queue)


async def bench_horizon_stat_statements(conn: Conn) -> bool:
    if not await conn.fetchval(QUERIES["bench_horizon_stat_statements"]):
        return False
    await conn.execute(QUERIES["bench_horizon_stat_statements_create"])
    return True


async def bench_horizon_claim_totals(conn: Conn) -> tuple[int, float]:
    row = await conn.fetchrow(QUERIES["bench_horizon_claim_totals"])
    assert row is not None
    return int(row["calls"]), float(row["ms"])


async def bench_horizon_started(
    conn: Conn, *, committed: list[float], start: float, window: float, task: str
) -> dict[int, tuple[int, float, float]]:
    """Per window index: (jobs started, pickup p50 ms, pickup p99 ms)."""
    rows = await conn.fetch(QUERIES["bench_horizon_started"], committed, start, window, task)
    return {r["window"]: (r["jobs"], r["p50"], r["p99"]) for r in rows}


async def bench_horizon_finished(
    conn: Conn, *, start: float, window: float, task: str
) -> dict[int, int]:
    rows = await conn.fetch(QUERIES["bench_horizon_finished"], start, window, task)
    return {r["window"]: r["jobs"] for r in rows}


async def bench_history_vacuum(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_history_vacuum"])


async def bench_history_size(conn: Conn) -> tuple[int, int, int]:
    row = await conn.fetchrow(QUERIES["bench_history_size"])
    assert row is not None
    return int(row["jobs"]), int(row["jobs_bytes"]), int(row["history_bytes"] or 0)


async def bench_checkpoint(conn: Conn) -> None:
    await conn.execute(QUERIES["bench_checkpoint"])


async def bench_history_autovacuum_busy(conn: Conn) -> bool:
    return bool(await conn.fetchval(QUERIES["bench_history_autovacuum_busy"]))
