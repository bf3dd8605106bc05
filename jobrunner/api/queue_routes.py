"""/queues: each queue's controls and counts; admins pause, resume, limit and open queues.

Thin: each route calls jobrunner.queues once. Controls are read fresh (an admin sees the
change just made); the counts behind them are read at most once per COUNTS_TTL seconds
however many admins ask, each state counted up to queues.COUNT_CAP along its own partial index.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from jobrunner import queues
from jobrunner.api.deps import AdminDep, ConnDep, PrincipalDep, SettingsDep
from jobrunner.api.job_metrics import SingleFlight
from jobrunner.api.schemas import QueuePublic, QueueUpdate
from jobrunner.db.pool import Pool
from jobrunner.models import QueueControls, QueueCounts

router = APIRouter(prefix="/queues", tags=["queues"])

COUNTS_TTL = 2.0
QueueName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{3,64}$")]
ADMIN_ONLY: dict[int | str, dict[str, Any]] = {403: {"description": "Admins only"}}


class QueueCountsCache:
    """Every queue's unfinished jobs per state, read at most once per COUNTS_TTL seconds."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self.cached: SingleFlight[dict[str, QueueCounts]] = SingleFlight(self._read, COUNTS_TTL)

    async def get(self) -> dict[str, QueueCounts]:
        return await self.cached.get()

    async def _read(self) -> dict[str, QueueCounts]:
        async with self._pool.acquire() as conn:
            return await queues.live_counts(conn)


async def _public(request: Request, queue: QueueControls) -> QueuePublic:
    cache: QueueCountsCache = request.app.state.queue_counts
    counts = (await cache.get()).get(queue.name) or queues.no_counts(queue.name, queues.COUNT_CAP)
    return QueuePublic.of(queue, counts, admin=True)


@router.get("")
async def list_queues(
    request: Request, me: PrincipalDep, conn: ConnDep, settings: SettingsDep
) -> list[QueuePublic]:
    """Admins: every queue with controls or unfinished jobs, with every user's job counts
    (each state up to 100,000, at most two seconds old). Users: the queues they may submit
    to, with their own unfinished jobs."""
    if me.is_admin:
        cache: QueueCountsCache = request.app.state.queue_counts
        views = await queues.list_all(conn, await cache.get())
    else:
        cap = settings.max_unfinished_jobs_per_user
        views = await queues.list_open(conn, me.username, max_jobs=cap)
    return [QueuePublic.of(v.controls, v.counts, admin=me.is_admin) for v in views]


@router.put("/{name}", responses={**ADMIN_ONLY, 422: {}})
async def set_queue(
    name: QueueName, body: QueueUpdate, request: Request, me: AdminDep, conn: ConnDep
) -> QueuePublic:
    """Create the queue's controls or change them: a field left out stays, a limit set to
    null is removed. Every worker obeys the change at its next claim (within a second)."""
    changed = await queues.change(conn, name, body.changes(), by=me.username)
    return await _public(request, changed)


@router.post("/{name}/pause", responses=ADMIN_ONLY)
async def pause_queue(
    name: QueueName, request: Request, me: AdminDep, conn: ConnDep
) -> QueuePublic:
    """No worker starts this queue's jobs until it is resumed; running ones run on."""
    return await _public(request, await queues.pause(conn, name, by=me.username))


@router.post("/{name}/resume", responses=ADMIN_ONLY)
async def resume_queue(
    name: QueueName, request: Request, me: AdminDep, conn: ConnDep
) -> QueuePublic:
    """Workers start this queue's jobs again (its doorbell rings: idle ones look at once)."""
    return await _public(request, await queues.resume(conn, name, by=me.username))


@router.put(
    "/{name}/users/{username}",
    responses={**ADMIN_ONLY, 404: {"description": "No such user"}},
)
async def grant_queue(
    name: QueueName, username: UserName, request: Request, me: AdminDep, conn: ConnDep
) -> QueuePublic:
    """Open the queue to this user (besides the queues open to all)."""
    return await _public(request, await queues.grant(conn, name, username, by=me.username))


@router.delete(
    "/{name}/users/{username}",
    status_code=204,
    response_class=Response,
    responses={**ADMIN_ONLY, 404: {"description": "The queue was not opened to this user"}},
)
async def revoke_queue(name: QueueName, username: UserName, _: AdminDep, conn: ConnDep) -> None:
    """Close the queue to this user again (a queue open to all stays open to them)."""
    await queues.revoke(conn, name, username)
