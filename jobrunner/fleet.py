"""The worker registry, read: which workers run, which queues none of them serves, which
tasks they know.

Workers write their own rows (jobrunner.worker.presence); GET /workers, the dashboard,
`jobrunner doctor` and `jobrunner up` read them through here. A worker is live while it is
not stopped and was seen within JOBRUNNER_WORKER_SEEN_TIMEOUT, by the database's clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.models import WorkerInfo

WAITING_CAP = 100_000  # queued jobs counted per queue, at most


async def list_workers(conn: Conn, *, seen_timeout: float) -> list[WorkerInfo]:
    """Live workers first, then the most recently seen (stopped or gone)."""
    return await queries.worker_list(conn, seen_timeout=seen_timeout)


def served_queues(workers: Iterable[WorkerInfo]) -> set[str]:
    return {queue for w in workers if w.live for queue in w.queues}


def known_tasks(workers: Iterable[WorkerInfo]) -> set[str]:
    return {task for w in workers if w.live for task in w.tasks}


async def unserved_queues(conn: Conn, workers: Iterable[WorkerInfo]) -> dict[str, int]:
    """Queues with queued jobs that none of the live `workers` serves: queue -> jobs waiting
    there (counted up to WAITING_CAP). Nothing claims them until such a worker starts."""
    return await queries.job_queues_waiting(conn, cap=WAITING_CAP, skip=served_queues(workers))


def split_unknown(
    unknown: Mapping[str, int], workers: Iterable[WorkerInfo]
) -> tuple[dict[str, int], dict[str, int]]:
    """Tasks whose jobs a worker put back for not knowing them (client.unknown_tasks), split
    in two: those no live worker knows yet (code missing), and those a live worker knows now
    (a deploy finished: their jobs run when next due)."""
    known = known_tasks(workers)
    missing = {task: jobs for task, jobs in unknown.items() if task not in known}
    return missing, {task: jobs for task, jobs in unknown.items() if task in known}


def describe(jobs_by_name: Mapping[str, int]) -> str:
    """`reports (12 jobs), slow (1 jobs)`: the queues or tasks of a warning, for people."""
    return ", ".join(f"{name} ({jobs} jobs)" for name, jobs in jobs_by_name.items())
