"""Jobs that wait for jobs, in the library and one in-process worker: waiting, release in
the last parent's transaction, results passed along, the cascade on failure and cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID, uuid4

import pytest

from jobrunner import accounts, chain, client, group, step
from jobrunner.db.pool import Pool
from jobrunner.errors import InvalidArguments, UnknownParent
from jobrunner.graph import Graph, InvalidGraph, prepare
from jobrunner.models import PARENTS_KEY, Job, JobState
from tests.support.waiting import wait_for
from tests.support.workers import StartWorker

ReadJob = Callable[[UUID], Awaitable[Job]]


async def _ended(job_state: ReadJob, *ids: UUID, timeout: float = 15) -> list[Job]:
    async def probe() -> list[Job] | None:
        jobs = [await job_state(i) for i in ids]
        return jobs if all(j.state.is_terminal for j in jobs) else None

    return await wait_for(probe, timeout=timeout, what="jobs to end")


async def test_a_child_waits_and_runs_with_its_parents_results_in_the_order_named(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        a = await client.enqueue("test.add", {"a": 1, "b": 2}, conn=conn)
        b = await client.enqueue("test.add", {"a": 10, "b": 20}, conn=conn)
        child = await client.enqueue("test.parents", {}, conn=conn, depends_on=[b, a.id])
    assert child.state is JobState.WAITING and child.pending_parents == 2
    assert (
        child.parents == (b.id, a.id) and child.user_args == {}
    )  # defaults apply at run time, not stored
    await start_worker()
    a_done, b_done, done = await _ended(job_state, a.id, b.id, child.id)
    assert done.state is JobState.SUCCEEDED and done.pending_parents == 0
    assert done.result == [["test.add", "succeeded", 30, None], ["test.add", "succeeded", 3, None]]
    # Released by the last parent's outcome write, in its transaction: now() is the same.
    last = max(a_done, b_done, key=lambda j: j.finished_at or j.created_at)
    assert done.run_at == last.finished_at


async def test_chains_and_fan_in_pass_results_along(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    steps = chain(
        step("test.add", a=1, b=2), step("test.plus_parent", n=10), step("test.plus_parent", n=100)
    )
    fan_in = group(step("test.add", a=i, b=i) for i in range(3)).then(step("test.parents"))
    async with pool.acquire() as conn:
        first, second, third = await steps.enqueue(conn=conn)
        *parts, sink = await fan_in.enqueue(conn=conn)
        threaded = await client.enqueue("test.sync_parents", {}, conn=conn, depends_on=[first])
    assert [first.state, second.state, third.state] == [JobState.QUEUED, *[JobState.WAITING] * 2]
    assert third.parents == (second.id,) and sink.parents == tuple(p.id for p in parts)
    await start_worker()
    jobs = await _ended(job_state, first.id, second.id, third.id, sink.id, threaded.id)
    assert [j.result for j in jobs[:3]] == [3, 13, 113]
    assert jobs[3].result == [["test.add", "succeeded", 2 * i, None] for i in range(3)]
    assert jobs[4].result == [str(first.id)]  # a plain function sees them too (a thread)


async def test_a_failure_cancels_the_children_and_theirs_unless_they_run_anyway(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        bad = await client.enqueue("test.always_fail", {}, conn=conn)
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[bad])
        grandchild = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn,
                                          depends_on=[child])  # fmt: skip
        anyway = await client.enqueue(
            "test.parents", {}, conn=conn, depends_on=[bad], on_parent_failure="run"
        )
        after = await client.enqueue("test.parents", {}, conn=conn, depends_on=[anyway])
    await start_worker()
    bad_done, child_done, grand_done, anyway_done, after_done = await _ended(
        job_state, bad.id, child.id, grandchild.id, anyway.id, after.id
    )
    assert bad_done.state is JobState.FAILED
    assert child_done.state is grand_done.state is JobState.CANCELLED
    assert child_done.errors[-1]["error"] == f"parent {bad.id} failed"
    assert grand_done.errors[-1]["error"] == f"parent {child.id} cancelled"
    # The whole cascade is written with the failed parent's outcome.
    assert child_done.finished_at == grand_done.finished_at == bad_done.finished_at
    assert child_done.started_at is None and child_done.attempt == 0
    assert anyway_done.state is JobState.SUCCEEDED
    assert anyway_done.result == [["test.always_fail", "failed", None, "RuntimeError: always"]]
    assert after_done.state is JobState.SUCCEEDED and after_done.result[0][1] == "succeeded"


async def test_cancelling_a_waiting_parent_cancels_its_children_at_once(pool: Pool) -> None:
    async with pool.acquire() as conn:
        later = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=3600)
        child = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[later])
        leaf = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[child])
        cancelled = await client.cancel_job(later.id, conn=conn)
        child_now = await client.get_job(child.id, conn=conn)
        leaf_now = await client.get_job(leaf.id, conn=conn)
    assert cancelled.state is child_now.state is leaf_now.state is JobState.CANCELLED
    assert child_now.finished_at == leaf_now.finished_at == cancelled.finished_at


async def test_parents_that_ended_before_the_child_count_at_once(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        ok = await client.enqueue("test.add", {"a": 2, "b": 2}, conn=conn)
        bad = await client.enqueue("test.always_fail", {}, conn=conn)
    await start_worker()
    await _ended(job_state, ok.id, bad.id)
    async with pool.acquire() as conn:
        ready = await client.enqueue("test.parents", {}, conn=conn, depends_on=[ok])
        doomed = await client.enqueue("test.parents", {}, conn=conn, depends_on=[ok, bad])
        anyway = await client.enqueue(
            "test.parents", {"tag": "x"}, conn=conn, depends_on=[bad], on_parent_failure="run"
        )
    assert ready.state is JobState.QUEUED and ready.pending_parents == 0
    assert doomed.state is JobState.CANCELLED and doomed.finished_at is not None
    assert doomed.errors[-1]["error"] == f"parent {bad.id} failed"
    assert anyway.state is JobState.QUEUED
    ready_done, anyway_done = await _ended(job_state, ready.id, anyway.id)
    assert ready_done.result == [["test.add", "succeeded", 4, None]]
    assert anyway_done.result[0][1] == "failed"


async def test_enqueue_many_fans_out_from_one_parent(
    pool: Pool, start_worker: StartWorker, job_state: ReadJob
) -> None:
    async with pool.acquire() as conn:
        root = await client.enqueue("test.add", {"a": 5, "b": 5}, conn=conn)
        ids = await client.enqueue_many(
            "test.plus_parent", [{"n": n} for n in range(5)], conn=conn, depends_on=[root]
        )
        waiting = await client.get_jobs(ids, conn=conn)
    assert {j.state for j in waiting} == {JobState.WAITING}
    await start_worker()
    done = await _ended(job_state, *ids)
    assert [j.result for j in done] == [10 + n for n in range(5)]


async def test_a_user_depends_only_on_their_own_jobs_and_nothing_is_written(pool: Pool) -> None:
    async with pool.acquire() as conn:
        for name in ("alice", "bob"):
            await accounts.create_user(conn, username=name, password="x" * 8)
        alices = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, owner="alice")
        before = await conn.fetchval("SELECT count(*) FROM jobrunner.jobs")
        with pytest.raises(UnknownParent) as refused:
            await client.enqueue(
                "test.add", {"a": 1, "b": 1}, conn=conn, owner="bob", depends_on=[alices]
            )
        assert refused.value.job_ids == [alices.id]
        missing = uuid4()
        with pytest.raises(UnknownParent) as unknown:
            await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[missing])
        assert unknown.value.job_ids == [missing]
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == before
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.job_dependencies") == 0
        # Her own, or code enqueuing for nobody, may.
        mine = await client.enqueue(
            "test.add", {"a": 1, "b": 1}, conn=conn, owner="alice", depends_on=[alices]
        )
        system = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, depends_on=[alices])
    assert mine.state is system.state is JobState.WAITING


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"depends_on": [uuid4()], "dedup_key": "k"}, "dedup_key does not go with depends_on"),
        ({"on_parent_failure": "run"}, "on_parent_failure goes with depends_on"),
        ({"depends_on": ["not-an-id"]}, "is not a job id"),
        ({"depends_on": str(uuid4())}, "a list of jobs or job ids"),
        ({"depends_on": [uuid4()], "on_parent_failure": "ignore"}, "'cancel' or 'run'"),
    ],
)
async def test_bad_dependency_options_are_refused_before_writing(
    pool: Pool, options: dict[str, object], message: str
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(InvalidArguments, match=message):
            await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, **options)  # type: ignore[arg-type]


async def test_a_graph_with_a_cycle_or_a_bad_name_is_refused(pool: Pool) -> None:
    a, b = step("test.add", a=1, b=1), step("test.add", a=2, b=2)
    with pytest.raises(InvalidGraph, match="cycle through 'x', 'y'"):
        prepare(Graph.named([("x", a, ["y"]), ("y", b, ["x"]), ("z", a, [])]))
    with pytest.raises(InvalidGraph, match="cycle"):
        prepare(Graph.named([("self", a, ["self"])]))
    with pytest.raises(InvalidGraph, match="no job of the graph has that name"):
        Graph.named([("x", a, ["nobody"])])
    with pytest.raises(InvalidGraph, match="two jobs are named"):
        Graph.named([("x", a, []), ("x", b, [])])
    with pytest.raises(InvalidGraph, match="looks like a job id"):
        Graph.named([(str(uuid4()), a, [])])
    with pytest.raises(InvalidGraph, match="from 1 to 2 jobs"):
        prepare(chain(a, b, a), max_jobs=2)
    with pytest.raises(InvalidArguments):
        prepare(chain(a, step("test.add", a="x")))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM jobrunner.jobs") == 0


async def test_a_named_graph_mixes_its_own_jobs_and_existing_ones(pool: Pool) -> None:
    async with pool.acquire() as conn:
        old = await client.enqueue("test.add", {"a": 1, "b": 1}, conn=conn, delay=3600)
        graph = Graph.named(
            [
                ("sink", step("test.parents"), ["left", str(old.id), "right"]),
                ("left", step("test.add", a=1, b=2), []),
                ("right", step("test.add", a=3, b=4), ["left"]),
            ]
        )
        sink, left, right = await graph.enqueue(conn=conn)
    assert (graph.heads, graph.tails) == ((1,), (0,))  # what a chain around it attaches to
    assert sink.parents == (left.id, old.id, right.id) and sink.pending_parents == 3
    assert right.parents == (left.id,) and left.state is JobState.QUEUED
    assert sink.args is not None and sink.args[PARENTS_KEY] == [str(i) for i in sink.parents]


async def test_a_group_of_chains_then_one_job_waits_for_each_chains_end(pool: Pool) -> None:
    """The README's fan-out and fan-in: each chain's last step is a parent of the report."""
    graph = group(
        chain(step("test.add", a=i, b=i), step("test.plus_parent", n=1)) for i in range(3)
    ).then(step("test.parents", tag="report"))
    async with pool.acquire() as conn:
        jobs = await graph.enqueue(conn=conn)
    heads, tails, report = jobs[0::2][:3], jobs[1::2][:3], jobs[-1]
    assert [j.state for j in heads] == [JobState.QUEUED] * 3
    assert [t.parents for t in tails] == [(h.id,) for h in heads]
    assert report.parents == tuple(t.id for t in tails)
