"""`progress` events of a job's event stream (jobrunner.api.events), from what its handler
last reported (jobrunner.progress), in time order with the state events."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from jobrunner.models import JobProgress
from jobrunner.progress import Progress

if TYPE_CHECKING:
    from jobrunner.api.events import JobEvent


def render_progress(job: JobProgress, progress: Progress) -> str:
    """A `progress` event. It has no `id:`: ids count state changes, so Last-Event-ID still
    resumes those, and a resumed stream is sent the latest progress again."""
    data = {
        "id": str(job.id),
        "attempt": job.attempt,
        "progress": progress.fraction,
        "message": progress.message,
        "data": progress.data,
        "at": progress.at.isoformat(),
    }
    return f"event: progress\ndata: {json.dumps(data)}\n\n"


def in_time_order(job: JobProgress, events: list[JobEvent], progress: Progress | None) -> list[str]:
    """State events and the new progress (if any) as SSE text, the progress after the state
    changes that came before it was written (a final report before `succeeded`)."""
    if progress is None:
        return [e.render(job.id) for e in events]
    before = [e for e in events if e.at is None or e.at <= progress.at]
    after = events[len(before) :]
    return [
        *(e.render(job.id) for e in before),
        render_progress(job, progress),
        *(e.render(job.id) for e in after),
    ]
