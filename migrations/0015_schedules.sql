-- Schedules (issue: periodic tasks an operator can see and change). One row per schedule,
-- whether it comes from code (`@task(cron=...)`, synced by each worker as it starts) or was
-- added at run time over HTTP, the CLI or the dashboard. Maintenance fires the due ones
-- (`NOT paused AND next_run_at <= now()`, locked FOR UPDATE SKIP LOCKED) and moves
-- next_run_at to the next tick after now() in the schedule's time zone, in the transaction
-- that enqueues the job: exactly one job per tick, however many workers run.
--
-- It replaces jobrunner.periodic_ticks (0001), whose rows are carried over below so a code
-- schedule does not fire twice across the upgrade.

CREATE TABLE jobrunner.schedules (
    name         text PRIMARY KEY CHECK (char_length(name) BETWEEN 1 AND 256),
    task         text NOT NULL CHECK (char_length(task) BETWEEN 1 AND 256),
    args         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
    cron         text CHECK (char_length(cron) BETWEEN 1 AND 256),
    timezone     text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
    queue        text CHECK (char_length(queue) BETWEEN 1 AND 128),
    priority     smallint CHECK (priority BETWEEN -100 AND 100),
    paused       boolean NOT NULL DEFAULT false,
    source       text NOT NULL CHECK (source IN ('code', 'runtime')),
    next_run_at  timestamptz,
    last_run_at  timestamptz,
    last_job_id  uuid,  -- no foreign key: finished jobs are pruned, the schedule stays
    last_error   text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- A row carried over from periodic_ticks knows its task's last tick but not its cron
    -- (that is in code): it waits, never due, until a worker that declares it syncs it.
    CONSTRAINT schedules_cron_known CHECK ((cron IS NULL) = (next_run_at IS NULL)),
    CONSTRAINT schedules_runtime_cron CHECK (source = 'code' OR cron IS NOT NULL),
    -- A code schedule is its task's: `@task(cron=...)` declares one per task.
    CONSTRAINT schedules_code_named_by_task CHECK (source = 'runtime' OR name = task)
);

COMMENT ON TABLE jobrunner.schedules IS
    'Periodic jobs: from code (@task(cron=...)) or added at run time; one job per tick.';
COMMENT ON COLUMN jobrunner.schedules.name IS
    'The schedule''s name; a code schedule is named after its task.';
COMMENT ON COLUMN jobrunner.schedules.task IS
    'The task each tick enqueues (a task no worker knows still enqueues; its job waits).';
COMMENT ON COLUMN jobrunner.schedules.args IS 'The arguments of every job it enqueues.';
COMMENT ON COLUMN jobrunner.schedules.cron IS
    'Five-field cron expression, read in timezone (NULL only for a code row not yet synced).';
COMMENT ON COLUMN jobrunner.schedules.timezone IS
    'IANA time zone the cron is read in: a wall-clock time that does not exist fires once '
    'at the shifted instant, one that repeats fires once.';
COMMENT ON COLUMN jobrunner.schedules.queue IS 'Overrides the task''s queue (NULL: the task''s).';
COMMENT ON COLUMN jobrunner.schedules.priority IS
    'Overrides the task''s priority (NULL: the task''s).';
COMMENT ON COLUMN jobrunner.schedules.paused IS
    'Paused: no tick fires; resuming starts from the next tick (missed ones are not replayed).';
COMMENT ON COLUMN jobrunner.schedules.source IS
    '''code'': declared by @task(cron=...), synced at worker start; ''runtime'': added by an admin.';
COMMENT ON COLUMN jobrunner.schedules.next_run_at IS 'The next tick, database time.';
COMMENT ON COLUMN jobrunner.schedules.last_run_at IS 'When the last tick enqueued its job.';
COMMENT ON COLUMN jobrunner.schedules.last_job_id IS
    'The job the last tick enqueued (join jobrunner.jobs for its state; gone once pruned).';
COMMENT ON COLUMN jobrunner.schedules.last_error IS
    'Why the last tick enqueued nothing (e.g. args the task no longer takes); NULL if it did.';
COMMENT ON COLUMN jobrunner.schedules.created_by IS
    'The admin who added it, cli:<login>, or worker:<id> for a code schedule.';

-- The firing step reads the due, unpaused schedules in next_run_at order.
CREATE INDEX schedules_due_idx ON jobrunner.schedules (next_run_at) WHERE NOT paused;

-- Carry the last tick of each periodic task over: its cron comes with the first worker that
-- declares it, which then fires the tick after this one (as periodic_ticks would have).
INSERT INTO jobrunner.schedules (name, task, source, last_run_at, created_by)
SELECT task, task, 'code', last_tick, 'migration:0015'
FROM jobrunner.periodic_ticks
WHERE char_length(task) BETWEEN 1 AND 256;

DROP TABLE jobrunner.periodic_ticks;
