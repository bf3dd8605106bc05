"""jobrunner: a broker-free background job runner. PostgreSQL is the only queue."""

from jobrunner.client import close, configure, enqueue, enqueue_many
from jobrunner.context import JobContext, current_job
from jobrunner.dependencies import parent_result, parent_results
from jobrunner.errors import Cancel, JobrunnerError, Retry
from jobrunner.graph import chain, group, step
from jobrunner.models import Job, JobState, ParentResult
from jobrunner.options import Backoff
from jobrunner.tasks import task

__all__ = [
    "Backoff",
    "Cancel",
    "Job",
    "JobContext",
    "JobState",
    "JobrunnerError",
    "ParentResult",
    "Retry",
    "chain",
    "close",
    "configure",
    "current_job",
    "enqueue",
    "enqueue_many",
    "group",
    "parent_result",
    "parent_results",
    "step",
    "task",
]
