"""POST /jobs/bulk: cancel, retry or delete every job a filter matches (jobrunner.bulk).

Thin: the rules (tenancy, the per-call cap, a user's retries charged as submissions) are
jobrunner.api.bulk_rules', which the dashboard's bulk form follows too.
"""

from __future__ import annotations

from fastapi import APIRouter

from jobrunner.api import bulk_rules
from jobrunner.api.bulk_schemas import BulkCreate, BulkPublic
from jobrunner.api.deps import ConnDep, PrincipalDep, SettingsDep

router = APIRouter(tags=["jobs"])


@router.post("/jobs/bulk", responses={422: {}, 429: {}})
async def bulk_action(
    body: BulkCreate, me: PrincipalDep, conn: ConnDep, settings: SettingsDep
) -> BulkPublic:
    """Act on every job of yours (every job, for admins) that `filter` matches: `cancel`
    unfinished ones, `retry` failed or cancelled ones, `delete` finished ones. With `dry_run`
    it only counts them. One call reads a capped number of jobs: when `complete` is false,
    send `next_cursor` back as `cursor`. Each call is audited (jobrunner.bulk_actions)."""
    result = await bulk_rules.act(
        conn,
        settings,
        me,
        action=body.action,
        where=body.filter.job_filter(),
        dry_run=body.dry_run,
        after=body.cursor,
    )
    return BulkPublic.of(result)
