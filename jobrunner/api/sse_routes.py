"""GET /jobs/{id}/events: a job's state changes as server-sent events."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from jobrunner import client
from jobrunner.api.deps import ConnDep, PrincipalDep
from jobrunner.api.events import EventHub

router = APIRouter(tags=["jobs"])

LastEventId = Annotated[int | None, Header(ge=-1)]


EXAMPLE = (
    'id: 0\nevent: queued\ndata: {"id": "...", "state": "queued", "attempt": 0}\n\n'
    'id: 1\nevent: running\ndata: {"id": "...", "state": "running", "attempt": 1}\n\n'
)


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"example": EXAMPLE}}},
        404: {"description": "No such job, or not yours"},
        429: {"description": "Too many streams open (yours, or this server's)"},
    },
)
async def job_events(
    job_id: UUID,
    request: Request,
    me: PrincipalDep,
    conn: ConnDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """One event per state change, ending after a terminal state. Reconnect with the
    `Last-Event-ID` header to resume after the last event you saw. A stream also ends when
    your session does (logout), and after `JOBRUNNER_SSE_MAX_STREAM_SECONDS` with a `retry:`
    hint: EventSource reconnects by itself."""
    hub: EventHub = request.app.state.events
    rings_seen = hub.rings
    job = await client.get_job(job_id, conn=conn, user=me.username, admin=me.is_admin)
    return StreamingResponse(
        hub.open(job, me, last_event_id, rings_seen=rings_seen),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
