-- The worker registry (issue 13): every worker process keeps a row here, so "which workers
-- run, and which queues does nobody serve" is read, not guessed.

-- One row per worker process (jobrunner.worker.presence writes it): inserted at start,
-- last_seen_at moved forward every JOBRUNNER_WORKER_SEEN_INTERVAL, stopped_at set on a
-- graceful stop. A worker that died keeps its last last_seen_at, and counts as gone once
-- that is older than JOBRUNNER_WORKER_SEEN_TIMEOUT. Maintenance deletes rows of workers
-- stopped or unseen for JOBRUNNER_WORKER_RETENTION.
CREATE TABLE jobrunner.workers (
    id            text PRIMARY KEY,  -- the worker_id it writes on the jobs it claims
    host          text NOT NULL,
    pid           integer NOT NULL,
    queues        text[] NOT NULL,   -- the queues it claims from
    tasks         text[] NOT NULL,   -- the task names it registers (knows how to run)
    concurrency   integer NOT NULL CHECK (concurrency >= 1),
    started_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    stopped_at    timestamptz
);

COMMENT ON TABLE jobrunner.workers IS
    'Worker processes, one row each: live while last_seen_at is recent and stopped_at is NULL.';

-- "Which workers serve queue X": queues @> ARRAY['X']. No index on last_seen_at: the table
-- holds the worker processes of the last week, a page or two read whole, and an index on
-- the column every refresh writes would cost each refresh its HOT update.
CREATE INDEX workers_queues_idx ON jobrunner.workers USING gin (queues);
