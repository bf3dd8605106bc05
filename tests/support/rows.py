"""Rows in states that take a worker and some waiting to reach, written directly."""

from __future__ import annotations

from collections.abc import Sequence

from jobrunner.db.pool import Conn


async def insert_deferred_job(conn: Conn, task: str) -> None:
    """A job the way a worker leaves one whose task it does not know: retrying, its
    attempt given back, the deferral on record (as job_record_outcomes writes it)."""
    await conn.execute(
        "INSERT INTO jobrunner.jobs (queue, task, state, attempt, run_at, errors)"
        " VALUES ('default', $1::text, 'retrying', 0, now() + interval '30 seconds',"
        " jsonb_build_array(jsonb_build_object("
        "   'attempt', 1, 'outcome', 'deferred', 'error', 'no worker knows task ' || $1)))",
        task,
    )


async def insert_worker(
    conn: Conn,
    worker_id: str,
    *,
    queues: Sequence[str],
    tasks: Sequence[str] = (),
    seen_ago: float = 0.0,
    stopped: bool = False,
) -> None:
    """A worker's row in the registry as if it ran (no process behind it), last seen
    `seen_ago` seconds ago, stopped then if `stopped`."""
    await conn.execute(
        "INSERT INTO jobrunner.workers"
        " (id, host, pid, queues, tasks, concurrency, started_at, last_seen_at, stopped_at)"
        " VALUES ($1, 'tests', 0, $2, $3, 1, now() - make_interval(secs => $4::float8 + 1),"
        "         now() - make_interval(secs => $4::float8),"
        "         CASE WHEN $5::bool THEN now() - make_interval(secs => $4::float8) END)",
        worker_id,
        list(queues),
        list(tasks),
        seen_ago,
        stopped,
    )
