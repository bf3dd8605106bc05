-- Fair share (issue 13): whose turn a job is, queue controls and who may submit where.

-- Whose turn a job belongs to when workers take turns between owners: the API sets it to the
-- owner; the library to the fairness key it was given, or '' (one shared group) without one.
-- Collation "C": the claim walks keys in byte order, which is also the worker's str order.
ALTER TABLE jobrunner.jobs
    ADD COLUMN fairness_key text COLLATE "C" NOT NULL DEFAULT ''
        CHECK (length(fairness_key) <= 256);
UPDATE jobrunner.jobs SET fairness_key = owner
WHERE owner IS NOT NULL AND state IN ('scheduled', 'queued', 'running', 'retrying');

-- One row per queue an admin has configured. A queue without a row has no limits and is
-- open to admins only (users submit where a row opens it to them).
CREATE TABLE jobrunner.queues (
    name                   text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 128),
    paused_at              timestamptz,  -- set while paused: no worker starts its jobs
    max_running            integer CHECK (max_running >= 0),           -- across all workers
    max_running_per_owner  integer CHECK (max_running_per_owner >= 1), -- per fairness key
    rate_limit             integer CHECK (rate_limit >= 1),            -- starts per rate_period
    rate_period            interval CHECK (rate_period BETWEEN interval '1 second'
                                                           AND interval '1 hour'),
    open_to_all            boolean NOT NULL DEFAULT false,  -- every user may submit here
    -- The start-rate bucket: tokens left when last refilled. Only the claim writes these.
    rate_tokens            float8 NOT NULL DEFAULT 0,
    rate_refilled_at       timestamptz,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    updated_by             text,

    CONSTRAINT rate_limit_with_period CHECK ((rate_limit IS NULL) = (rate_period IS NULL))
);

COMMENT ON TABLE jobrunner.queues IS
    'Queue controls, obeyed by every worker at its next claim. No row: no limits, admins only.';

INSERT INTO jobrunner.queues (name, open_to_all) VALUES ('default', true);

-- Queues opened to one user (beside those open to all).
CREATE TABLE jobrunner.queue_grants (
    queue       text NOT NULL REFERENCES jobrunner.queues (name) ON DELETE CASCADE,
    username    text NOT NULL REFERENCES jobrunner.users (username) ON DELETE CASCADE,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, username)
);

-- The highest priority a user may give a job (admins: any). Above 0 jumps other users' jobs.
ALTER TABLE jobrunner.users
    ADD COLUMN max_priority smallint NOT NULL DEFAULT 0 CHECK (max_priority BETWEEN -100 AND 100);
