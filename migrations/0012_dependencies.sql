-- Jobs that wait for jobs (issue 18): a job may name parents; it waits in state 'waiting'
-- until every parent has settled, and is released (queued) by the statement that settles the
-- last one, in the same transaction as that parent's outcome. README "Jobs that wait for
-- jobs" tells the rules; jobrunner/dependencies.py and queries.sql (Dependencies) do them.

-- The new state comes first in a job's life. PostgreSQL will not use an enum value in the
-- transaction that added it, so this part commits on its own (see jobrunner/db/migrate.py);
-- IF NOT EXISTS makes it safe to run again should the rest fail.
ALTER TYPE jobrunner.job_state ADD VALUE IF NOT EXISTS 'waiting' BEFORE 'scheduled';

-- jobrunner: commit

-- On the child: how many parents it still waits for (NULL: a job without parents), and what
-- a parent that fails for good or is cancelled does to it: 'cancel' it (and its own children
-- in turn), or let it 'run' anyway. On the parent: when it last gained a child (NULL: never).
-- A job that has children is written with its children's release, in a transaction; one that
-- never had any keeps the one-statement outcome write. Pruning keeps a parent while it has an
-- unfinished child (the child reads its parents' results when it runs), and for its retention
-- after it last gained one. A job's parents, in the order it named them, are also in its args
-- under "jobrunner.parents" (never a task's argument name), where a worker's claim reads them.
ALTER TABLE jobrunner.jobs
    ADD COLUMN pending_parents integer CHECK (pending_parents >= 0),
    ADD COLUMN on_parent_failure text CHECK (on_parent_failure IN ('cancel', 'run')),
    ADD COLUMN child_added_at timestamptz,
    ADD CONSTRAINT waiting_for_parents CHECK (state <> 'waiting' OR pending_parents > 0);

COMMENT ON COLUMN jobrunner.jobs.pending_parents IS
    'Parents not yet settled (NULL: no parents); the job waits while above 0.';
COMMENT ON COLUMN jobrunner.jobs.on_parent_failure IS
    'cancel: a parent that fails or is cancelled cancels this job; run: it runs anyway.';
COMMENT ON COLUMN jobrunner.jobs.child_added_at IS 'When this job last gained a child.';

-- One row per (parent, child). resolved_at is set once, when the parent's end was counted
-- for the child (or at once, for a parent already finished when the child was made), so a
-- parent retried by hand and ending again is never counted twice. No foreign keys: a key on
-- jobs would add a trigger to every update of a job; the statements that make and prune jobs
-- keep the rows right instead (job_dependencies_add, job_prune).
CREATE TABLE jobrunner.job_dependencies (
    parent_id    uuid NOT NULL,
    child_id     uuid NOT NULL,
    resolved_at  timestamptz,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX job_dependencies_child_idx ON jobrunner.job_dependencies (child_id);

COMMENT ON TABLE jobrunner.job_dependencies IS
    'Which job waits for which: a child runs once every parent row is resolved.';

-- The state a waiting job moves to once some of its parents' ends are counted: cancelled when
-- a parent's failure cancels it, waiting while parents remain, else scheduled or queued by
-- its start time. One rule for job_dependencies_add and _settle; plain SQL, inlined.
CREATE FUNCTION jobrunner.dependent_state(pending bigint, cancelled boolean, run_at timestamptz)
RETURNS jobrunner.job_state LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN cancelled THEN 'cancelled'
                 WHEN pending > 0 THEN 'waiting'
                 WHEN run_at > now() THEN 'scheduled'
                 ELSE 'queued' END)::jobrunner.job_state
$$;

-- Waiting jobs per queue, counted along their own index (dashboard, GET /queues, metrics).
CREATE INDEX jobs_waiting_idx ON jobrunner.jobs (queue) WHERE state = 'waiting';

-- The history keeps a finished job's links: its parents from its args (read only for jobs
-- that have parents, so other rows' args are never detoasted here).
CREATE OR REPLACE VIEW jobrunner.history AS
SELECT id, queue, task, state, attempt, max_attempts, owner,
       created_at, started_at, finished_at,
       finished_at - started_at AS run_duration,
       finished_at - created_at AS total_duration,
       result,
       errors -> -1 ->> 'error' AS last_error,
       CASE WHEN pending_parents IS NOT NULL THEN args -> 'jobrunner.parents' END AS parents,
       child_added_at IS NOT NULL AS has_children
FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
ORDER BY finished_at DESC, id DESC;
