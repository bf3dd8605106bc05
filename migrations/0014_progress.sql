-- Progress (issue 16): what a running handler last said of how far it got, through
-- `job.progress(0.4, "resized 40 of 100")`. The worker writes it coalesced (at most about once
-- a second per job, one statement for all of a worker's jobs: jobrunner.worker.progress), only
-- while the reporting attempt still holds the job; a new attempt starts with none (job_claim
-- clears it). All NULL for a job that never reported, so such jobs pay nothing.

-- NOT VALID: the columns were just added, all NULL; checking every row would read the whole
-- table while holding its exclusive lock. Validated below, in its own transaction, under a
-- lock that lets workers go on. Safe to run twice (see jobrunner/db/migrate.py).
ALTER TABLE jobrunner.jobs
    ADD COLUMN IF NOT EXISTS progress double precision,
    ADD COLUMN IF NOT EXISTS progress_message text,
    ADD COLUMN IF NOT EXISTS progress_data jsonb,
    ADD COLUMN IF NOT EXISTS progress_at timestamptz,
    DROP CONSTRAINT IF EXISTS progress_fraction,
    DROP CONSTRAINT IF EXISTS progress_reported,
    ADD CONSTRAINT progress_fraction CHECK (progress BETWEEN 0 AND 1) NOT VALID,
    ADD CONSTRAINT progress_reported CHECK ((progress IS NULL) = (progress_at IS NULL)) NOT VALID;

COMMENT ON COLUMN jobrunner.jobs.progress IS
    'How far the running attempt got, 0 to 1, as its handler last reported (NULL: never).';
COMMENT ON COLUMN jobrunner.jobs.progress_message IS 'The handler''s words with its progress.';
COMMENT ON COLUMN jobrunner.jobs.progress_data IS 'A small JSON object with its progress.';
COMMENT ON COLUMN jobrunner.jobs.progress_at IS 'When the progress was written (database time).';

-- jobrunner: commit

ALTER TABLE jobrunner.jobs VALIDATE CONSTRAINT progress_fraction;
ALTER TABLE jobrunner.jobs VALIDATE CONSTRAINT progress_reported;
