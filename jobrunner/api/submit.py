"""Submitting a job over HTTP: queue access (api.queue_access), a queue some worker serves
(api.served), unfinished-job cap and idempotency, then enqueue (the caller has taken the
submission from the user's rate bucket).

Nothing here serialises one user's submissions: a user's burst must not queue behind a
lock. A plain submission goes to the SubmitBatcher, which checks its session and inserts it
together with whatever other submissions are waiting; one that names parents (depends_on) is
written on its own, so a parent refused to it fails no one else's batch. With an
Idempotency-Key, the job and its key are written in one transaction and the key's primary
key decides a race: the loser's transaction rolls back (its job with it) and it answers with
the winner's job. Bad input raises before anything is written.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from uuid import UUID

from jobrunner import accounts, client, webhooks
from jobrunner.api import limits
from jobrunner.api.problems import ApiProblem
from jobrunner.api.queue_access import QueueAccess
from jobrunner.api.schemas import JobCreate
from jobrunner.api.served import ServedQueues
from jobrunner.api.submit_batch import SubmitBatcher
from jobrunner.auth import TokenCodec
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.errors import UnknownTask
from jobrunner.job_rows import JobRows, insert_one, make_rows
from jobrunner.models import Job
from jobrunner.settings import Settings

IDEMPOTENCY_TTL = 24 * 3600.0
INTERNAL_TASK_PREFIX = "jobrunner."


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who submits: the user and session an access token names, who has spent a submission
    from their rate bucket. `session_checked`: the session was found live on the way; when
    not, the submission's own statement checks it."""

    username: str
    session_id: UUID
    session_checked: bool


@dataclass(frozen=True, slots=True)
class SubmitContext:
    """What a submission needs of the API process: its pool, token codec and shared state."""

    pool: Pool
    codec: TokenCodec
    tokens_ahead: limits.SubmitTokensAhead
    unfinished: limits.UnfinishedJobs
    batcher: SubmitBatcher
    served: ServedQueues
    access: QueueAccess


async def take_submission(ctx: SubmitContext, settings: Settings, token: str) -> Submitter:
    """Check an access token and spend a submission from its user's rate bucket. A token this
    process took for them ahead (limits.SubmitTokensAhead) is spent without a round trip, and
    the submission's own statement checks the session; otherwise one round trip checks the
    session and takes tokens from the bucket. No connection is held afterwards: a plain
    submission waits for its batch without one."""
    claims = ctx.codec.decode(token, "access")
    if ctx.tokens_ahead.spend(claims.sub):
        return Submitter(claims.sub, claims.sid, session_checked=False)
    bucket_of = functools.partial(limits.submit_bucket, settings)
    async with ctx.pool.acquire() as conn:
        principal, taken = await accounts.authenticate_and_take(
            conn, ctx.codec, token, bucket_of, ctx.tokens_ahead.size
        )
        if not taken:
            raise await limits.refuse(conn, bucket_of(principal.username), limits.SUBMISSIONS)
    ctx.tokens_ahead.keep(principal.username, taken - 1)
    return Submitter(principal.username, principal.session_id, session_checked=True)


class _KeyTakenMeanwhile(Exception):
    """Another submission with our Idempotency-Key committed first: roll ours back."""


def request_hash(body: JobCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def submit_job(
    ctx: SubmitContext,
    settings: Settings,
    me: Submitter,
    body: JobCreate,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """The job, and whether it was made earlier by the same Idempotency-Key. The caller has
    taken the submission from the user's rate bucket already."""
    check_submittable(body.task, body.callback_url, settings)
    job = make_rows(body.task, [body.args], body.options(owner=me.username))
    await ctx.access.check(me.username, job.queue, body.priority)
    cap = settings.max_unfinished_jobs_per_user
    if idempotency_key is None:
        await ctx.served.require(job.queue, me)
        await ctx.unfinished.admit(ctx.pool, me.username, cap=cap)
        if job.parents:
            return await _submit_alone(ctx, me, job), False
        return (
            await ctx.batcher.submit(me.session_id, job, session_checked=me.session_checked),
            False,
        )
    async with ctx.pool.acquire() as conn:
        if not me.session_checked:
            await accounts.live_session(conn, username=me.username, session_id=me.session_id)
        return await _submit_once(conn, ctx, cap, me, body, job, idempotency_key)


async def _submit_once(
    conn: Conn,
    ctx: SubmitContext,
    cap: int,
    me: Submitter,
    body: JobCreate,
    job: JobRows,
    idempotency_key: str,
) -> tuple[Job, bool]:
    earlier = await _replay(conn, me, body, idempotency_key)
    if earlier is not None:
        return earlier, True
    await ctx.served.require(job.queue, me, conn)  # after a replay: the job exists already
    await ctx.unfinished.admit(conn, me.username, cap=cap)
    try:
        async with conn.transaction():
            inserted = await insert_one(conn, job)
            claimed = await queries.idempotency_key_claim(
                conn,
                owner=me.username,
                key=idempotency_key,
                request_hash=request_hash(body),
                job_id=inserted.id,
                ttl=IDEMPOTENCY_TTL,
            )
            if not claimed:
                raise _KeyTakenMeanwhile()
    except _KeyTakenMeanwhile:
        earlier = await _replay(conn, me, body, idempotency_key)
        if earlier is None:  # the winner's job is gone already (cancelled, then pruned)
            raise ApiProblem(409, "this Idempotency-Key was just used; retry later") from None
        return earlier, True
    return inserted, False


async def _submit_alone(ctx: SubmitContext, me: Submitter, job: JobRows) -> Job:
    async with ctx.pool.acquire() as conn:
        if not me.session_checked:
            await accounts.live_session(conn, username=me.username, session_id=me.session_id)
        return await insert_one(conn, job)


def check_submittable(task: str, callback_url: str | None, settings: Settings) -> None:
    """What a user may not submit, whatever the queue: jobrunner's own tasks, and callback
    URLs jobrunner will not call."""
    if task.startswith(INTERNAL_TASK_PREFIX):
        raise UnknownTask(task)  # jobrunner's own tasks are not for submitting by hand
    if callback_url is not None:
        _check_callback(callback_url, settings)


def _check_callback(url: str, settings: Settings) -> None:
    try:
        webhooks.check_url_syntax(url, webhooks.allowed_networks(settings.webhook_allowed_networks))
    except webhooks.UnsafeUrl as exc:
        raise ApiProblem(422, f"callback_url {exc}") from None


async def _replay(conn: Conn, me: Submitter, body: JobCreate, key: str) -> Job | None:
    earlier = await queries.idempotency_key_get(
        conn, owner=me.username, key=key, ttl=IDEMPOTENCY_TTL
    )
    if earlier is None:
        return None
    hashed, job_id = earlier
    if hashed != request_hash(body):
        raise ApiProblem(409, "this Idempotency-Key was used with a different request")
    return await client.get_job(job_id, conn=conn, user=me.username, admin=False)
