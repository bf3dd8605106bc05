-- /history searches by tag and by args, as GET /jobs does (issue 16, item 3).

-- The history view as migration 0012 defines it, plus each job's tags (to show and filter by)
-- and its args (to filter by: `args @> '{...}'`). Added last, so the view's other columns keep
-- their places; name the columns you want in psql rather than `SELECT *`, which now shows
-- the args too. Filtering on the view's columns, not on a join back to jobrunner.jobs, is
-- what lets a rare tag or args value read jobs_tags_idx or jobs_args_idx (migration 0013).
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
FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled')
ORDER BY finished_at DESC, id DESC;
