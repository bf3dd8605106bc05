"""Rows in states that take a worker and some waiting to reach, written directly."""

from __future__ import annotations

from jobrunner.db.pool import Conn


async def insert_deferred_job(conn: Conn, task: str) -> None:
    """A job the way a worker leaves one whose task it does not know: retrying, its
    attempt given back, the deferral on record (as job_record_outcomes writes it)."""
    await conn.execute(
        "INSERT INTO jobrunner.jobs (queue, task, state, attempt, run_at, errors)"
        " VALUES ('default', $1, 'retrying', 0, now() + interval '30 seconds',"
        " jsonb_build_array(jsonb_build_object("
        "   'attempt', 1, 'outcome', 'deferred', 'error', 'no worker knows task ' || $1)))",
        task,
    )
