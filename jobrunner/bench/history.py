"""`--history-rows N`: the horizon run works beside N finished jobs in jobrunner.job_history
(issue 17, item 5: the claim's cost and pickup must not depend on how many are kept).

The rows are written with COPY, as the archiver would have left them: one a job, finished
uniformly over the last 6.5 days, oldest first, each in its day's partition; then VACUUM
ANALYZE, the state autovacuum brings a partition to once its day is over, and a
checkpoint once autovacuum is done with them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import BenchError
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.db.queries import CopyTarget

_COPY = CopyTarget.parse(bench_queries.QUERIES["bench_history_copy"])
CHUNK = 250_000  # rows per COPY (each its own transaction)
SPAN = timedelta(days=6.5)
DAY = 86400.0
SETTLE_TIMEOUT = 1800.0  # seconds autovacuum may go on with the filled archive


def _uuid7(ms: int) -> UUID:
    rand = random.getrandbits(74)
    return UUID(int=(ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62)
                | (rand & ((1 << 62) - 1)))  # fmt: skip


def _rows(start: datetime, first: int, count: int, total: int) -> Iterator[tuple[object, ...]]:
    step = SPAN / total
    for n in range(first, first + count):
        finished = start + step * n
        began = finished - timedelta(milliseconds=2)
        ms = int(began.timestamp() * 1000)
        yield (_uuid7(ms), "history", "bench.history", "succeeded", 1, began, began, began,
               finished)  # fmt: skip


async def fill_history(conn: Conn, rows: int) -> tuple[int, int, int]:
    """Write `rows` archived jobs and vacuum them; (jobs, jobs' bytes, history's bytes)."""
    await queries.job_history_partitions_make(
        conn, behind=7 * DAY, ahead=3 * DAY, width=DAY, wait=5.0
    )
    now = datetime.fromtimestamp(await bench_queries.bench_clock(conn), UTC)
    start = now - SPAN - timedelta(minutes=5)
    for first in range(0, rows, CHUNK):
        await conn.copy_records_to_table(
            _COPY.table,
            schema_name=_COPY.schema,
            columns=_COPY.columns,
            records=_rows(start, first, min(CHUNK, rows - first), rows),
        )
    await bench_queries.bench_history_vacuum(conn)
    await _settled(conn)
    return await bench_queries.bench_history_size(conn)


async def _settled(conn: Conn, timeout: float = SETTLE_TIMEOUT) -> None:
    """Wait for autovacuum to leave the archive alone, then checkpoint: the fill's own
    aftermath (gigabytes of dirty pages, vacuums of whole partitions) is not the steady state
    the run measures."""
    deadline = time.monotonic() + timeout
    while await bench_queries.bench_history_autovacuum_busy(conn):
        if time.monotonic() > deadline:
            raise BenchError(f"autovacuum still on job_history after {timeout:.0f} s")
        await asyncio.sleep(5)
    await bench_queries.bench_checkpoint(conn)
