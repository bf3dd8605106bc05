"""The hand-written LISTEN/NOTIFY queue the `e2e` figures compare jobrunner with: what a
bare PostgreSQL queue does between an enqueue and its handler, and no more.

One connection listens; on each notification another claims the oldest queued jobs with
`UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)` (bench_baseline_claim), and
each job's "handler" reads the wall clock, written back as its result. No lease renewal,
no fairness, no controls, no poll. Its enqueue is bench_baseline_enqueue: the row and its
NOTIFY in one statement.

Run by the bench as `python -m jobrunner.bench.baseline_queue DSN QUEUE`; it writes `ready`
on stdout once it listens, and runs until terminated.
"""

from __future__ import annotations

import asyncio
import sys
import time

from jobrunner.bench import queries as bench_queries
from jobrunner.bench.e2e import READY
from jobrunner.db.pool import connect


async def consume(dsn: str, queue: str) -> None:
    listener = await connect(dsn, role="bench-baseline")
    conn = await connect(dsn, role="bench-baseline")
    wake = asyncio.Event()
    await listener.add_listener(bench_queries.BASELINE_CHANNEL, lambda *_: wake.set())
    sys.stdout.buffer.write(READY)  # a line for the bench to wait on, not a log
    sys.stdout.flush()
    while True:
        await wake.wait()
        wake.clear()
        while ids := await bench_queries.bench_baseline_claim(conn, limit=250, queue=queue):
            started = [time.time() for _ in ids]  # each handler's first line
            await bench_queries.bench_baseline_finish_started(conn, ids, started)


if __name__ == "__main__":
    asyncio.run(consume(sys.argv[1], sys.argv[2]))
