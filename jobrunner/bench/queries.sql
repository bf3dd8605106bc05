-- Statements only `jobrunner bench` runs, in the scratch database it creates and drops.
-- Loaded like jobrunner/db/queries.sql; kept apart so the runtime file holds runtime SQL only.

-- name: bench_server_lock
-- One bench at a time per server: both would use (and drop) the same scratch database, and
-- each would measure the other's load. Held by the bench's admin session until it ends;
-- a second bench waits here. The key is arbitrary: "jrbench" in ASCII.
SELECT pg_advisory_lock(x'6a7262656e6368'::bigint);

-- name: bench_database_drop
DROP DATABASE IF EXISTS jobrunner_bench WITH (FORCE);

-- name: bench_database_create
CREATE DATABASE jobrunner_bench;

-- name: bench_jobs_truncate
TRUNCATE jobrunner.jobs, jobrunner.job_history, jobrunner.throughput, jobrunner.job_dependencies;

-- name: bench_history_copy
-- The horizon run's archive of finished jobs (--history-rows), written as the archiver
-- would leave them: each row routed to its day's partition.
COPY jobrunner.job_history (id, queue, task, state, attempt, run_at, created_at, started_at,
                            finished_at)
FROM STDIN (FORMAT binary);

-- name: bench_history_vacuum
VACUUM ANALYZE jobrunner.job_history;

-- name: bench_checkpoint
-- After the fill: its dirty pages written now, not by a checkpoint during the measured run.
CHECKPOINT;

-- name: bench_history_autovacuum_busy
-- Whether autovacuum is still working on the archive's partitions (the fill's inserts set it
-- off): the measured run starts once it is done.
SELECT EXISTS (SELECT FROM pg_stat_activity
               WHERE backend_type = 'autovacuum worker' AND query LIKE '%job_history%');

-- name: bench_history_size
SELECT count(*) AS jobs, pg_total_relation_size('jobrunner.jobs') AS jobs_bytes,
       (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
        WHERE inhparent = 'jobrunner.job_history'::regclass) AS history_bytes
FROM jobrunner.job_history;

-- name: bench_jobs_vacuum
VACUUM ANALYZE jobrunner.jobs;

-- name: bench_jobs_unfinished
-- Whether queue $1 still has a job queued, running or waiting for parents, each read
-- through its partial index.
-- Not EXISTS: taking queue and state as independent, the planner expects a match within a
-- few rows and scans the table; beside the backlog figure's million rows that read 2 million
-- rows (140 ms) every poll once few jobs were left, CPU taken from the worker measured.
SELECT (SELECT id FROM jobrunner.jobs WHERE queue = $1 AND state = 'queued'
        ORDER BY queue, priority DESC, fairness_key, run_at, id LIMIT 1) IS NOT NULL
    OR (SELECT id FROM jobrunner.jobs WHERE queue = $1 AND state = 'running'
        ORDER BY lease_expires_at LIMIT 1) IS NOT NULL
    OR (SELECT id FROM jobrunner.jobs WHERE queue = $1 AND state = 'waiting'
        LIMIT 1) IS NOT NULL;

-- name: bench_jobs_span
-- Finished jobs of queue $1: how many succeeded, and seconds from the first start to the
-- last finish, in database time.
SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded,
       count(*) AS finished,
       extract(epoch FROM max(finished_at) - min(started_at))::float8 AS seconds
FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND queue = $1;

-- name: bench_jobs_run_once
-- Jobs of queue $1 that succeeded at their first attempt, none before it lost or deferred.
SELECT count(*) FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND queue = $1
  AND state = 'succeeded' AND attempt = 1 AND errors = '[]';

-- name: bench_fan_in_wait
-- Seconds from the end of the last parent of job $1 to its start (database time).
SELECT extract(epoch FROM c.started_at - max(p.finished_at))::float8
FROM jobrunner.all_jobs AS c
JOIN jobrunner.job_dependencies AS d ON d.child_id = c.id
JOIN jobrunner.all_jobs AS p ON p.id = d.parent_id
WHERE c.id = $1
GROUP BY c.started_at;

-- name: bench_jobs_results
-- The result of every succeeded job of task $1.
SELECT id, result FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND state = 'succeeded' AND task = $1;

-- name: bench_connections_count
-- Connections to this database whose application_name is $1.
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND application_name = $1;

-- name: bench_server_version
SELECT current_setting('server_version');

-- name: bench_jobs_run_spans
-- Every finished job of queue $1: when it was claimed and when its outcome was written, in
-- seconds (database time): the span the queue's controls count as running.
SELECT extract(epoch FROM started_at)::float8 AS started,
       extract(epoch FROM finished_at)::float8 AS finished
FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND queue = $1
ORDER BY started_at;

-- name: bench_clock
SELECT extract(epoch FROM clock_timestamp())::float8;

-- name: bench_baseline_claim
-- The hand-written baseline: what a bare PostgreSQL queue does per batch, and no more. No
-- fairness, no controls, no lease, no attempt count: take the oldest $1 queued jobs.
UPDATE jobrunner.jobs SET state = 'running', started_at = now(), worker_id = 'baseline',
                          lease_expires_at = now() + interval '1 minute'
WHERE id IN (SELECT id FROM jobrunner.jobs WHERE state = 'queued' AND queue = $2
             ORDER BY priority DESC, fairness_key, run_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id;

-- name: bench_baseline_finish
UPDATE jobrunner.jobs SET state = 'succeeded', finished_at = now(), result = 'null'
WHERE id = ANY($1::uuid[]);

-- ===== Hand-written enqueue baselines (jobrunner.bench.enqueue, jobrunner.bench.e2e) =====
-- What application code writing its own PostgreSQL queue with asyncpg would send: only the
-- columns it must give, the table's defaults for the rest, and no more than it reads back.

-- name: bench_baseline_insert
-- One job, its own transaction: the one-at-a-time baseline.
INSERT INTO jobrunner.jobs (queue, task, args) VALUES ($1, $2, $3::text::jsonb) RETURNING id;

-- name: bench_baseline_insert_many
-- One job per element of $3 (JSON texts), one statement: the chunked baseline.
INSERT INTO jobrunner.jobs (queue, task, args)
SELECT $1, $2, args::jsonb FROM unnest($3::text[]) AS args
RETURNING id;

-- name: bench_baseline_enqueue
-- One job and its doorbell in one statement: the hand-written LISTEN/NOTIFY queue's enqueue.
WITH job AS (
    INSERT INTO jobrunner.jobs (queue, task, args) VALUES ($1, $2, '{}') RETURNING id
)
SELECT job.id FROM job, pg_notify('jobrunner_bench_baseline', $1);

-- name: bench_baseline_finish_started
-- The hand-written consumer's jobs done, each with the wall clock its handler started at.
UPDATE jobrunner.jobs AS j
SET state = 'succeeded', finished_at = now(), result = to_jsonb(done.started)
FROM unnest($1::uuid[], $2::float8[]) AS done(id, started)
WHERE j.id = done.id;

-- ===== The horizon group (jobrunner.bench.horizon): a queue behind a held snapshot =====

-- name: bench_horizon_enqueue_baseline
-- The hand-written queue's producer: $3 jobs of task $2 in queue $1, each with args
-- {"batch": $4}, and its doorbell, in one statement.
WITH jobs AS (
    INSERT INTO jobrunner.jobs (queue, task, args)
    SELECT $1, $2, jsonb_build_object('batch', $4::int) FROM generate_series(1, $3::int)
    RETURNING id
)
SELECT count(*) FROM jobs, pg_notify('jobrunner_bench_baseline', $1) GROUP BY ();

-- name: bench_horizon_hold
-- The long transaction: run in a REPEATABLE READ transaction, it takes the snapshot that
-- the transaction then holds until it ends (backend_xmin in pg_stat_activity).
SELECT count(*) FROM jobrunner.queues;

-- name: bench_horizon_probe
-- Claim-shaped: the first live job of queue $1 in the claim index's order, from the
-- index's start, as a claim (or the hand-written baseline) finds the head of its queue.
SELECT id FROM jobrunner.jobs WHERE state = 'queued' AND queue = $1
ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1;

-- name: bench_horizon_stat_statements
-- Whether pg_stat_statements can be read here (created if the server preloads it); false
-- leaves the claim-time column empty.
SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_stat_statements')
   AND current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%';

-- name: bench_horizon_stat_statements_create
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- name: bench_horizon_claim_totals
-- Calls and milliseconds so far of this database's claim statements: jobrunner's job_claim
-- (its text starts the CTE `wanted`) and the hand-written baseline's (bench_baseline_claim;
-- pg_stat_statements keeps comments and replaces constants, so its comment names it).
SELECT coalesce(sum(calls), 0)::bigint AS calls,
       coalesce(sum(total_exec_time), 0)::float8 AS ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND (query LIKE '%WITH RECURSIVE wanted AS%' OR query LIKE '%hand-written baseline: what a bare%');

-- name: bench_horizon_started
-- Per window of $3 seconds from $2 (wall clock): the succeeded jobs of task $4 whose handler
-- started in it, and their pickup p50 and p99 in ms: the handler's start (its result) minus
-- the commit of its batch ($1[batch], wall clock after the commit returned).
SELECT floor((j.result::float8 - $2) / $3)::int AS window, count(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY j.result::float8 - c.at) * 1000 AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY j.result::float8 - c.at) * 1000 AS p99
FROM jobrunner.all_jobs AS j
JOIN unnest($1::float8[]) WITH ORDINALITY AS c(at, batch) ON c.batch = (j.args ->> 'batch')::int
WHERE j.state IN ('succeeded', 'failed', 'cancelled') AND j.state = 'succeeded' AND j.task = $4
GROUP BY 1 ORDER BY 1;

-- name: bench_horizon_finished
-- Per window of $2 seconds from $1 (wall clock): jobs of task $3 finished in it.
SELECT floor((extract(epoch FROM finished_at) - $1) / $2)::int AS window, count(*) AS jobs
FROM jobrunner.all_jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND task = $3
GROUP BY 1 ORDER BY 1;
