"""A real worker process's own metrics endpoint (JOBRUNNER_WORKER_METRICS_PORT): its counters
count what it ran, stay monotonic, and its histograms are cumulative; with
PROMETHEUS_MULTIPROC_DIR, one endpoint answers for every process writing to the directory."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobrunner import client
from jobrunner.db.pool import Pool
from tests.support import scrape
from tests.support.processes import Processes, WorkerOptions, WorkerProcess
from tests.support.waiting import wait_for

FINISHED = "jobrunner_jobs_finished_total"
STARTED = "jobrunner_jobs_started_total"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def procs(db_dsn: str, tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(db_dsn, tmp_path)
    try:
        yield processes
    finally:
        processes.close()
        print(processes.report())  # shown when the test fails


def metrics_worker(procs: Processes, name: str, **env: str) -> tuple[WorkerProcess, str]:
    port = free_port()
    options = WorkerOptions(env={"JOBRUNNER_WORKER_METRICS_PORT": str(port), **env})
    return procs.start_worker(name, options), f"http://127.0.0.1:{port}/metrics"


async def read(url: str) -> scrape.Samples | None:
    """A scrape, or None while the endpoint is not up yet."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.get(url)
    except httpx.TransportError:
        return None
    assert answer.status_code == 200
    return scrape.parse(answer.text)


async def answers(url: str) -> bool:
    return await read(url) is not None  # with nothing counted yet, an empty exposition


async def enqueue(pool: Pool, task: str, args: dict[str, Any], times: int) -> None:
    async with pool.acquire() as conn:
        for _ in range(times):
            await client.enqueue(task, args, conn=conn)


async def all_ended(pool: Pool) -> bool:
    async with pool.acquire() as conn:
        unfinished: int = await conn.fetchval(
            "SELECT count(*) FROM jobrunner.jobs WHERE state NOT IN "
            "('succeeded', 'failed', 'cancelled')"
        )
    return unfinished == 0


async def scraped_once_counted(url: str, total: int) -> scrape.Samples | None:
    """The scrape once the outcome counters add up to `total` (they are bumped just after
    the outcomes' write commits)."""
    samples = await read(url)
    if samples is None:
        return None
    counted = sum(v for (name, _), v in samples.items() if name == FINISHED)
    return samples if counted >= total else None


def assert_cumulative(samples: scrape.Samples, name: str, count: float, **labels: str) -> None:
    found = scrape.buckets(samples, name, **labels)
    assert found, f"no buckets for {name} {labels}"
    counts = [c for _, c in found]
    assert counts == sorted(counts), f"{name} buckets are not cumulative: {found}"
    assert found[-1][0] == float("inf")
    assert counts[-1] == count == scrape.value(samples, f"{name}_count", **labels)


async def test_a_worker_process_counts_what_it_ran_on_its_own_port(
    procs: Processes, pool: Pool
) -> None:
    worker, url = metrics_worker(procs, "metrics")
    await enqueue(pool, "test.add", {"a": 1, "b": 2}, 5)
    await enqueue(pool, "test.always_fail", {}, 2)  # 2 attempts each: retried, then failed
    await enqueue(pool, "test.cancel_me", {"reason": "no"}, 1)
    await enqueue(pool, "test.slow_timeout", {}, 1)  # times out twice: retried, then failed
    await wait_for(lambda: all_ended(pool), timeout=30, what="every job ended")
    first = await wait_for(lambda: scraped_once_counted(url, 12), timeout=10, what="counted")

    def add(**more: str) -> dict[str, str]:
        return {"queue": "default", "task": "test.add", **more}

    def of(task: str, **more: str) -> dict[str, str]:
        return {"queue": "default", "task": task, **more}

    assert scrape.value(first, STARTED, **add()) == 5
    assert scrape.value(first, FINISHED, **add(outcome="succeeded")) == 5
    assert scrape.value(first, STARTED, **of("test.always_fail")) == 4
    assert scrape.value(first, FINISHED, **of("test.always_fail", outcome="retried")) == 2
    assert scrape.value(first, FINISHED, **of("test.always_fail", outcome="failed")) == 2
    assert scrape.value(first, FINISHED, **of("test.cancel_me", outcome="cancelled")) == 1
    assert scrape.value(first, FINISHED, **of("test.slow_timeout", outcome="retried")) == 1
    assert scrape.value(first, FINISHED, **of("test.slow_timeout", outcome="failed")) == 1
    assert scrape.value(first, "jobrunner_job_timeouts_total", **of("test.slow_timeout")) == 2
    assert_cumulative(first, "jobrunner_job_run_seconds", 5, **add())
    assert_cumulative(first, "jobrunner_job_pickup_seconds", 5, **add())
    assert_cumulative(first, "jobrunner_job_run_seconds", 2, **of("test.slow_timeout"))

    await enqueue(pool, "test.add", {"a": 2, "b": 2}, 3)
    await wait_for(lambda: all_ended(pool), timeout=30, what="the next jobs ended")
    second = await wait_for(lambda: scraped_once_counted(url, 15), timeout=10, what="counted")
    assert scrape.value(second, FINISHED, **add(outcome="succeeded")) == 8
    assert_cumulative(second, "jobrunner_job_run_seconds", 8, **add())
    for key, counted in first.items():  # monotonic: no counter or bucket went down
        if key[0].endswith(("_total", "_bucket", "_count")) and key[0].startswith("jobrunner_"):
            assert second.get(key, 0.0) >= counted, key
    assert worker.alive()


async def test_with_a_multiprocess_dir_one_endpoint_answers_for_every_worker(
    procs: Processes, pool: Pool, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    first, url = metrics_worker(procs, "first", **env)
    second, other_url = metrics_worker(procs, "second", **env)
    await wait_for(lambda: answers(url), timeout=30, what="the first worker's endpoint")
    await wait_for(lambda: answers(other_url), timeout=30, what="the second worker's endpoint")
    await enqueue(pool, "test.sleep", {"seconds": 0.2}, 40)  # more than one worker's slots
    await wait_for(lambda: all_ended(pool), timeout=30, what="every job ended")
    samples = await wait_for(lambda: scraped_once_counted(url, 40), timeout=10, what="counted")
    of_sleep = {"queue": "default", "task": "test.sleep"}
    assert scrape.value(samples, FINISHED, **of_sleep, outcome="succeeded") == 40
    assert_cumulative(samples, "jobrunner_job_run_seconds", 40, **of_sleep)
    async with pool.acquire() as conn:
        workers = await conn.fetch(
            "SELECT DISTINCT split_part(worker_id, ':', 2)::int AS pid FROM jobrunner.jobs"
        )
    assert {r["pid"] for r in workers} == {first.pid, second.pid}, "one worker ran them all"
