-- The HTTP API's own state: login sessions with rotating refresh tokens, rate-limit buckets
-- shared by every API process, and idempotency keys of job submissions.

-- A session is one login: the family of refresh tokens it hands out. Access tokens name their
-- session, so revoking it (logout, or a refresh token presented twice) ends them all at once.
CREATE TABLE jobrunner.sessions (
    id          uuid PRIMARY KEY DEFAULT jobrunner.uuid_v7(),
    username    text NOT NULL REFERENCES jobrunner.users (username) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_username_idx ON jobrunner.sessions (username);

-- Each refresh token may be used once; using one again revokes its whole session.
CREATE TABLE jobrunner.refresh_tokens (
    jti         uuid PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES jobrunner.sessions (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON jobrunner.refresh_tokens (session_id);

-- Token buckets ('submit:<user>', 'login-user:<name>', 'login-addr:<ip>'), each updated in one
-- statement, so several API processes share one limit.
CREATE TABLE jobrunner.rate_buckets (
    key         text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A submission retried with the same Idempotency-Key returns the job it made the first time.
-- No foreign key to jobs: a pruned job must not take its key with it before the key expires.
CREATE TABLE jobrunner.idempotency_keys (
    owner         text NOT NULL REFERENCES jobrunner.users (username) ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  text NOT NULL,
    job_id        uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, key)
);

-- A user's unfinished jobs, counted (with a cap) at every submission.
CREATE INDEX jobs_owner_live_idx ON jobrunner.jobs (owner)
    WHERE owner IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');
-- A user's history, newest first.
CREATE INDEX jobs_owner_finished_idx ON jobrunner.jobs (owner, finished_at, id)
    WHERE owner IS NOT NULL AND state IN ('succeeded', 'failed', 'cancelled');
