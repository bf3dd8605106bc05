"""Submitting a graph of jobs over HTTP (POST /jobs/graph).

Every job is checked as a lone submission's would be (its task and callback URL, queue
access, a queue some worker serves), and the graph as a whole (names, size, a cycle:
jobrunner.graph); the user is charged a submission per job (up to the burst) and needs room
for every job under the unfinished-jobs cap. Then the graph is written in one transaction,
its jobs linked to parents of the user's own only. Nothing is written unless all of it is.
"""

from __future__ import annotations

from jobrunner import accounts
from jobrunner.api import limits
from jobrunner.api.schemas import GraphCreate
from jobrunner.api.submit import SubmitContext, Submitter, check_submittable
from jobrunner.graph import Graph, InvalidGraph, Step, insert_graph, prepare
from jobrunner.models import Job
from jobrunner.settings import Settings


async def submit_graph(
    ctx: SubmitContext, settings: Settings, me: Submitter, body: GraphCreate
) -> list[tuple[str, Job]]:
    """Each job of the graph by its name, in the order given. The caller has taken one
    submission from the user's rate bucket."""
    if len(body.jobs) > settings.max_graph_jobs:
        raise InvalidGraph(f"a graph holds at most {settings.max_graph_jobs} jobs")
    for job in body.jobs:
        check_submittable(job.task, job.callback_url, settings)
    graph = Graph.named(
        [(j.name, Step(j.task, j.args, j.options(owner=me.username)), j.depends_on)
         for j in body.jobs]
    )  # fmt: skip
    prepared = prepare(graph, max_jobs=settings.max_graph_jobs)
    for job, checked in zip(body.jobs, prepared.jobs, strict=True):
        await ctx.access.check(me.username, checked.rows.queue, job.priority)
    for queue in sorted({checked.rows.queue for checked in prepared.jobs}):
        await ctx.served.require(queue, me)
    async with ctx.pool.acquire() as conn:
        if not me.session_checked:
            await accounts.live_session(conn, username=me.username, session_id=me.session_id)
        await limits.charge_more(conn, settings, me.username, len(body.jobs))
        cap = settings.max_unfinished_jobs_per_user
        await ctx.unfinished.admit_many(conn, me.username, cap=cap, jobs=len(body.jobs))
        written = await insert_graph(conn, prepared)
    return [(j.name, job) for j, job in zip(body.jobs, written, strict=True)]
