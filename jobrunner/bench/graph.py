"""The `graph` group of `jobrunner bench` (issue 18's figures): one root job, `graph_jobs - 2`
children of it, and one job waiting for all of those, no-op jobs all, enqueued in one
transaction (jobrunner.graph) and run by `processes` worker processes:

- how long the enqueue takes (the graph checked, then written level by level);
- how fast the graph runs, from the first start to the last finish (database time);
- how long after its last parent ended the fan-in job started (database time): the release
  is written with that parent's outcome, so this is one doorbell and one claim.

A round fails unless every job succeeded at its first attempt: each ran once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from jobrunner.bench import queries as bench_queries
from jobrunner.bench.rounds import QUEUE, BenchError, Figure, Options, Workers, wait_finished
from jobrunner.graph import chain, group, insert_graph, prepare, step

if TYPE_CHECKING:  # the runner imports this module
    from jobrunner.bench.runner import Bench


def graph_figures(o: Options) -> list[Figure]:
    return [
        Figure(f"graph of {o.graph_jobs:,} (fan-out, fan-in): enqueue", "ms"),
        Figure(f"  run by {o.processes} workers x {o.concurrency}", "jobs/s"),
        Figure("  fan-in started after its last parent", "ms", 100.0),
    ]


async def graph_round(bench: Bench) -> list[float]:
    o, conn = bench.opts, bench.conn
    await bench_queries.bench_jobs_truncate(conn)
    fan_out = group(step("noop") for _ in range(o.graph_jobs - 2))
    prepared = prepare(chain(step("noop"), fan_out, step("noop")), max_jobs=o.graph_jobs)
    workers = Workers(bench.dsn, o.processes, concurrency=o.concurrency)
    try:
        await workers.ready(conn)
        started = time.perf_counter()
        jobs = await insert_graph(conn, prepared)
        enqueued = (time.perf_counter() - started) * 1000
        await wait_finished(conn, workers, QUEUE, timeout=60 + o.graph_jobs / 200)
    finally:
        await workers.stop()
    once = await bench_queries.bench_jobs_run_once(conn, queue=QUEUE)
    _, finished, seconds = await bench_queries.bench_jobs_span(conn, queue=QUEUE)
    if once != o.graph_jobs or finished != o.graph_jobs:
        raise BenchError(f"{o.graph_jobs} jobs in the graph, {once} ran once and succeeded")
    fan_in = await bench_queries.bench_fan_in_wait(conn, job_id=jobs[-1].id)
    return [enqueued, o.graph_jobs / seconds, fan_in * 1000]
