"""One parameter maker, one insert core: every way a job row is made carries the task's
defaults (queue, priority, max_attempts, timeout, backoff), and a caller's options win."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
import pytest

from jobrunner import Backoff, client
from jobrunner.bench.rounds import fill
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.job_rows import insert_each, make_rows
from jobrunner.models import Job, JobState, Outcome, OutcomeKind
from jobrunner.options import OPTION_NAMES, EnqueueOptions, JobOptions
from jobrunner.registry import get_task
from jobrunner.tasks import ENQUEUE_OPTIONS
from jobrunner.webhooks import delivery_rows
from tests.support.tasks import DEFAULTS_QUEUE, with_defaults

TASK = "test.with_defaults"


def _has_task_defaults(job: Job) -> None:
    assert (job.queue, job.priority, job.max_attempts) == (DEFAULTS_QUEUE, 7, 4)
    assert job.timeout == timedelta(seconds=12.5)
    assert (job.backoff_base, job.backoff_cap) == (timedelta(seconds=2), timedelta(seconds=30))


async def _read(pool: Pool, ids: list[UUID]) -> list[Job]:
    async with pool.acquire() as conn:
        return await client.get_jobs(ids, conn=conn)


def test_the_options_are_listed_once() -> None:
    assert set(EnqueueOptions.__annotations__) == OPTION_NAMES
    assert OPTION_NAMES | {"conn"} == ENQUEUE_OPTIONS


async def test_enqueue_applies_the_task_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        _has_task_defaults(await client.enqueue(TASK, {"n": 1}, conn=conn))


async def test_task_enqueue_applies_the_task_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        _has_task_defaults(await with_defaults.enqueue(conn=conn, n=1))


async def test_enqueue_many_applies_the_task_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        ids = await with_defaults.enqueue_many([{"n": 1}, {"n": 2}], conn=conn)
    for job in await _read(pool, ids):
        _has_task_defaults(job)


async def test_the_batch_form_applies_the_task_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        jobs = await insert_each(conn, [make_rows(TASK, [{"n": n}]) for n in range(3)])
    assert [job.args for job in jobs] == [{"n": 0}, {"n": 1}, {"n": 2}]
    for job in jobs:
        _has_task_defaults(job)


async def test_the_bench_fill_goes_through_the_copy_form(pool: Pool) -> None:
    async with pool.acquire() as conn:
        await fill(conn, 3, JobOptions(queue="fill-q"), chunk=2)
        rows = await conn.fetch("SELECT queue, max_attempts FROM jobrunner.jobs")
    assert [tuple(r) for r in rows] == [("fill-q", get_task("noop").max_attempts)] * 3


async def test_options_override_the_task_defaults(pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue(
            TASK,
            conn=conn,
            queue="other",
            priority=-3,
            max_attempts=1,
            timeout=timedelta(seconds=2),
            backoff=Backoff(base=0.5, cap=1.0),
        )
    assert (job.queue, job.priority, job.max_attempts) == ("other", -3, 1)
    assert job.timeout == timedelta(seconds=2)
    assert (job.backoff_base, job.backoff_cap) == (timedelta(seconds=0.5), timedelta(seconds=1))


def test_a_webhook_delivery_carries_its_task_defaults_and_no_owner() -> None:
    rows = delivery_rows()
    task = get_task("jobrunner.deliver_webhook")
    assert (rows.queue, rows.max_attempts) == (task.queue, task.max_attempts)
    assert task.timeout is not None and rows.timeout == timedelta(seconds=task.timeout)
    assert rows.owner is None


async def test_enqueue_works_on_a_plain_connection_in_the_callers_transaction(
    pool: Pool, db_dsn: str
) -> None:
    conn = await asyncpg.connect(db_dsn)  # no init, no codecs: the README example's shape
    try:
        async with conn.transaction():
            kept = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        assert kept.args == {"a": 1, "b": 2}
        tx = conn.transaction()
        await tx.start()
        dropped = await client.enqueue("test.add", {"a": 3, "b": 4}, conn=conn)
        many = await client.enqueue_many("test.add", [{"a": 5, "b": 6}], conn=conn)
        await tx.rollback()
    finally:
        await conn.close()
    found = await _read(pool, [kept.id, dropped.id, *many])
    assert [job.id for job in found] == [kept.id]


@pytest.mark.parametrize("options", [{"dedup_key": "k"}, {"callback_url": "https://x.test/"}])
def test_options_for_single_jobs_are_refused_for_many(options: EnqueueOptions) -> None:
    with pytest.raises(Exception, match="single jobs"):
        make_rows(TASK, [{}, {}], JobOptions(**options))


async def test_the_outcome_write_waits_the_jobs_own_backoff(pool: Pool) -> None:
    async with pool.acquire() as conn:
        job = await client.enqueue(
            "test.always_fail", conn=conn, backoff=Backoff(base=100.0, cap=100.0)
        )
        default = await client.enqueue("test.always_fail", conn=conn)
        claimed = await queries.job_claim(
            conn, queues=["default"], worker_id="w", limit=2, lease_seconds=30
        )
        policy = queries.OutcomePolicy(
            backoff_base=1000.0, backoff_cap=1000.0, max_deferrals=0, delivery=delivery_rows()
        )
        outcomes = [Outcome(c.id, c.attempt, OutcomeKind.RETRY, error_json="{}") for c in claimed]
        states = await queries.job_record_outcomes(conn, outcomes, worker_id="w", policy=policy)
        assert {i: r.state for i, r in states.items()} == {
            job.id: JobState.RETRYING,
            default.id: JobState.RETRYING,
        }
        rows = {
            r["id"]: r["wait"].total_seconds()
            for r in await conn.fetch("SELECT id, run_at - now() AS wait FROM jobrunner.jobs")
        }
    # Drawn between half and all of the ceiling: the row's (100 s), else the worker's (1000 s).
    assert 50 <= rows[job.id] <= 100
    assert 500 <= rows[default.id] <= 1000


async def test_deliveries_after_an_outcome_and_a_rescue_carry_the_task_defaults(
    pool: Pool,
) -> None:
    delivery = delivery_rows()
    policy = queries.OutcomePolicy(
        backoff_base=1.0, backoff_cap=1.0, max_deferrals=0, delivery=delivery
    )
    async with pool.acquire() as conn:
        done = await client.enqueue(
            "test.add",
            {"a": 1, "b": 1},
            conn=conn,
            owner=None,
            callback_url="https://example.com/a",
            max_attempts=1,
        )
        lost = await client.enqueue(
            "test.add",
            {"a": 2, "b": 2},
            conn=conn,
            callback_url="https://example.com/b",
            max_attempts=1,
        )
        claimed = {
            c.id: c
            for c in await queries.job_claim(
                conn, queues=["default"], worker_id="w", limit=2, lease_seconds=30
            )
        }
        ok = Outcome(done.id, claimed[done.id].attempt, OutcomeKind.SUCCEEDED, result_json="2")
        await queries.job_record_outcomes(conn, [ok], worker_id="w", policy=policy)
        await conn.execute(
            "UPDATE jobrunner.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = $1",
            lost.id,
        )
        assert await queries.job_rescue_expired(conn, limit=10, delivery=delivery) == [
            queries.Settled(lost.id, JobState.FAILED, has_children=False)
        ]
        rows = await conn.fetch(
            "SELECT args ->> 'job_id' AS for_job, queue, task, max_attempts, timeout, owner"
            " FROM jobrunner.jobs WHERE task = $1 ORDER BY for_job",
            delivery.task,
        )
    made = {
        UUID(r["for_job"]): (r["queue"], r["max_attempts"], r["timeout"], r["owner"]) for r in rows
    }
    expected = (delivery.queue, delivery.max_attempts, delivery.timeout, None)
    assert made == {done.id: expected, lost.id: expected}


async def test_the_job_an_insert_hands_back_is_the_job_as_read(pool: Pool) -> None:
    """The insert core sends back only what the database decides (id, state, run_at,
    created_at) and builds the rest from what it sent (JobRows.made): that job must be the
    job a read of its row gives, in the single and the batch forms."""
    async with pool.acquire() as conn:
        single = await client.enqueue(
            TASK,
            {"n": 1},
            conn=conn,
            queue="other",
            priority=-3,
            backoff=Backoff(base=0.5, cap=1.0),
            tags=["a", "b"],
            dedup_key="once",
            callback_url="https://example.com/hook",
            fairness_key="k",
            delay=timedelta(seconds=30),
        )
        batch = await insert_each(
            conn, [make_rows(TASK, [{"n": n}], JobOptions(tags=("t",))) for n in range(2)]
        )
    made = [single, *batch]
    assert await _read(pool, [job.id for job in made]) == made
