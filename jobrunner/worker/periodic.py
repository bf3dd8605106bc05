"""Periodic tasks: `@task(cron="*/5 * * * *")` gets exactly one job per tick.

The tick is read from the database's clock. Moving a task's last tick forward and enqueueing
its job happen in one transaction, and only the caller whose UPDATE moved the tick enqueues,
so any number of workers produce one job per tick. Ticks missed while no worker ran are not
replayed: the next run is the latest tick only.
"""

from __future__ import annotations

from datetime import datetime

from jobrunner import client
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.registry import registered_tasks


def latest_tick(expression: str, now: datetime) -> datetime:
    """The most recent time at or before `now` that the expression fires."""
    # Imported by the first cron task, not by every worker: croniter (with dateutil) was
    # ~9 ms of a worker's start to its first job, most workers having no cron task.
    from croniter import croniter

    itr = croniter(expression, now)
    following: datetime = itr.get_next(datetime)
    itr = croniter(expression, following)
    previous: datetime = itr.get_prev(datetime)
    return previous if previous <= now else now


async def enqueue_due_periodic(conn: Conn) -> int:
    periodic = [t for t in registered_tasks() if t.cron is not None]
    if not periodic:
        return 0
    now = await queries.clock_now(conn)
    enqueued = 0
    for task in periodic:
        assert task.cron is not None
        tick = latest_tick(task.cron, now)
        async with conn.transaction():
            await queries.periodic_tick_init(conn, task=task.name, tick=tick)
            if await queries.periodic_tick_advance(conn, task=task.name, tick=tick):
                await client.enqueue(task.name, {}, conn=conn)
                enqueued += 1
    return enqueued
