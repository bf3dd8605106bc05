"""Submitting a job over HTTP: unfinished-job cap and idempotency, then enqueue (the caller
has taken the submission from the user's rate bucket).

Nothing here serialises one user's submissions: a user's burst must not queue behind a
lock. A plain submission is one INSERT. With an Idempotency-Key, the job and its key are
written in one transaction and the key's primary key decides a race: the loser's transaction
rolls back (its job with it) and it answers with the winner's job. Bad input raises before
anything is written.
"""

from __future__ import annotations

import hashlib
import json

from jobrunner import client, webhooks
from jobrunner.accounts import Principal
from jobrunner.api import limits
from jobrunner.api.problems import ApiProblem
from jobrunner.api.schemas import JobCreate
from jobrunner.db import queries
from jobrunner.db.pool import Conn
from jobrunner.doorbell import Doorbell
from jobrunner.errors import UnknownTask
from jobrunner.models import Job
from jobrunner.settings import Settings

IDEMPOTENCY_TTL = 24 * 3600.0
INTERNAL_TASK_PREFIX = "jobrunner."


class _KeyTakenMeanwhile(Exception):
    """Another submission with our Idempotency-Key committed first: roll ours back."""


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit_job(
    conn: Conn,
    settings: Settings,
    me: Principal,
    body: JobCreate,
    idempotency_key: str | None,
    unfinished: limits.UnfinishedJobs,
) -> tuple[Job, bool]:
    """The job, and whether it was made earlier by the same Idempotency-Key. The caller has
    taken the submission from the user's rate bucket already."""
    if body.task.startswith(INTERNAL_TASK_PREFIX):
        raise UnknownTask(body.task)  # jobrunner's own tasks are not for submitting by hand
    if body.callback_url is not None:
        _check_callback(body.callback_url, settings)
    if idempotency_key is not None:
        earlier = await _replay(conn, me, body, idempotency_key)
        if earlier is not None:
            return earlier, True
    await unfinished.admit(conn, me.username, cap=settings.max_unfinished_jobs_per_user)
    if idempotency_key is None:  # one statement, committed at once: ring after it
        return await _enqueue(conn, me, body, client.default_doorbell()), False
    try:
        async with conn.transaction():
            job = await _enqueue(conn, me, body)
            claimed = await queries.idempotency_key_claim(
                conn,
                owner=me.username,
                key=idempotency_key,
                request_hash=request_hash(body),
                job_id=job.id,
                ttl=IDEMPOTENCY_TTL,
            )
            if not claimed:
                raise _KeyTakenMeanwhile()
    except _KeyTakenMeanwhile:
        earlier = await _replay(conn, me, body, idempotency_key)
        if earlier is None:  # the winner's job is gone already (cancelled, then pruned)
            raise ApiProblem(409, "this Idempotency-Key was just used; retry later") from None
        return earlier, True
    return job, False


async def _enqueue(
    conn: Conn, me: Principal, body: JobCreate, doorbell: Doorbell | None = None
) -> Job:
    return await client.enqueue(
        body.task,
        body.args,
        conn=conn,
        delay=body.delay_seconds,
        run_at=body.run_at,
        priority=body.priority,
        queue=body.queue,
        max_attempts=body.max_attempts,
        timeout=body.timeout_seconds,
        owner=me.username,
        callback_url=body.callback_url,
        doorbell=doorbell,
    )


def _check_callback(url: str, settings: Settings) -> None:
    try:
        webhooks.check_url_syntax(url, webhooks.allowed_networks(settings.webhook_allowed_networks))
    except webhooks.UnsafeUrl as exc:
        raise ApiProblem(422, f"callback_url {exc}") from None


async def _replay(conn: Conn, me: Principal, body: JobCreate, key: str) -> Job | None:
    earlier = await queries.idempotency_key_get(
        conn, owner=me.username, key=key, ttl=IDEMPOTENCY_TTL
    )
    if earlier is None:
        return None
    hashed, job_id = earlier
    if hashed != request_hash(body):
        raise ApiProblem(409, "this Idempotency-Key was used with a different request")
    return await client.get_job(job_id, conn=conn, user=me.username, admin=False)
