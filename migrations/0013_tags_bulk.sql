-- Tags, search and bulk actions (issue 16, items 1 and 3).

-- A job's tags, set when it is made (enqueue's tags=, a submission's "tags"). NOT NULL with a
-- constant default, so adding the column rewrites nothing: existing rows read '{}'. The
-- parameter maker (jobrunner.job_rows) bounds them; the CHECK only keeps psql inserts sane.
ALTER TABLE jobrunner.jobs
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}' CHECK (cardinality(tags) <= 16);

COMMENT ON COLUMN jobrunner.jobs.tags IS
    'Labels set at enqueue; lists and bulk actions filter by them (tags @> ARRAY[...]).';

-- Searches: `tags @> ARRAY['x']` and `args @> '{"k": "v"}'` read these. jsonb_path_ops holds
-- one hash per path to a value: smaller and faster than the default opclass for @>, the only
-- operator searches use. Jobs without tags add no entry to the tags index.
CREATE INDEX jobs_tags_idx ON jobrunner.jobs USING gin (tags);
CREATE INDEX jobs_args_idx ON jobrunner.jobs USING gin (args jsonb_path_ops);

-- One row per bulk action (POST /jobs/bulk/..., `jobrunner jobs bulk`), dry runs included:
-- who asked, when, what, for which filter, and how many jobs it touched (or would have).
CREATE TABLE jobrunner.bulk_actions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,   -- a username, or 'cli:<os user>' for the CLI
    action      text NOT NULL CHECK (action IN ('cancel', 'retry', 'delete')),
    dry_run     boolean NOT NULL,
    filter      jsonb NOT NULL,  -- the filter as given, owner included for a user's action
    jobs        bigint NOT NULL CHECK (jobs >= 0),
    complete    boolean NOT NULL -- false: it stopped at a per-call cap or a limit, to go on
);
CREATE INDEX bulk_actions_at_idx ON jobrunner.bulk_actions (at);

COMMENT ON TABLE jobrunner.bulk_actions IS
    'Audit of bulk cancel/retry/delete: who, when, the filter, how many jobs.';
