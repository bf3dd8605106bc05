"""/workers: the worker registry, for admins (it names every host and queue)."""

from __future__ import annotations

from fastapi import APIRouter

from jobrunner import fleet
from jobrunner.api.deps import AdminDep, ConnDep, SettingsDep
from jobrunner.api.schemas import WorkerPublic

router = APIRouter(tags=["operations"])


@router.get("/workers", responses={401: {}, 403: {"description": "Admins only"}})
async def list_workers(_: AdminDep, conn: ConnDep, settings: SettingsDep) -> list[WorkerPublic]:
    """Worker processes of the last JOBRUNNER_WORKER_RETENTION seconds (up to 500), live ones
    first, each with its queues, the tasks it knows and the jobs it runs now."""
    workers = await fleet.list_workers(conn, seen_timeout=settings.worker_seen_timeout)
    return [WorkerPublic.of(w) for w in workers]
