-- Each job's retry policy on its row, so psql shows how a job will be retried and a
-- submission can choose it. The delay after failed attempt n is drawn between half and all
-- of least(backoff_cap, backoff_base * 2^(n-1)), in the database's time (job_record_outcomes).
-- NULL: the worker's configured default (JOBRUNNER_BACKOFF_BASE / JOBRUNNER_BACKOFF_CAP).
ALTER TABLE jobrunner.jobs
    ADD COLUMN backoff_base interval CHECK (backoff_base > interval '0'),
    ADD COLUMN backoff_cap  interval CHECK (backoff_cap > interval '0'),
    ADD CONSTRAINT backoff_cap_not_below_base CHECK (backoff_cap >= backoff_base);

COMMENT ON COLUMN jobrunner.jobs.backoff_base IS
    'Retry delay ceiling after the first failed attempt, doubling each attempt; NULL: the worker default.';
COMMENT ON COLUMN jobrunner.jobs.backoff_cap IS
    'Largest retry delay ceiling; NULL: the worker default.';

-- Seconds to wait after failed attempt `attempt` (1-based) under base/cap seconds: drawn
-- between half and all of the ceiling least(cap, base * 2^(attempt-1)), so jobs that failed
-- together spread out. The same rule as jobrunner.backoff.retry_delay, for the outcome write.
CREATE FUNCTION jobrunner.backoff_delay(attempt integer, base float8, cap float8)
RETURNS float8 LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT ceiling / 2 + random() * ceiling / 2
    FROM (SELECT least(cap, base * power(2::float8, least(greatest(attempt, 1) - 1, 62)))
                 AS ceiling) AS c
$$;

-- What an attempt's reported kind makes of the job, given its row: 'succeeded', 'cancelled',
-- 'failed', 'retrying' (a retry while attempts remain), or 'deferred' (a defer, given back
-- without spending the attempt, while fewer than max_deferrals are on record). One rule for
-- job_record_outcomes' every column; plain SQL, so the planner inlines it.
CREATE FUNCTION jobrunner.attempt_outcome(
    kind text, attempt integer, max_attempts integer, errors jsonb, max_deferrals integer)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN kind = 'defer' AND jsonb_array_length(jsonb_path_query_array(
                 errors, '$[*] ? (@.outcome == "deferred")')) < max_deferrals
        THEN 'deferred'
        WHEN kind IN ('retry', 'defer')
        THEN CASE WHEN attempt < max_attempts THEN 'retrying' ELSE 'failed' END
        ELSE kind
    END
$$;

-- The job state an attempt_outcome leaves: a deferred job waits as a retrying one does.
CREATE FUNCTION jobrunner.outcome_state(outcome text)
RETURNS jobrunner.job_state LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN outcome = 'deferred' THEN 'retrying' ELSE outcome END)::jobrunner.job_state
$$;
