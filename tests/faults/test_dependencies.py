"""Jobs that wait for jobs, across real worker processes: a fan-out and fan-in graph with
each job run once (parents ending at once in different workers release the child once), a
parent's worker killed mid-attempt, the cascade on failure, and pruning beside a waiting
child."""

from __future__ import annotations

import time
from uuid import UUID

import pytest

from jobrunner import chain, client, group, step
from jobrunner.models import JobState
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.waiting import equals, wait_for

FAN_OUT = 2000


async def _listening(db: Db, count: int) -> bool:
    return len(await db.backends("jobrunner-listener")) >= count


async def test_a_fan_out_fan_in_graph_runs_each_job_once_and_the_fan_in_at_once(
    db: Db, procs: Processes, figures: Figures
) -> None:
    await _fan_out_fan_in(db, procs, figures, FAN_OUT)


@pytest.mark.slow
async def test_a_graph_of_10_000_jobs_runs_each_once_across_workers(
    db: Db, procs: Processes, figures: Figures
) -> None:
    """The issue's figure, as `make soak` runs it (`jobrunner bench --only graph` too)."""
    await _fan_out_fan_in(db, procs, figures, 10_000 - 2)


async def _fan_out_fan_in(db: Db, procs: Processes, figures: Figures, fan_out: int) -> None:
    for i in range(4):
        procs.start_worker(f"w{i}", WorkerOptions(concurrency=20))
    await wait_for(lambda: _listening(db, 4), timeout=30, what="four workers listening")
    graph = chain(
        step("fault.record", n=0),
        group(step("fault.record", n=n) for n in range(1, fan_out + 1)),
        step("fault.gather", n=-1),
    )
    started = time.monotonic()
    jobs = await graph.enqueue(conn=await db.conn())
    ids = [job.id for job in jobs]
    await wait_for(lambda: db.all_done(ids), timeout=60 + fan_out / 50, what="the graph done")
    elapsed = time.monotonic() - started

    rows = await assert_nothing_lost(db, ids)
    assert await db.fetchval("SELECT count(*) FROM fault_effects") == fan_out + 2
    assert await db.fetchval("SELECT count(*) FROM fault_violations") == 0  # each ran once
    assert all(row["attempt"] == 1 for row in rows.values())
    sink = rows[ids[-1]]
    assert sorted(sink["result"]["results"]) == list(range(1, fan_out + 1))
    ends = {rows[i]["finished_at"] for i in ids[1:-1]}
    # Released by the transaction of the parent counted last, in its own time: now() is when
    # a transaction began, so another parent's, begun later but counted first, may be later.
    assert sink["run_at"] in ends
    fan_in = (sink["started_at"] - max(ends)).total_seconds()  # from the latest begun: at most
    workers = {row["worker_id"] for row in rows.values()}
    assert len(workers) > 1
    # Its start is a figure (the bench holds it to 100 ms), not a timed assertion; what must
    # hold is that it started after every parent ended, never before.
    assert fan_in >= 0, fan_in
    figures(jobs=fan_out + 2, workers=4, seconds=elapsed, fan_in_started_after_ms=fan_in * 1000)


async def test_a_parents_worker_killed_mid_attempt_delays_its_child_not_loses_it(
    db: Db, procs: Processes, figures: Figures
) -> None:
    victim = procs.start_worker("victim", WorkerOptions(lease_seconds=1.0))
    await wait_for(lambda: _listening(db, 1), timeout=30, what="victim listening")
    conn = await db.conn()
    parent = await client.enqueue(
        "fault.sleeps_first_run", {"token": "p", "seconds": 60.0}, conn=conn
    )
    child = await client.enqueue("fault.gather", {"n": 1}, conn=conn, depends_on=[parent])
    await wait_for(lambda: equals(db.runs(), 1), timeout=30, what="the victim runs the parent")
    standby = procs.start_worker("standby", WorkerOptions(lease_seconds=1.0))
    await wait_for(lambda: _listening(db, 2), timeout=30, what="standby listening")
    victim.popen.kill()
    killed_at = time.monotonic()
    await victim.wait_exit(10)
    assert await db.count([child.id], "waiting") == 1  # no parent's end: it still waits
    await wait_for(lambda: db.all_done([parent.id, child.id]), timeout=30, what="both done")
    rows = await assert_nothing_lost(db, [parent.id, child.id])
    assert rows[parent.id]["attempt"] == 2
    assert rows[parent.id]["errors"][0]["error"].startswith("worker lost")
    result = rows[child.id]["result"]
    assert result["results"] == [{"pid": standby.pid, "attempt": 2}]
    assert rows[child.id]["attempt"] == 1 and f":{standby.pid}:" in rows[child.id]["worker_id"]
    assert rows[child.id]["run_at"] == rows[parent.id]["finished_at"]
    figures(child_done_after_kill_seconds=time.monotonic() - killed_at)


async def test_a_failure_cascades_across_processes_and_a_run_anyway_child_runs(
    db: Db, procs: Processes
) -> None:
    for i in range(2):
        procs.start_worker(f"w{i}", WorkerOptions(concurrency=5))
    await wait_for(lambda: _listening(db, 2), timeout=30, what="two workers listening")
    conn = await db.conn()
    bad = await client.enqueue("test.always_fail", {}, conn=conn)
    doomed = await chain(
        step("fault.record", n=1, depends_on=[bad]), step("fault.record", n=2),
        step("fault.record", n=3),
    ).enqueue(conn=conn)  # fmt: skip
    anyway = await client.enqueue(
        "fault.gather", {"n": 4}, conn=conn, depends_on=[bad], on_parent_failure="run"
    )
    after = await client.enqueue("fault.gather", {"n": 5}, conn=conn, depends_on=[anyway])
    ids = [bad.id, *(j.id for j in doomed), anyway.id, after.id]
    await wait_for(lambda: db.all_done(ids), timeout=60, what="every job ended")
    rows = await db.jobs(ids)
    assert rows[bad.id]["state"] == JobState.FAILED.value
    assert [rows[j.id]["state"] for j in doomed] == ["cancelled"] * 3
    assert {rows[j.id]["finished_at"] for j in doomed} == {rows[bad.id]["finished_at"]}
    assert [rows[j.id]["attempt"] for j in doomed] == [0, 0, 0]  # none of them ran
    assert rows[anyway.id]["result"]["states"] == ["failed"]
    assert rows[after.id]["state"] == "succeeded"
    effects = await db.fetch("SELECT n FROM fault_effects ORDER BY n")
    assert [r["n"] for r in effects] == [4, 5]


async def test_pruning_never_strands_a_waiting_child(db: Db, procs: Processes) -> None:
    options = WorkerOptions(env={"JOBRUNNER_RETENTION_SUCCEEDED": "0.01"})
    procs.start_worker("w", options)
    await wait_for(lambda: _listening(db, 1), timeout=30, what="worker listening")
    conn = await db.conn()
    quick = await client.enqueue("fault.record", {"n": 1}, conn=conn)
    slow = await client.enqueue("fault.record", {"n": 2}, conn=conn, delay=3600)
    child = await client.enqueue("fault.gather", {"n": 3}, conn=conn, depends_on=[quick, slow])
    # Finished, and fifty times past its retention: kept while its child waits for `slow`
    # (were it pruned, this would never come true).
    await wait_for(lambda: _kept_past(db, quick.id, 0.5), timeout=30, what="quick kept")
    assert await db.count([child.id, slow.id], "waiting", "scheduled") == 2
    # Now `slow` comes due (maintenance promotes it), rather than racing a short delay.
    await db.execute("UPDATE jobrunner.jobs SET run_at = now() WHERE id = $1", slow.id)
    # Read once: the child, succeeded, is itself pruned 0.01 s later.
    result = await wait_for(lambda: _result(db, child.id), timeout=30, what="the child's result")
    assert result["results"] == [1, 2]
    await wait_for(lambda: _gone(db, [quick.id, slow.id, child.id]), timeout=30,
                   what="all three pruned once the child ended")  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM jobrunner.job_dependencies") == 0


async def _kept_past(db: Db, job_id: UUID, seconds: float) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) = 1 FROM jobrunner.all_jobs WHERE id = $1"
            " AND finished_at < now() - make_interval(secs => $2)",
            job_id,
            seconds,
        )
    )


async def _result(db: Db, job_id: UUID) -> dict[str, object] | None:
    result: dict[str, object] | None = await db.fetchval(
        "SELECT result FROM jobrunner.all_jobs WHERE id = $1", job_id
    )
    return result


async def _gone(db: Db, ids: list[UUID]) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) = 0 FROM jobrunner.all_jobs WHERE id = ANY($1::uuid[])", ids
        )
    )
