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
TRUNCATE jobrunner.jobs, jobrunner.throughput, jobrunner.job_dependencies;

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
FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND queue = $1;

-- name: bench_jobs_run_once
-- Jobs of queue $1 that succeeded at their first attempt, none before it lost or deferred.
SELECT count(*) FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND queue = $1
  AND state = 'succeeded' AND attempt = 1 AND errors = '[]';

-- name: bench_fan_in_wait
-- Seconds from the end of the last parent of job $1 to its start (database time).
SELECT extract(epoch FROM c.started_at - max(p.finished_at))::float8
FROM jobrunner.jobs AS c
JOIN jobrunner.job_dependencies AS d ON d.child_id = c.id
JOIN jobrunner.jobs AS p ON p.id = d.parent_id
WHERE c.id = $1
GROUP BY c.started_at;

-- name: bench_jobs_results
-- The result of every succeeded job of task $1.
SELECT id, result FROM jobrunner.jobs
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
FROM jobrunner.jobs
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
