-- When a new job starts: at run_at if given, else delay_seconds from now, else now; never
-- before now. One definition for every insert (job_insert, job_submit_batch,
-- job_insert_many_start), in the database's time. Plain SQL and STABLE, so the planner
-- inlines it into each statement.
CREATE FUNCTION jobrunner.start_time(run_at timestamptz, delay_seconds float8)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest(coalesce(run_at, now() + make_interval(secs => coalesce(delay_seconds, 0))),
                    now())
$$;
