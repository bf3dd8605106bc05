-- Retention at volume (issue 17, item 5): finished jobs leave the live table.
--
-- jobrunner.jobs holds live work plus the jobs finished in the last JOBRUNNER_ARCHIVE_AFTER
-- seconds; maintenance's archiver then moves them, in batches, into jobrunner.job_history,
-- partitioned by day of finished_at, and retention drops whole partitions: the claim's table
-- and indexes stay the size of the live work however long finished jobs are kept, and
-- keeping them costs no DELETE and no vacuum per job. Nothing is moved here: on a big table
-- the archiver moves the existing finished jobs over its first ticks, and reads find a
-- finished job in either table (jobrunner.all_jobs) meanwhile and after.
--
-- The columns are jobs' own, in the same order (LIKE), so a row moves with `SELECT *` both
-- ways. A migration that adds a column to jobrunner.jobs adds it here too, and recreates
-- jobrunner.all_jobs (tests/engine/test_archive.py compares the two tables).
CREATE TABLE jobrunner.job_history (
    LIKE jobrunner.jobs INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION,
    CONSTRAINT job_history_finished CHECK (state IN ('succeeded', 'failed', 'cancelled')),
    PRIMARY KEY (id, finished_at)  -- a partitioned key must hold the partition column
) PARTITION BY RANGE (finished_at);

COMMENT ON TABLE jobrunner.job_history IS
    'Finished jobs moved out of jobrunner.jobs by the archiver (JOBRUNNER_ARCHIVE_AFTER), '
    'one partition per day of finished_at (job_history_pYYYYMMDD_HH24MI), dropped whole once '
    'past retention. Never written but by the archiver, retention, and a retry or a new child '
    'moving a row back to jobs. Read finished and live jobs together in jobrunner.all_jobs.';

COMMENT ON TABLE jobrunner.jobs IS
    'Live jobs, and those finished within JOBRUNNER_ARCHIVE_AFTER (then moved to '
    'jobrunner.job_history). errors holds every failed attempt, oldest first.';

-- Rows whose finished_at no partition covers (jobs finished before the first partition, met
-- when the archiver moves the jobs an upgrade left behind): retention deletes them in
-- batches. Created ahead, partitions leave it empty in steady state.
CREATE TABLE jobrunner.job_history_default PARTITION OF jobrunner.job_history DEFAULT;

-- The reads of finished jobs, as jobs has them (each index is made on every partition).
-- By id: the primary key. /history newest first, and its owned variant:
CREATE INDEX job_history_finished_idx ON jobrunner.job_history (finished_at, id);
CREATE INDEX job_history_owner_finished_idx ON jobrunner.job_history (owner, finished_at, id)
    WHERE owner IS NOT NULL;
-- Counts per state (metrics, the dashboard; each stops at a cap) and the batched deletes of
-- a state kept shorter than the others (JOBRUNNER_RETENTION_*): a range of its own.
CREATE INDEX job_history_state_idx ON jobrunner.job_history (state, finished_at);
-- GET /jobs (newest id first) for a user, and bulk actions' keyset by id:
CREATE INDEX job_history_owner_idx ON jobrunner.job_history (owner, id) WHERE owner IS NOT NULL;
-- Searches, as migration 0019 has them on jobs:
CREATE INDEX job_history_tags_idx ON jobrunner.job_history USING gin (tags) WHERE tags <> '{}';
CREATE INDEX job_history_args_idx ON jobrunner.job_history USING gin (args jsonb_path_ops)
    WHERE args <> '{}';
-- A job's latest webhook delivery (jobs_delivery_idx, migration 0011): deliveries finish.
CREATE INDEX job_history_delivery_idx ON jobrunner.job_history ((args ->> 'job_id'), id)
    WHERE task = 'jobrunner.deliver_webhook';
-- The jobs with links (job_dependencies rows), found when their partition is dropped, so the
-- links go with them at a cost of the linked jobs only.
CREATE INDEX job_history_linked_idx ON jobrunner.job_history (finished_at)
    WHERE child_added_at IS NOT NULL OR pending_parents IS NOT NULL;

-- Every job, live or archived: a move is one statement (DELETE ... INSERT), so any snapshot
-- sees a job in exactly one branch. Reads that may ask for a finished job go through this;
-- the claim and the outcome write never do.
CREATE VIEW jobrunner.all_jobs AS
SELECT * FROM jobrunner.jobs
UNION ALL
SELECT * FROM jobrunner.job_history;

COMMENT ON VIEW jobrunner.all_jobs IS
    'Every job: jobrunner.jobs (live, and finished within JOBRUNNER_ARCHIVE_AFTER) and '
    'jobrunner.job_history (archived). Find any job by id here.';

-- The history view (migration 0018) over both tables, columns unchanged.
CREATE OR REPLACE VIEW jobrunner.history AS
SELECT id, queue, task, state, attempt, max_attempts, owner,
       created_at, started_at, finished_at,
       finished_at - started_at AS run_duration,
       finished_at - created_at AS total_duration,
       result,
       errors -> -1 ->> 'error' AS last_error,
       CASE WHEN pending_parents IS NOT NULL THEN args -> 'jobrunner.parents' END AS parents,
       child_added_at IS NOT NULL AS has_children,
       tags,
       args
FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
ORDER BY finished_at DESC, id DESC;

COMMENT ON VIEW jobrunner.history IS
    'Finished jobs, newest first, live and archived alike (name the columns: args is last).';

-- Partitions of job_history covering [since, until) in steps of `width` (aligned on the Unix
-- epoch, so every process cuts the same days), those missing created. A step that overlaps a
-- partition made with another width is left to it (and to the default partition for what
-- it does not cover). Answers how many it made. Waits at most `wait` for its locks, then
-- gives up the rest until the next tick.
CREATE FUNCTION jobrunner.job_history_partitions_make(
    since timestamptz, until timestamptz, width interval, wait interval
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    step float8 := extract(epoch FROM width);
    low timestamptz := to_timestamp(floor(extract(epoch FROM since) / step) * step);
    name text;
    made integer := 0;
BEGIN
    IF step < 3600 THEN
        RAISE EXCEPTION 'job_history partitions must span at least an hour, not %', width;
    END IF;
    PERFORM set_config('lock_timeout', (extract(epoch FROM wait) * 1000)::bigint::text, true);
    WHILE low < until LOOP
        name := 'job_history_p' || to_char(low AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MI');
        IF to_regclass('jobrunner.' || name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE jobrunner.%I PARTITION OF jobrunner.job_history '
                    'FOR VALUES FROM (%L) TO (%L)', name, low, low + width);
                made := made + 1;
            EXCEPTION WHEN invalid_object_definition OR check_violation THEN
                -- overlaps a partition of another width, or the default partition holds
                -- rows of this range: they stay where they are
                NULL;
            END;
        END IF;
        low := low + width;
    END LOOP;
    RETURN made;
END
$$;

-- Drop the partitions of job_history that hold only jobs finished before `before`, with the
-- job_dependencies rows of their linked jobs (job_history_linked_idx finds those). Answers
-- how many it dropped. Waits at most `wait` for each partition's lock (a long read of the
-- history holds it), then leaves the rest to the next tick.
CREATE FUNCTION jobrunner.job_history_partitions_drop(before timestamptz, wait interval)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    PERFORM set_config('lock_timeout', (extract(epoch FROM wait) * 1000)::bigint::text, true);
    FOR part IN
        SELECT c.oid::regclass AS rel,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')
                   ::timestamptz AS upper_bound
        FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'jobrunner.job_history'::regclass
          AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
        ORDER BY 2
    LOOP
        EXIT WHEN part.upper_bound > before;
        BEGIN
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', part.rel);
            EXECUTE format(
                'DELETE FROM jobrunner.job_dependencies WHERE parent_id IN ('
                '  SELECT id FROM %s WHERE child_added_at IS NOT NULL)', part.rel);
            EXECUTE format(
                'DELETE FROM jobrunner.job_dependencies WHERE child_id IN ('
                '  SELECT id FROM %s WHERE pending_parents IS NOT NULL)', part.rel);
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped := dropped + 1;
        EXCEPTION WHEN lock_not_available THEN
            EXIT;
        END;
    END LOOP;
    RETURN dropped;
END
$$;
