"""Rate limits kept in PostgreSQL, so every API process draws from the same buckets.

A bucket holds up to `burst` tokens and refills `per_minute` a minute; each request takes one
token in a single upsert (submissions under generous limits take a few at a time, see
SubmitTokensAhead). An empty bucket answers 429 with the seconds until the next token.
"""

from __future__ import annotations

import time

from jobrunner import accounts
from jobrunner.accounts import TokenPair
from jobrunner.api.problems import ApiProblem, too_many
from jobrunner.auth import TokenCodec
from jobrunner.db import queries
from jobrunner.db.pool import Conn, Pool
from jobrunner.settings import Settings

# One address may serve many people (an office behind NAT): it gets this many times the
# per-account login allowance.
ADDRESS_LOGIN_FACTOR = 5


async def take(conn: Conn, bucket: queries.RateBucket, what: str) -> None:
    """Take one token from `bucket`, or raise a 429 saying when to come back."""
    if not await queries.rate_bucket_take(conn, bucket):
        raise await refuse(conn, bucket, what)


async def refuse(conn: Conn, bucket: queries.RateBucket, what: str) -> ApiProblem:
    """The 429 for an empty bucket, saying when its next token comes."""
    wait = await queries.rate_bucket_wait(conn, key=bucket.key, per_second=bucket.per_second)
    return too_many(f"too many {what}; try again later", wait)


SUBMISSIONS = "job submissions"


def submit_bucket(settings: Settings, username: str) -> queries.RateBucket:
    return queries.RateBucket(
        key=f"submit:{username}",
        per_second=settings.submit_rate_per_minute / 60.0,
        burst=settings.submit_burst,
    )


class SubmitTokensAhead:
    """Submission tokens this API process took ahead from users' buckets.

    Taking a token writes the bucket's row: once per submission, that write was a third of
    the database's work for a submit. When a user's limits allow at least
    SUBMITS_TO_TAKE_AHEAD a second, a submission that finds no token here takes a tenth of a
    second's worth (at most MAX_AHEAD, at most a tenth of the burst) and the next ones spend
    them without touching the bucket. The limit stays exact across processes: every token
    spent was taken from the shared bucket. Tokens left after HOLD_SECONDS lapse unspent, so
    a process never banks more than one batch per user. With the default limits (10 a
    second) every submission takes its own token, as before.
    """

    HOLD_SECONDS = 1.0
    MAX_AHEAD = 50
    SUBMITS_TO_TAKE_AHEAD = 20.0  # a second: below this a batch would be a single token anyway
    MAX_REMEMBERED = 10_000

    def __init__(self, settings: Settings) -> None:
        per_second = settings.submit_rate_per_minute / 60.0
        self.size = 1
        if per_second >= self.SUBMITS_TO_TAKE_AHEAD:
            self.size = max(
                1, min(self.MAX_AHEAD, int(per_second / 10), settings.submit_burst // 10)
            )
        self._held: dict[str, tuple[int, float]] = {}  # user -> (tokens, taken at)

    def spend(self, username: str) -> bool:
        """Spend one token held for this user; False when none is (take from the bucket)."""
        held = self._held.get(username)
        if held is None:
            return False
        tokens, taken_at = held
        if tokens < 1 or time.monotonic() - taken_at > self.HOLD_SECONDS:
            del self._held[username]
            return False
        self._held[username] = (tokens - 1, taken_at)
        return True

    def keep(self, username: str, tokens: int) -> None:
        """Hold `tokens` just taken from the bucket for this user's next submissions."""
        if tokens < 1:
            self._held.pop(username, None)
            return
        if len(self._held) >= self.MAX_REMEMBERED:
            self._held.clear()  # lapsing early only returns to a token per submission
        self._held[username] = (tokens, time.monotonic())


async def check_submit(conn: Conn, settings: Settings, username: str) -> None:
    await take(conn, submit_bucket(settings, username), SUBMISSIONS)


async def charge_more(conn: Conn, settings: Settings, username: str, jobs: int) -> None:
    """Charge a submission of `jobs` jobs (a graph), one of which the request paid already:
    as many submissions again, up to the burst (a graph larger than the burst could never
    pass otherwise). An empty bucket answers 429; the tokens taken are spent even so."""
    want = min(jobs, settings.submit_burst) - 1
    if want < 1:
        return
    bucket = submit_bucket(settings, username)
    if await queries.rate_bucket_take_upto(conn, bucket, want) < want:
        raise await refuse(conn, bucket, SUBMISSIONS)


async def charge_resubmission(
    conn: Conn, settings: Settings, unfinished: UnfinishedJobs, username: str
) -> None:
    """Charge a retry like a submission: a token from the submit bucket, then room under the
    unfinished-jobs cap. Otherwise cancel-and-retry cycles got round both."""
    await check_submit(conn, settings, username)
    await unfinished.admit(conn, username, cap=settings.max_unfinished_jobs_per_user)


def _login_bucket(key: str, per_minute: int) -> queries.RateBucket:
    return queries.RateBucket(key, per_minute / 60.0, per_minute)


async def login(
    conn: Conn, codec: TokenCodec, settings: Settings, *, username: str, password: str,
    address: str,
) -> TokenPair:  # fmt: skip
    """Log in under the login limits; the API's and the dashboard's forms both come here.

    The address pays first, before the password hash is computed, so guessing costs the
    guesser and not our CPU. The account pays only for a wrong password: charging it for
    every attempt let anyone lock an owner out of their account without knowing anything.
    Once an account's bucket is empty, wrong passwords answer 429 (slow down) instead of
    401, while the right password from an address with tokens left still logs in.
    """
    per_minute = settings.login_attempts_per_minute
    by_address = _login_bucket(f"login-addr:{address}", per_minute * ADDRESS_LOGIN_FACTOR)
    await take(conn, by_address, "login attempts from this address")
    try:
        return await accounts.login(conn, codec, username=username, password=password)
    except accounts.LoginFailed:
        by_account = _login_bucket(f"login-user:{username}", per_minute)
        await take(conn, by_account, "failed login attempts for this account")
        raise


def quota_exceeded(cap: int) -> ApiProblem:
    return too_many(f"you have {cap} unfinished jobs, the most allowed; wait for some to end", 5)


class UnfinishedJobs:
    """Each user's unfinished jobs, counted in the database only when it matters.

    A count costs one index entry per unfinished job, so it is not paid on every submission:
    below half the cap, a count stays good for RECOUNT_AFTER seconds, with this process's
    submissions since added to it. Finished jobs only lower the true figure, so the estimate
    errs towards counting again. Near the cap every submission counts. Racing submissions are
    not serialised: the cap can be passed by the requests in flight at that moment, which is
    all an abuse guard needs, and it keeps one user's burst from queueing behind a lock.
    """

    RECOUNT_AFTER = 1.0
    MAX_REMEMBERED = 10_000

    def __init__(self) -> None:
        self._counted: dict[str, tuple[int, float]] = {}  # user -> (estimate, counted at)

    async def admit_many(self, conn: Conn | Pool, username: str, *, cap: int, jobs: int) -> None:
        """Raise a 429 unless `username` has room for `jobs` more unfinished jobs (always
        counted: a graph is rare and large)."""
        count = await queries.job_count_unfinished(conn, owner=username, cap=cap)
        if count + jobs > cap:
            raise quota_exceeded(cap)
        self._counted[username] = (count + jobs, time.monotonic())

    async def admit(self, conn: Conn | Pool, username: str, *, cap: int) -> None:
        """Raise a 429 if `username` has `cap` unfinished jobs; else count one more."""
        now = time.monotonic()
        known = self._counted.get(username)
        if known is not None:
            estimate, counted_at = known
            if estimate + 1 < cap // 2 and now - counted_at < self.RECOUNT_AFTER:
                self._counted[username] = (estimate + 1, counted_at)
                return
        count = await queries.job_count_unfinished(conn, owner=username, cap=cap)
        if count >= cap:
            raise quota_exceeded(cap)
        if len(self._counted) >= self.MAX_REMEMBERED:
            self._counted.clear()  # an estimate is only a shortcut: forgetting costs a count
        self._counted[username] = (count + 1, now)
