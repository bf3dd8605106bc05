"""The listener's backend terminated, and frozen: jobs are still picked up (by polling), and the
listener comes back by itself on a new backend."""

from __future__ import annotations

import os
import signal
import time

from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import wait_for

LISTENER = "jobrunner-listener"


async def _one_listener(db: Db) -> int:
    pid = 0

    async def found() -> bool:
        nonlocal pid
        pids = await db.backends(LISTENER)
        pid = pids[0] if len(pids) == 1 else 0
        return bool(pid)

    await wait_for(found, timeout=30, what="one listener backend")
    return pid


async def _replaced(db: Db, old: int) -> bool:
    # A frozen backend cannot exit, so it still shows until thawed: look for a new one.
    return any(pid != old for pid in await db.backends(LISTENER))


async def _flows(db: Db, count: int) -> float:
    ids = await db.enqueue_many("fault.pid", [{}] * count)
    started = time.monotonic()
    await wait_for(lambda: db.all_done(ids), timeout=30, what="jobs still picked up")
    took = time.monotonic() - started
    await assert_nothing_lost(db, ids)
    return took


async def test_terminated_listener_backend_reconnects_and_jobs_flow(
    db: Db, procs: Processes, figures: Figures
) -> None:
    procs.start_worker("w", WorkerOptions(poll_interval=0.2))
    old = await _one_listener(db)

    assert await db.fetchval("SELECT pg_terminate_backend($1)", old)
    killed_at = time.monotonic()
    during = await _flows(db, 20)
    await wait_for(lambda: _replaced(db, old), timeout=30, what="a new listener backend")
    reconnected = time.monotonic() - killed_at
    after = await _flows(db, 20)  # and through the new listener
    figures(listener_reconnected_seconds=reconnected, jobs_done_while_reconnecting_seconds=during,
            jobs_done_after_seconds=after)  # fmt: skip


async def test_frozen_listener_backend_is_replaced_and_jobs_flow(
    db: Db, procs: Processes, figures: Figures, frozen_backends: set[int]
) -> None:
    # The listener's health check runs every max(5 x poll, 1 s): a frozen backend never
    # answers it, so the listener gives it up and connects again.
    procs.start_worker("w", WorkerOptions(poll_interval=0.05))
    old = await _one_listener(db)

    os.kill(old, signal.SIGSTOP)
    frozen_backends.add(old)
    frozen_at = time.monotonic()
    during = await _flows(db, 20)  # polling does not need the listener
    await wait_for(lambda: _replaced(db, old), timeout=30, what="a new listener backend")
    replaced = time.monotonic() - frozen_at
    os.kill(old, signal.SIGCONT)
    # Thawed, the old backend finds its client gone and exits.
    await wait_for(lambda: _gone(db, old), timeout=30, what="the old backend exits")
    after = await _flows(db, 20)
    figures(listener_replaced_seconds=replaced, jobs_done_while_frozen_seconds=during,
            jobs_done_after_seconds=after)  # fmt: skip


async def _gone(db: Db, pid: int) -> bool:
    alive: bool = await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid
    )
    return not alive
