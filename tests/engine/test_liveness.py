"""A worker's liveness file (JOBRUNNER_LIVENESS_FILE): touched by its heartbeat, every beat."""

from __future__ import annotations

from pathlib import Path

from tests.support.waiting import wait_for
from tests.support.workers import StartWorker


async def test_the_heartbeat_touches_the_liveness_file(
    start_worker: StartWorker, tmp_path: Path
) -> None:
    alive = tmp_path / "probe" / "worker-alive"
    await start_worker(settings={"liveness_file": alive})
    first = await wait_for(lambda: alive.exists() and alive.stat().st_mtime_ns, timeout=10)
    # The settings fixture beats every 0.2 s: the file keeps getting younger, jobs or not.
    await wait_for(lambda: alive.stat().st_mtime_ns > first, timeout=10)
