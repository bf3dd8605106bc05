-- The queue itself: one row per job, readable in psql with `\dt jobrunner.*`.
CREATE SCHEMA IF NOT EXISTS jobrunner;

-- Terminal states are succeeded, failed and cancelled; a job reaches exactly one of them.
CREATE TYPE jobrunner.job_state AS ENUM (
    'scheduled',  -- run_at is in the future
    'queued',     -- ready to be claimed
    'running',    -- claimed by worker_id, held until lease_expires_at
    'retrying',   -- an attempt failed; waiting out its backoff until run_at
    'succeeded',
    'failed',     -- attempts exhausted, or failed for good
    'cancelled'
);

-- Time-ordered UUIDs (version 7): ids sort by creation, so the primary key index stays
-- append-mostly and "newest first" pages read the index backwards. Plain SQL so operators
-- inserting rows by hand get the same ids; PostgreSQL 18's uuidv7() does the same natively.
CREATE FUNCTION jobrunner.uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

-- API accounts. Jobs name their owner by username so psql output reads without a join.
CREATE TABLE jobrunner.users (
    username        text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9_.-]{3,64}$'),
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobrunner.jobs (
    id                uuid PRIMARY KEY DEFAULT jobrunner.uuid_v7(),
    queue             text NOT NULL DEFAULT 'default' CHECK (length(queue) BETWEEN 1 AND 128),
    task              text NOT NULL CHECK (length(task) BETWEEN 1 AND 256),
    args              jsonb NOT NULL DEFAULT '{}',
    priority          smallint NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    state             jobrunner.job_state NOT NULL DEFAULT 'queued',
    attempt           integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 1000),
    run_at            timestamptz NOT NULL DEFAULT now(),
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,          -- start of the current (or last) attempt
    finished_at       timestamptz,          -- set exactly when the state is terminal
    worker_id         text,                 -- who holds (or last held) the current attempt
    lease_expires_at  timestamptz,          -- a running job whose lease passed is rescued
    timeout           interval CHECK (timeout > interval '0'),
    cancel_requested_at timestamptz,        -- a running job asked to stop; its worker obeys
    result            jsonb,
    errors            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(errors) = 'array'),
    dedup_key         text CHECK (length(dedup_key) BETWEEN 1 AND 256),
    owner             text REFERENCES jobrunner.users (username),
    callback_url      text CHECK (length(callback_url) <= 2048),

    CONSTRAINT finished_exactly_when_terminal CHECK (
        (finished_at IS NOT NULL) = (state IN ('succeeded', 'failed', 'cancelled'))),
    CONSTRAINT running_has_worker_and_lease CHECK (
        state <> 'running'
        OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL AND started_at IS NOT NULL)),
    CONSTRAINT result_only_when_succeeded CHECK (result IS NULL OR state = 'succeeded'),
    CONSTRAINT attempts_within_limit CHECK (attempt <= max_attempts)
);

COMMENT ON TABLE jobrunner.jobs IS 'One row per job. errors holds every failed attempt, oldest first.';

-- The claim: per queue, highest priority first, then oldest run_at. Partial, so it only
-- holds ready jobs and stays small however many finished or scheduled rows the table has.
CREATE INDEX jobs_claim_idx ON jobrunner.jobs (queue, priority DESC, run_at, id)
    WHERE state = 'queued';
-- Maintenance: scheduled and retrying jobs that come due, and leases that expire.
CREATE INDEX jobs_due_idx ON jobrunner.jobs (run_at) WHERE state IN ('scheduled', 'retrying');
CREATE INDEX jobs_lease_idx ON jobrunner.jobs (lease_expires_at) WHERE state = 'running';
-- History (newest first) and pruning (oldest first) of finished jobs.
CREATE INDEX jobs_finished_idx ON jobrunner.jobs (finished_at)
    WHERE state IN ('succeeded', 'failed', 'cancelled');
-- One live job per dedup key and task.
CREATE UNIQUE INDEX jobs_dedup_idx ON jobrunner.jobs (task, dedup_key)
    WHERE dedup_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled');
-- A user's own jobs, newest first.
CREATE INDEX jobs_owner_idx ON jobrunner.jobs (owner, id) WHERE owner IS NOT NULL;

-- Finished jobs, newest first, as the API's /history and operators read them.
CREATE VIEW jobrunner.history AS
SELECT id, queue, task, state, attempt, max_attempts, owner,
       created_at, started_at, finished_at,
       finished_at - started_at AS run_duration,
       finished_at - created_at AS total_duration,
       result,
       errors -> -1 ->> 'error' AS last_error
FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
ORDER BY finished_at DESC, id DESC;

-- Periodic (cron) tasks: the last tick enqueued, so each tick becomes exactly one job.
CREATE TABLE jobrunner.periodic_ticks (
    task        text PRIMARY KEY,
    last_tick   timestamptz NOT NULL
);

-- Outcomes per minute and queue, written with each batch of outcomes, so throughput charts
-- never count the jobs table.
CREATE TABLE jobrunner.throughput (
    minute      timestamptz NOT NULL,
    queue       text NOT NULL,
    succeeded   bigint NOT NULL DEFAULT 0,
    failed      bigint NOT NULL DEFAULT 0,
    retried     bigint NOT NULL DEFAULT 0,
    cancelled   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (minute, queue)
);
