"""What engine tests share besides fixtures: starting workers, and telling a job has ended."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jobrunner.models import Job
from jobrunner.worker.worker import Worker

StartWorker = Callable[..., Awaitable[Worker]]


def terminal(job: Job) -> bool:
    return job.state.is_terminal
