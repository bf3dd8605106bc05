"""POST /jobs/bulk: cancel, retry or delete every job a filter matches (jobrunner.bulk).

Users act on their own jobs, admins on every user's, as with single jobs. One call reads at
most MAX_JOBS_PER_CALL jobs, in batches of jobrunner.bulk.BATCH_SIZE each committed on its
own, and answers `next_cursor` when there is more: a million-job action is many short calls,
so it neither holds a connection for minutes nor keeps other users' requests waiting. A
user's retries count as submissions, as POST /jobs/{id}/retry's do: each batch takes tokens
from their submit bucket and needs room under their unfinished-jobs cap, and the action stops
where those run out (a 429 when not one job could be retried).
"""

from __future__ import annotations

from fastapi import APIRouter

from jobrunner import bulk
from jobrunner.api import limits
from jobrunner.api.bulk_schemas import BulkCreate, BulkPublic
from jobrunner.api.deps import ConnDep, PrincipalDep, SettingsDep
from jobrunner.api.problems import ApiProblem
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.settings import Settings

router = APIRouter(tags=["jobs"])

MAX_JOBS_PER_CALL = 10_000


@router.post("/jobs/bulk", responses={422: {}, 429: {}})
async def bulk_action(
    body: BulkCreate, me: PrincipalDep, conn: ConnDep, settings: SettingsDep
) -> BulkPublic:
    """Act on every job of yours (every job, for admins) that `filter` matches: `cancel`
    unfinished ones, `retry` failed or cancelled ones, `delete` finished ones. With `dry_run`
    it only counts them. Each call is audited (jobrunner.bulk_actions)."""
    request = bulk.BulkRequest(
        action=body.action,
        where=body.filter.job_filter(),
        dry_run=body.dry_run,
        after=body.cursor,
        max_jobs=MAX_JOBS_PER_CALL,
    )
    charged = None
    if body.action == "retry" and not me.is_admin:
        charged = _Resubmissions(conn, settings, me.username)
    result = await bulk.run(
        conn,
        request,
        actor=me.username,
        user=me.username,
        admin=me.is_admin,
        allowance=charged.allow if charged else None,
    )
    if charged is not None and result.jobs == 0 and result.stopped_by == "allowance":
        raise await charged.refusal()
    return BulkPublic.of(result)


class _Resubmissions:
    """A user's bulk retry, charged like single retries: each batch may retry as many jobs
    as there is room for under the unfinished-jobs cap and tokens in the submit bucket (the
    tokens taken are spent even if a job changed state meanwhile)."""

    def __init__(self, conn: Conn, settings: Settings, username: str) -> None:
        self._conn, self._username = conn, username
        self._cap = settings.max_unfinished_jobs_per_user
        self._bucket = limits.submit_bucket(settings, username)
        self._full = False

    async def allow(self, want: int) -> int:
        unfinished = await queries.job_count_unfinished(
            self._conn, owner=self._username, cap=self._cap
        )
        room = min(want, self._cap - unfinished)
        if room < 1:
            self._full = True
            return 0
        return await queries.rate_bucket_take_upto(self._conn, self._bucket, room)

    async def refusal(self) -> ApiProblem:
        if self._full:
            return limits.quota_exceeded(self._cap)
        return await limits.refuse(self._conn, self._bucket, limits.SUBMISSIONS)
