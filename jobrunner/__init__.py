"""jobrunner: a broker-free background job runner. PostgreSQL is the only queue."""

from jobrunner.client import close, configure, enqueue, enqueue_many
from jobrunner.context import JobContext, current_job
from jobrunner.errors import Cancel, JobrunnerError, Retry
from jobrunner.models import Job, JobState
from jobrunner.options import Backoff
from jobrunner.tasks import task

__all__ = [
    "Backoff",
    "Cancel",
    "Job",
    "JobContext",
    "JobState",
    "JobrunnerError",
    "Retry",
    "close",
    "configure",
    "current_job",
    "enqueue",
    "enqueue_many",
    "task",
]
