"""Graphs of jobs: several jobs and who waits for whom, enqueued in one transaction.

    chain(a, b, c)              a ─► b ─► c        b waits for a, c for b
    group(a, b, c)              a   b   c          side by side
    group(a, b).then(c)         a ─┬─► c           fan-in: c waits for both
                                b ─┘
    chain(a, group(b, c), d)    a ─► b, c ─► d     parts nest

A step is a job not enqueued yet: `step(task, **arguments_and_options)`, taking enqueue's
options (its depends_on may name jobs that exist already). POST /jobs/graph builds the same
Graph from named jobs (Graph.named).

`enqueue` checks the whole graph before it writes anything (every step's arguments and
options, the graph's size, and a topological order: a cycle is refused), then writes it level
by level in one transaction: each level's jobs in one statement, linked to their parents
written before (jobrunner.dependencies). Ids are the database's, given as each level is
written, so a job can only ever wait for jobs that exist: no cycle can be made anywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from jobrunner import client
from jobrunner.db.pool import Conn
from jobrunner.errors import JobrunnerError
from jobrunner.job_rows import (
    JobRows,
    check_parent_failure,
    insert_each,
    make_rows,
    parse_parents,
)
from jobrunner.models import Job, ParentFailure
from jobrunner.options import NO_OPTIONS, OPTION_NAMES, JobOptions
from jobrunner.tasks import Task

MAX_GRAPH_JOBS = 100_000  # the library's bound; the API's is JOBRUNNER_MAX_GRAPH_JOBS


class InvalidGraph(JobrunnerError):
    """A graph of jobs that cannot be enqueued: a cycle, a name used twice or unknown, a job
    option a graph does not take, or more jobs than allowed. Nothing was written."""


@dataclass(frozen=True, slots=True)
class Step:
    """One job of a graph, not enqueued yet: its task, arguments and options."""

    task: str
    args: Mapping[str, Any] = field(default_factory=dict)
    options: JobOptions = NO_OPTIONS


def step(task: Task[..., Any] | str, /, **kwargs: Any) -> Step:
    """A job to enqueue as part of a graph. Keyword arguments named like an option of
    `jobrunner.enqueue` are options, the rest the task's arguments (as `Task.enqueue`)."""
    options = {name: kwargs.pop(name) for name in OPTION_NAMES.intersection(kwargs)}
    return Step(task if isinstance(task, str) else task.name, kwargs, JobOptions(**options))


@dataclass(frozen=True, slots=True)
class Node:
    """A step in its graph, with what it waits for: places of the graph's own jobs (int),
    or ids of jobs that exist, in the order named."""

    step: Step
    parents: tuple[int | UUID, ...] = ()
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Graph:
    """Jobs and who waits for whom. `heads`: the jobs a chain makes wait for what comes
    before; `tails`: the jobs what comes after waits for."""

    nodes: tuple[Node, ...]
    heads: tuple[int, ...]
    tails: tuple[int, ...]

    def then(self, *parts: Step | Graph) -> Graph:
        """This graph, then `parts` side by side, each waiting for all of this graph's tails."""
        return chain(self, parts[0] if len(parts) == 1 else group(*parts))

    async def enqueue(self, *, conn: Conn | None = None) -> list[Job]:
        """Write every job in one transaction (a savepoint inside the caller's, with `conn`);
        returns them in the graph's order, each as it stands (waiting, mostly)."""
        prepared = prepare(self)
        if conn is not None:
            return await insert_graph(conn, prepared)
        async with client.default_pool().acquire() as acquired:
            return await insert_graph(acquired, prepared)

    @classmethod
    def named(cls, jobs: Sequence[tuple[str, Step, Sequence[str]]]) -> Graph:
        """A graph of named jobs, each with what it waits for: names of jobs of this graph,
        or ids of jobs that exist. Any order; a name must not look like a job id."""
        places: dict[str, int] = {}
        for place, (name, _, _) in enumerate(jobs):
            if _as_id(name) is not None:
                raise InvalidGraph(f"job name {name!r} looks like a job id")
            if places.setdefault(name, place) != place:
                raise InvalidGraph(f"two jobs are named {name!r}")
        nodes = tuple(
            Node(job, tuple(_parent(name, p, places) for p in after), name)
            for name, job, after in jobs
        )
        waited_for = {p for node in nodes for p in node.parents if isinstance(p, int)}
        heads = tuple(i for i, node in enumerate(nodes) if not _own_parents(node))
        tails = tuple(i for i in range(len(nodes)) if i not in waited_for)
        return cls(nodes, heads, tails)

    def levels(self) -> list[list[int]]:
        """The places of the jobs, in levels: each job after every job of the graph it waits
        for (Kahn's algorithm). A job that waits, through others, for itself raises."""
        waiting = [sum(1 for p in set(n.parents) if isinstance(p, int)) for n in self.nodes]
        children: list[list[int]] = [[] for _ in self.nodes]
        for place, node in enumerate(self.nodes):
            for parent in set(node.parents):
                if isinstance(parent, int):
                    children[parent].append(place)
        level = [place for place, count in enumerate(waiting) if count == 0]
        levels: list[list[int]] = []
        while level:
            levels.append(level)
            ready = []
            for place in level:
                for child in children[place]:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        ready.append(child)
            level = ready
        if sum(len(level) for level in levels) < len(self.nodes):
            stuck = [self._label(p) for p, count in enumerate(waiting) if count > 0]
            raise InvalidGraph(f"the graph has a cycle through {', '.join(stuck[:10])}")
        return levels

    def _label(self, place: int) -> str:
        name = self.nodes[place].name
        return repr(name) if name is not None else f"job {place} ({self.nodes[place].step.task})"


def _own_parents(node: Node) -> bool:
    return any(isinstance(p, int) for p in node.parents)


def _as_id(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _parent(name: str, parent: str, places: Mapping[str, int]) -> int | UUID:
    if parent in places:
        return places[parent]
    job_id = _as_id(parent)
    if job_id is None:
        raise InvalidGraph(f"job {name!r} depends on {parent!r}: no job of the graph has that name")
    return job_id


def _graph(part: Step | Graph) -> Graph:
    return part if isinstance(part, Graph) else Graph((Node(part),), (0,), (0,))


def _shifted(graph: Graph, offset: int) -> list[Node]:
    return [
        replace(n, parents=tuple(p + offset if isinstance(p, int) else p for p in n.parents))
        for n in graph.nodes
    ]


def chain(*parts: Step | Graph) -> Graph:
    """Each part waits for the one before: its heads for the previous part's tails."""
    if not parts:
        raise InvalidGraph("chain() needs at least one step")
    nodes: list[Node] = []
    heads: tuple[int, ...] = ()
    tails: tuple[int, ...] = ()
    for part in map(_graph, parts):
        offset, shifted = len(nodes), _shifted(part, len(nodes))
        if not nodes:
            heads = part.heads
        else:
            for head in part.heads:
                shifted[head] = replace(shifted[head], parents=shifted[head].parents + tails)
        nodes += shifted
        tails = tuple(tail + offset for tail in part.tails)
    return Graph(tuple(nodes), heads, tails)


def group(*parts: Step | Graph | Iterable[Step | Graph]) -> Graph:
    """The parts side by side (`group(a, b)`, or `group(steps)` for any iterable of them):
    what comes after waits for all of them."""
    flat: list[Step | Graph] = []
    for part in parts:
        flat += [part] if isinstance(part, (Step, Graph)) else list(part)
    if not flat:
        raise InvalidGraph("group() needs at least one step")
    nodes: list[Node] = []
    heads: list[int] = []
    tails: list[int] = []
    for each in map(_graph, flat):
        offset = len(nodes)
        nodes += _shifted(each, offset)
        heads += [head + offset for head in each.heads]
        tails += [tail + offset for tail in each.tails]
    return Graph(tuple(nodes), tuple(heads), tuple(tails))


# ----- writing it -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checked:
    """One job of a graph, checked: its row as the parameter maker made it (without parents:
    those of the graph get their ids as the levels are written), and what it waits for."""

    rows: JobRows
    parents: tuple[int | UUID, ...]
    on_parent_failure: ParentFailure


@dataclass(frozen=True, slots=True)
class Prepared:
    """A graph checked whole, ready to write: its levels and its jobs, in the graph's order."""

    levels: list[list[int]]
    jobs: list[Checked]


def prepare(graph: Graph, *, max_jobs: int = MAX_GRAPH_JOBS) -> Prepared:
    """Check every job of the graph, its size and its order; raises before anything is
    written (InvalidGraph, UnknownTask, InvalidArguments)."""
    if not 0 < len(graph.nodes) <= max_jobs:
        raise InvalidGraph(f"a graph holds from 1 to {max_jobs} jobs, not {len(graph.nodes)}")
    return Prepared(graph.levels(), [_check(node) for node in graph.nodes])


def _check(node: Node) -> Checked:
    s = node.step
    parents = (*parse_parents(s.task, s.options.depends_on), *node.parents)
    policy = s.options.on_parent_failure or "cancel"
    check_parent_failure(s.task, policy)
    if s.options.on_parent_failure is not None and not parents:
        raise InvalidGraph(f"{s.task}: on_parent_failure goes with parents")
    if s.options.dedup_key is not None:
        raise InvalidGraph(f"{s.task}: a job of a graph takes no dedup_key")
    bare = replace(s.options, depends_on=None, on_parent_failure=None)
    return Checked(make_rows(s.task, [s.args], bare), parents, policy)


async def insert_graph(conn: Conn, prepared: Prepared) -> list[Job]:
    """Write a prepared graph level by level in one transaction (a savepoint inside the
    caller's): each level in one statement, linked to the parents written before it."""
    jobs: list[Job | None] = [None] * len(prepared.jobs)
    async with conn.transaction():
        for level in prepared.levels:
            batch = [_waiting(prepared.jobs[place], jobs) for place in level]
            for place, job in zip(level, await insert_each(conn, batch), strict=True):
                jobs[place] = job
    return [_written(job) for job in jobs]


def _waiting(checked: Checked, jobs: Sequence[Job | None]) -> JobRows:
    if not checked.parents:
        return checked.rows
    ids = [p if isinstance(p, UUID) else _written(jobs[p]).id for p in checked.parents]
    return checked.rows.waiting_for(ids, checked.on_parent_failure)


def _written(job: Job | None) -> Job:
    assert job is not None, "a job is written after every job of the graph it waits for"
    return job
