-- Every statement jobrunner runs, one named block each. `queries.py` loads this file once;
-- no other module builds SQL. Parameters are always bound, never formatted in.
-- Naming: noun_verb, so statements sort by the table they touch.

-- ===== Jobs: made (job_rows), claimed, finished, read =====

-- name: job_insert
-- Insert one job (jobrunner.job_rows.insert_one) and, when $14, ring its queue's doorbell in
-- the same transaction. It runs at $5 (run_at), or $11 seconds from now (delay), or now;
-- always in the database's time. A live job with the same (task, dedup_key) makes this return
-- no row. $3 arrives as JSON text, so any asyncpg connection can send it. With $16 it waits
-- for parents (job_dependencies_add, same transaction, decides when it runs). $17: its tags.
-- $18: the trace it was made in (JSON text, or NULL; jobrunner.tracing).
-- Only what the database decided comes back (id, state, run_at, created_at): the rest of the
-- job is what was sent (JobRows.made), and decoding the whole row, its args again among it,
-- was a fifth of a lone enqueue's CPU.
WITH timing AS (
    SELECT jobrunner.start_time($5::timestamptz, $11::float8) AS run_at
), inserted AS (
    INSERT INTO jobrunner.jobs AS j
        (queue, task, args, priority, state, max_attempts, run_at, timeout, dedup_key, owner,
         callback_url, backoff_base, backoff_cap, fairness_key, tags, trace_context)
    SELECT $1, $2, $3::text::jsonb, $4,
           CASE WHEN $16::bool THEN 'waiting' WHEN timing.run_at > now() THEN 'scheduled'
                ELSE 'queued' END::jobrunner.job_state,
           $6, timing.run_at, $7, $8, $9, $10, $12, $13, $15, $17::text[], $18::text::jsonb
    FROM timing
    ON CONFLICT (task, dedup_key)
        WHERE dedup_key IS NOT NULL AND state NOT IN ('succeeded', 'failed', 'cancelled')
        DO NOTHING
    RETURNING j.id, j.state, j.run_at, j.created_at, j.queue
)
SELECT inserted.id, inserted.state, inserted.run_at, inserted.created_at
FROM inserted
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_jobs', inserted.queue) WHERE inserted.state = 'queued' AND $14
) AS doorbell ON true;

-- name: job_insert_each
-- Insert one job per element of the arrays (jobrunner.job_rows.insert_each: the API's
-- batched submissions, webhook deliveries, a graph's jobs), in their order, and when $13 ring
-- the queues of those ready in the same transaction. Start times as job_insert; no dedup keys;
-- those $15 marks wait for parents (as job_insert's $16). Each row comes back with `n`, its
-- element's place in the arrays (from 1). $16: each job's tags as a JSON array (NULL: none),
-- since an array of arrays must be rectangular. $17: their traces (as job_insert's $18).
-- As job_insert, only what the database decided comes back.
WITH given AS MATERIALIZED (
    SELECT jobrunner.uuid_v7() AS id, rows.*,
           jobrunner.start_time(rows.run_at, rows.delay_seconds) AS starts_at
    FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::timestamptz[],
                $7::float8[], $8::interval[], $9::text[], $10::text[], $11::interval[],
                $12::interval[], $14::text[], $15::bool[], $16::text[], $17::text[])
         WITH ORDINALITY
         AS rows(queue, task, args, priority, max_attempts, run_at, delay_seconds, timeout,
                 owner, callback_url, backoff_base, backoff_cap, fairness_key, waits, tag_list,
                 trace_context, n)
    ORDER BY n
), inserted AS (
    INSERT INTO jobrunner.jobs AS j
        (id, queue, task, args, priority, state, max_attempts, run_at, timeout, owner,
         callback_url, backoff_base, backoff_cap, fairness_key, tags, trace_context)
    SELECT id, queue, task, args::jsonb, priority,
           CASE WHEN waits THEN 'waiting' WHEN starts_at > now() THEN 'scheduled'
                ELSE 'queued' END::jobrunner.job_state,
           max_attempts, starts_at, timeout, owner, callback_url, backoff_base, backoff_cap,
           fairness_key, ARRAY(SELECT jsonb_array_elements_text(tag_list::jsonb)),
           trace_context::jsonb
    FROM given
    RETURNING j.id, j.state, j.run_at, j.created_at, j.queue
)
SELECT given.n, inserted.id, inserted.state, inserted.run_at, inserted.created_at
FROM inserted JOIN given USING (id)
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_jobs', inserted.queue) WHERE inserted.state = 'queued' AND $13
) AS doorbell ON true
ORDER BY given.n;

-- name: job_get_live_by_dedup_key
-- The live job holding a dedup key, returned to a second enqueue instead of a duplicate.
SELECT * FROM jobrunner.jobs
WHERE task = $1 AND dedup_key = $2 AND state NOT IN ('succeeded', 'failed', 'cancelled');

-- name: job_insert_many_start
-- enqueue_many writes its rows with job_copy, which evaluates no expression per row, so this
-- statement, first in the same transaction, gives the rows what they need from the database:
-- the millisecond for their ids (the clock uuid_v7 reads), their start time and state. It
-- also rings the queue's doorbell when they are ready; the ring goes out at commit, and not
-- at all if the COPY fails and the transaction rolls back. The rows start at $2 (run_at), or
-- $3 seconds from now (delay), or now; with $4 they wait for parents (job_dependencies_add
-- rings for them when they are ready).
WITH timing AS (
    SELECT jobrunner.start_time($2::timestamptz, $3::float8) AS run_at
)
SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8 AS id_ms,
       timing.run_at,
       CASE WHEN $4::bool THEN 'waiting' WHEN timing.run_at > now() THEN 'scheduled'
            ELSE 'queued' END::jobrunner.job_state AS state,
       (SELECT count(*) FROM (SELECT pg_notify('jobrunner_jobs', $1)
                              WHERE timing.run_at <= now() AND NOT $4::bool) AS doorbell)
           AS notified
FROM timing;

-- name: job_copy
-- enqueue_many's rows, after job_insert_many_start. Every column comes with the row, so no
-- default is called per row and PostgreSQL writes them a page at a time. asyncpg's
-- copy_records_to_table sends it, rebuilt from the table and columns read here.
COPY jobrunner.jobs (id, queue, task, args, priority, state, max_attempts, run_at, timeout, owner,
                    backoff_base, backoff_cap, fairness_key, tags, trace_context)
FROM STDIN (FORMAT binary);

-- name: job_claim
-- Claim up to $3 queued jobs from the queues $1 for worker $2, holding each for $4 seconds,
-- taking turns between owners (fairness keys). README "How it works: fair claiming" tells
-- the policy; in short:
--   * a queue's ready jobs form lanes, one per (priority, fairness_key); higher priority
--     lanes go first, and the lanes of one priority take turns: the claim walks them from
--     the key after $5 (this worker's cursor for the queue, where its last claim stopped),
--     wrapping around to the first key and on up to the cursor, so every key gets a turn
--     before any gets a second;
--   * each lane of a priority gets an equal share of the batch (budget / lanes, the first
--     lanes of the walk taking the remainder), its oldest jobs first, and the batch takes
--     one job from every lane before a second;
--   * queue controls (jobrunner.queues) hold here: a paused queue gives nothing; a queue's
--     budget is the batch, less what its max_running has running, less the start-rate
--     bucket's whole tokens; a lane gives at most max_running_per_owner less its running.
-- Times are statement_timestamp(), not now(): under a limit the claim runs in a transaction
-- that first waited for the queue's lock, and the transaction's start would date the
-- claim (and refill the rate bucket) from before that wait, out of order between workers.
-- $6 says which queues this call takes: false, those without limits (no lock needed);
-- true, those with limits, called while their jobrunner.queues rows are locked
-- (queue_lock_limited, same transaction), so counts read here are not raced by other
-- workers and the rate bucket is spent exactly once.
-- Each step of the walk is one probe of jobs_claim_idx (UNION ALL ... LIMIT 1 runs a branch
-- only when the ones before it found nothing), so a claim costs O(lanes taken), never
-- O(keys queued). The chosen rows are updated through `id = ANY(ARRAY(...))`, a
-- primary-key lookup in any plan: joined to the CTE instead, a generic plan once hashed the
-- whole table to match them (500 ms a claim beside a million queued rows, not 2).
WITH RECURSIVE wanted AS (
    SELECT w.queue, w.after_key COLLATE "C" AS after_key, q.max_running,
           q.max_running_per_owner, bucket.tokens
    FROM unnest($1::text[], $5::text[]) AS w(queue, after_key)
    LEFT JOIN jobrunner.queues AS q ON q.name = w.queue
    -- The start-rate bucket: refilled at the rate since its last use, holding at most one
    -- second's starts (at least one), so starts over any minute stay within the limit.
    LEFT JOIN LATERAL (
        SELECT CASE WHEN q.rate_refilled_at IS NULL THEN capacity
                    ELSE least(capacity,
                               q.rate_tokens + per_second
                                   * extract(epoch FROM statement_timestamp() - q.rate_refilled_at))
               END AS tokens
        FROM (SELECT q.rate_limit / extract(epoch FROM q.rate_period) AS per_second) AS rate,
             LATERAL (SELECT greatest(1.0, rate.per_second) AS capacity) AS cap
        WHERE q.rate_limit IS NOT NULL
    ) AS bucket ON true
    WHERE q.paused_at IS NULL
      AND (q.max_running IS NOT NULL OR q.max_running_per_owner IS NOT NULL
           OR q.rate_limit IS NOT NULL) = $6
), running AS (
    -- What runs now in the queues with a concurrency limit, by key (read only under the lock).
    SELECT r.queue, r.fairness_key, count(*) AS jobs
    FROM jobrunner.jobs AS r
    WHERE $6 AND r.state = 'running'
      AND r.queue IN (SELECT queue FROM wanted
                      WHERE max_running IS NOT NULL OR max_running_per_owner IS NOT NULL)
    GROUP BY r.queue, r.fairness_key
), budgets AS (
    SELECT w.queue, w.after_key, w.max_running_per_owner, w.tokens,
           least($3,
                 w.max_running - (SELECT coalesce(sum(jobs), 0) FROM running
                                  WHERE running.queue = w.queue),
                 floor(w.tokens))::int AS budget
    FROM wanted AS w
), lanes (queue, priority, fairness_key, top_priority, after_key, wrapped, n, first_run_at,
           first_id, top_key, top_run_at, top_id) AS (
    -- Where each queue's walk starts: its top priority, at the cursor (not itself a lane).
    -- The probe for the top priority also finds the first job of its first key (top_key,
    -- top_run_at, top_id), which the wrap below takes without a probe of its own.
    SELECT b.queue, best.priority, b.after_key, best.priority, b.after_key, false, 0,
           NULL::timestamptz, NULL::uuid, best.fairness_key, best.run_at, best.id
    FROM budgets AS b
    CROSS JOIN LATERAL (
        SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
        WHERE state = 'queued' AND queue = b.queue
        ORDER BY priority DESC, fairness_key, run_at, id
        LIMIT 1
    ) AS best
    WHERE b.budget > 0
    UNION ALL
    SELECT l.queue, step.priority, step.fairness_key, l.top_priority, l.after_key, step.wrapped,
           l.n + 1, step.run_at, step.id, l.top_key, l.top_run_at, l.top_id
    FROM lanes AS l
    CROSS JOIN LATERAL (
        -- the next key of this priority (at the top priority, up to the last key; then...)
        (SELECT priority, fairness_key, l.wrapped AS wrapped, run_at, id FROM jobrunner.jobs
         WHERE (NOT l.wrapped OR l.priority <> l.top_priority)
           AND state = 'queued' AND queue = l.queue AND priority = l.priority
           AND fairness_key > l.fairness_key
         ORDER BY fairness_key, run_at, id LIMIT 1)
        UNION ALL
        -- ...wrapped around: the first key (found with the top priority), if it is not past
        -- the cursor, then the keys after it up to and including the cursor
        (SELECT l.priority, l.top_key, true, l.top_run_at, l.top_id
         WHERE NOT l.wrapped AND l.priority = l.top_priority AND l.top_key <= l.after_key)
        UNION ALL
        (SELECT priority, fairness_key, true, run_at, id FROM jobrunner.jobs
         WHERE l.wrapped AND l.priority = l.top_priority
           AND state = 'queued' AND queue = l.queue AND priority = l.priority
           AND fairness_key > l.fairness_key AND fairness_key <= l.after_key
         ORDER BY fairness_key, run_at, id LIMIT 1)
        UNION ALL
        -- then the lower priorities, in key order (they fill what the top leaves)
        (SELECT priority, fairness_key, l.wrapped, run_at, id FROM jobrunner.jobs
         WHERE state = 'queued' AND queue = l.queue AND priority < l.priority
         ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
        LIMIT 1
    ) AS step
    WHERE l.n < $3
), shares AS (
    -- A lane's share: the budget split evenly between the lanes of its priority, the ones
    -- first in the walk taking the remainder (the cursor moves past them, so the rest go
    -- first next time). Shares add up to the budget: every row locked is a row claimed.
    SELECT l.queue, l.priority, l.fairness_key, l.n, l.first_run_at, l.first_id, b.budget,
           least(
               b.budget / count(*) OVER same_priority
               + CASE WHEN row_number() OVER (same_priority ORDER BY l.n)
                           <= b.budget % count(*) OVER same_priority
                      THEN 1 ELSE 0 END,
               CASE WHEN b.max_running_per_owner IS NOT NULL THEN
                   b.max_running_per_owner
                   - coalesce((SELECT jobs FROM running
                               WHERE running.queue = l.queue
                                 AND running.fairness_key = l.fairness_key), 0)::int
               END
           ) AS share
    FROM lanes AS l JOIN budgets AS b USING (queue)
    WHERE l.n > 0
    WINDOW same_priority AS (PARTITION BY l.queue, l.priority)
), candidates AS (
    SELECT s.queue, s.priority, s.n, s.budget, c.id,
           row_number() OVER (PARTITION BY s.queue, s.n ORDER BY c.run_at, c.id) AS turn
    FROM shares AS s
    CROSS JOIN LATERAL (
        SELECT id, run_at FROM jobrunner.jobs
        WHERE state = 'queued' AND queue = s.queue AND priority = s.priority
          AND fairness_key = s.fairness_key
          -- from the lane's first live job, which the walk found: the index entries before
          -- it are dead (claimed), and a long transaction elsewhere keeps them from being
          -- cleaned, so not walking them twice is half the claim's cost in that case
          AND (run_at, id) >= (s.first_run_at, s.first_id)
        ORDER BY run_at, id
        LIMIT greatest(s.share, 0)
        FOR UPDATE SKIP LOCKED
    ) AS c
), chosen AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, turn, n) AS claim_order
    FROM (
        SELECT id, priority, turn, n, budget,
               row_number() OVER (PARTITION BY queue ORDER BY priority DESC, turn, n) AS place
        FROM candidates
    ) AS ranked
    WHERE place <= budget
    ORDER BY priority DESC, turn, n
    LIMIT $3
), claimed AS (
    UPDATE jobrunner.jobs AS j
    SET state = 'running',
        attempt = j.attempt + 1,
        worker_id = $2,
        started_at = statement_timestamp(),
        lease_expires_at = statement_timestamp() + make_interval(secs => $4::float8),
        -- A new attempt starts with no progress (jobrunner.progress).
        progress = NULL, progress_message = NULL, progress_data = NULL, progress_at = NULL
    WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING j.id, j.queue, j.task, j.args, j.attempt, j.max_attempts, j.timeout, j.priority,
              j.fairness_key, j.trace_context,
              -- how long it waited to be picked up (jobrunner.metrics), by this clock
              extract(epoch FROM statement_timestamp() - j.run_at)::float8 AS waited
), spent AS (
    -- What the start-rate buckets have left: refilled up to now, less the jobs started.
    UPDATE jobrunner.queues AS q
    SET rate_tokens = b.tokens - (SELECT count(*) FROM claimed AS c WHERE c.queue = q.name),
        rate_refilled_at = statement_timestamp()
    FROM budgets AS b
    WHERE q.name = b.queue AND b.tokens IS NOT NULL
)
-- In the order chosen, which is the order the worker starts them in.
SELECT claimed.* FROM claimed JOIN chosen USING (id) ORDER BY chosen.claim_order;

-- name: job_claim_from_positions
-- job_claim (its comment tells the policy and $1..$6), for a worker that keeps lane positions
-- ($7..$11: queue, priority, fairness_key, run_at, id; jobrunner.worker.lanes), used only
-- while a long transaction holds back cleanup: each probe that may enter a lane with a
-- position starts that lane there, not at its oldest (dead) index entry. Kept apart from
-- job_claim, which runs the rest of the time: this one's larger plan made the common case's
-- pickup slower (p50 4.8 -> 9.4 ms at 2,000 jobs/s, `jobrunner bench --only horizon`),
-- and the two must change together (tests/engine/test_lane_positions.py claims the same
-- jobs with both).
WITH RECURSIVE wanted AS (
    SELECT w.queue, w.after_key COLLATE "C" AS after_key, q.max_running,
           q.max_running_per_owner, bucket.tokens
    FROM unnest($1::text[], $5::text[]) AS w(queue, after_key)
    LEFT JOIN jobrunner.queues AS q ON q.name = w.queue
    -- The start-rate bucket: refilled at the rate since its last use, holding at most one
    -- second's starts (at least one), so starts over any minute stay within the limit.
    LEFT JOIN LATERAL (
        SELECT CASE WHEN q.rate_refilled_at IS NULL THEN capacity
                    ELSE least(capacity,
                               q.rate_tokens + per_second
                                   * extract(epoch FROM statement_timestamp() - q.rate_refilled_at))
               END AS tokens
        FROM (SELECT q.rate_limit / extract(epoch FROM q.rate_period) AS per_second) AS rate,
             LATERAL (SELECT greatest(1.0, rate.per_second) AS capacity) AS cap
        WHERE q.rate_limit IS NOT NULL
    ) AS bucket ON true
    WHERE q.paused_at IS NULL
      AND (q.max_running IS NOT NULL OR q.max_running_per_owner IS NOT NULL
           OR q.rate_limit IS NOT NULL) = $6
), running AS (
    -- What runs now in the queues with a concurrency limit, by key (read only under the lock).
    SELECT r.queue, r.fairness_key, count(*) AS jobs
    FROM jobrunner.jobs AS r
    WHERE $6 AND r.state = 'running'
      AND r.queue IN (SELECT queue FROM wanted
                      WHERE max_running IS NOT NULL OR max_running_per_owner IS NOT NULL)
    GROUP BY r.queue, r.fairness_key
), budgets AS (
    SELECT w.queue, w.after_key, w.max_running_per_owner, w.tokens,
           least($3,
                 w.max_running - (SELECT coalesce(sum(jobs), 0) FROM running
                                  WHERE running.queue = w.queue),
                 floor(w.tokens))::int AS budget
    FROM wanted AS w
), positions AS MATERIALIZED (
    -- Where this worker's claims reached in lanes it took from lately, while a long
    -- transaction holds back cleanup ($7..$11: queue, priority, fairness_key, run_at, id,
    -- one lane per element; empty otherwise; jobrunner.worker.lanes keeps them). Every
    -- entry of such a lane before its position is a job already claimed, whose index entry
    -- no vacuum may remove yet, or one that appeared behind it since (committed late, or
    -- put back), which jobrunner.worker.lanes looks for and moves the position back to. So
    -- a probe entering the lane starts at its position: stepping over those dead entries,
    -- a minute's worth for each minute the transaction lasts, was the claim's whole cost.
    SELECT queue, priority, fairness_key COLLATE "C" AS fairness_key, run_at, id
    FROM unnest($7::text[], $8::smallint[], $9::text[], $10::timestamptz[], $11::uuid[])
         AS p(queue, priority, fairness_key, run_at, id)
), lanes (queue, priority, fairness_key, top_priority, after_key, wrapped, n, first_run_at,
           first_id, top_key, top_run_at, top_id) AS (
    -- Where each queue's walk starts: its top priority, at the cursor (not itself a lane).
    -- The probe for the top priority also finds the first job of its first key (top_key,
    -- top_run_at, top_id), which the wrap below takes without a probe of its own.
    -- Each probe that may enter a lane with a position is split in index order around the
    -- first such lane (p): the lanes before it, p from its position, the lanes after it.
    -- Without positions the lookups are skipped ($7 empty), and without p the branches that
    -- need it (`p.id IS NOT NULL`, tested once per probe).
    SELECT b.queue, best.priority, b.after_key, best.priority, b.after_key, false, 0,
           NULL::timestamptz, NULL::uuid, best.fairness_key, best.run_at, best.id
    FROM budgets AS b
    LEFT JOIN LATERAL (
        SELECT priority, fairness_key, run_at, id FROM positions
        WHERE $7::text[] <> '{}' AND queue = b.queue ORDER BY priority DESC, fairness_key LIMIT 1
    ) AS p ON true
    CROSS JOIN LATERAL (
        (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
         WHERE p.id IS NOT NULL AND state = 'queued'
           AND queue = b.queue AND priority > p.priority
         ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
        UNION ALL
        (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
         WHERE p.id IS NOT NULL AND state = 'queued'
           AND queue = b.queue AND priority = p.priority
           AND fairness_key < p.fairness_key
         ORDER BY fairness_key, run_at, id LIMIT 1)
        UNION ALL
        (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
         WHERE p.id IS NOT NULL AND state = 'queued'
           AND queue = b.queue AND priority = p.priority
           AND fairness_key = p.fairness_key AND (run_at, id) >= (p.run_at, p.id)
         ORDER BY run_at, id LIMIT 1)
        UNION ALL
        (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
         WHERE p.id IS NOT NULL AND state = 'queued'
           AND queue = b.queue AND priority = p.priority
           AND fairness_key > p.fairness_key
         ORDER BY fairness_key, run_at, id LIMIT 1)
        UNION ALL
        -- (priorities are -100..100: 101 is above them all)
        (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
         WHERE state = 'queued' AND queue = b.queue AND priority < coalesce(p.priority, 101)
         ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
        LIMIT 1
    ) AS best
    WHERE b.budget > 0
    UNION ALL
    SELECT l.queue, step.priority, step.fairness_key, l.top_priority, l.after_key, step.wrapped,
           l.n + 1, step.run_at, step.id, l.top_key, l.top_run_at, l.top_id
    FROM lanes AS l
    CROSS JOIN LATERAL (
        -- the next key of this priority (at the top priority, up to the last key; then...)
        (SELECT next.priority, next.fairness_key, l.wrapped AS wrapped, next.run_at, next.id
         FROM (SELECT) AS here
         LEFT JOIN LATERAL (
             SELECT fairness_key, run_at, id FROM positions
             WHERE $7::text[] <> '{}' AND queue = l.queue AND priority = l.priority
               AND fairness_key > l.fairness_key
             ORDER BY fairness_key LIMIT 1
         ) AS p ON true
         CROSS JOIN LATERAL (
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = l.priority
                AND fairness_key > l.fairness_key AND fairness_key < p.fairness_key
              ORDER BY fairness_key, run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = l.priority
                AND fairness_key = p.fairness_key AND (run_at, id) >= (p.run_at, p.id)
              ORDER BY run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE state = 'queued' AND queue = l.queue AND priority = l.priority
                AND fairness_key > coalesce(p.fairness_key, l.fairness_key)
              ORDER BY fairness_key, run_at, id LIMIT 1)
             LIMIT 1
         ) AS next
         WHERE NOT l.wrapped OR l.priority <> l.top_priority)
        UNION ALL
        -- ...wrapped around: the first key (found with the top priority), if it is not past
        -- the cursor, then the keys after it up to and including the cursor
        (SELECT l.priority, l.top_key, true, l.top_run_at, l.top_id
         WHERE NOT l.wrapped AND l.priority = l.top_priority AND l.top_key <= l.after_key)
        UNION ALL
        (SELECT next.priority, next.fairness_key, true, next.run_at, next.id
         FROM (SELECT) AS here
         LEFT JOIN LATERAL (
             SELECT fairness_key, run_at, id FROM positions
             WHERE $7::text[] <> '{}' AND queue = l.queue AND priority = l.priority
               AND fairness_key > l.fairness_key
               AND fairness_key <= l.after_key
             ORDER BY fairness_key LIMIT 1
         ) AS p ON true
         CROSS JOIN LATERAL (
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = l.priority
                AND fairness_key > l.fairness_key AND fairness_key < p.fairness_key
              ORDER BY fairness_key, run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = l.priority
                AND fairness_key = p.fairness_key AND (run_at, id) >= (p.run_at, p.id)
              ORDER BY run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE state = 'queued' AND queue = l.queue AND priority = l.priority
                AND fairness_key > coalesce(p.fairness_key, l.fairness_key)
                AND fairness_key <= l.after_key
              ORDER BY fairness_key, run_at, id LIMIT 1)
             LIMIT 1
         ) AS next
         WHERE l.wrapped AND l.priority = l.top_priority)
        UNION ALL
        -- then the lower priorities, in key order (they fill what the top leaves)
        (SELECT next.priority, next.fairness_key, l.wrapped, next.run_at, next.id
         FROM (SELECT) AS here
         LEFT JOIN LATERAL (
             SELECT priority, fairness_key, run_at, id FROM positions
             WHERE $7::text[] <> '{}' AND queue = l.queue AND priority < l.priority
             ORDER BY priority DESC, fairness_key LIMIT 1
         ) AS p ON true
         CROSS JOIN LATERAL (
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority < l.priority
                AND priority > p.priority
              ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = p.priority
                AND fairness_key < p.fairness_key
              ORDER BY fairness_key, run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = p.priority
                AND fairness_key = p.fairness_key AND (run_at, id) >= (p.run_at, p.id)
              ORDER BY run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE p.id IS NOT NULL AND state = 'queued'
                AND queue = l.queue AND priority = p.priority
                AND fairness_key > p.fairness_key
              ORDER BY fairness_key, run_at, id LIMIT 1)
             UNION ALL
             (SELECT priority, fairness_key, run_at, id FROM jobrunner.jobs
              WHERE state = 'queued' AND queue = l.queue
                AND priority < coalesce(p.priority, l.priority)
              ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
             LIMIT 1
         ) AS next)
        LIMIT 1
    ) AS step
    WHERE l.n < $3
), shares AS (
    -- A lane's share: the budget split evenly between the lanes of its priority, the ones
    -- first in the walk taking the remainder (the cursor moves past them, so the rest go
    -- first next time). Shares add up to the budget: every row locked is a row claimed.
    SELECT l.queue, l.priority, l.fairness_key, l.n, l.first_run_at, l.first_id, b.budget,
           least(
               b.budget / count(*) OVER same_priority
               + CASE WHEN row_number() OVER (same_priority ORDER BY l.n)
                           <= b.budget % count(*) OVER same_priority
                      THEN 1 ELSE 0 END,
               CASE WHEN b.max_running_per_owner IS NOT NULL THEN
                   b.max_running_per_owner
                   - coalesce((SELECT jobs FROM running
                               WHERE running.queue = l.queue
                                 AND running.fairness_key = l.fairness_key), 0)::int
               END
           ) AS share
    FROM lanes AS l JOIN budgets AS b USING (queue)
    WHERE l.n > 0
    WINDOW same_priority AS (PARTITION BY l.queue, l.priority)
), candidates AS (
    SELECT s.queue, s.priority, s.n, s.budget, c.id,
           row_number() OVER (PARTITION BY s.queue, s.n ORDER BY c.run_at, c.id) AS turn
    FROM shares AS s
    CROSS JOIN LATERAL (
        SELECT id, run_at FROM jobrunner.jobs
        WHERE state = 'queued' AND queue = s.queue AND priority = s.priority
          AND fairness_key = s.fairness_key
          -- from the lane's first live job, which the walk found: the index entries before
          -- it are dead (claimed), and a long transaction elsewhere keeps them from being
          -- cleaned, so not walking them twice is half the claim's cost in that case
          AND (run_at, id) >= (s.first_run_at, s.first_id)
        ORDER BY run_at, id
        LIMIT greatest(s.share, 0)
        FOR UPDATE SKIP LOCKED
    ) AS c
), chosen AS (
    SELECT id, row_number() OVER (ORDER BY priority DESC, turn, n) AS claim_order
    FROM (
        SELECT id, priority, turn, n, budget,
               row_number() OVER (PARTITION BY queue ORDER BY priority DESC, turn, n) AS place
        FROM candidates
    ) AS ranked
    WHERE place <= budget
    ORDER BY priority DESC, turn, n
    LIMIT $3
), claimed AS (
    UPDATE jobrunner.jobs AS j
    SET state = 'running',
        attempt = j.attempt + 1,
        worker_id = $2,
        started_at = statement_timestamp(),
        lease_expires_at = statement_timestamp() + make_interval(secs => $4::float8),
        -- A new attempt starts with no progress (jobrunner.progress).
        progress = NULL, progress_message = NULL, progress_data = NULL, progress_at = NULL
    WHERE j.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING j.id, j.queue, j.task, j.args, j.attempt, j.max_attempts, j.timeout, j.priority,
              j.fairness_key, j.trace_context, j.run_at,
              -- how long it waited to be picked up (jobrunner.metrics), by this clock
              extract(epoch FROM statement_timestamp() - j.run_at)::float8 AS waited
), spent AS (
    -- What the start-rate buckets have left: refilled up to now, less the jobs started.
    UPDATE jobrunner.queues AS q
    SET rate_tokens = b.tokens - (SELECT count(*) FROM claimed AS c WHERE c.queue = q.name),
        rate_refilled_at = statement_timestamp()
    FROM budgets AS b
    WHERE q.name = b.queue AND b.tokens IS NOT NULL
)
-- In the order chosen, which is the order the worker starts them in.
SELECT claimed.* FROM claimed JOIN chosen USING (id) ORDER BY chosen.claim_order;

-- name: job_lanes_behind
-- For each lane position ($1..$5 as job_claim's $7..$11), the first queued job behind it: one
-- that appeared after the claims passed that point (its transaction committed late, it was
-- put back, or it was locked when they passed). jobrunner.worker.lanes moves the position
-- back to it. Each probe steps over the lane's dead entries that the claims skip: this runs
-- on its own connection, not in the claim's path.
SELECT p.queue, p.priority, p.fairness_key, behind.run_at, behind.id
FROM unnest($1::text[], $2::smallint[], $3::text[], $4::timestamptz[], $5::uuid[])
     AS p(queue, priority, fairness_key, run_at, id)
CROSS JOIN LATERAL (
    SELECT run_at, id FROM jobrunner.jobs
    WHERE state = 'queued' AND queue = p.queue AND priority = p.priority
      AND fairness_key = p.fairness_key COLLATE "C" AND (run_at, id) < (p.run_at, p.id)
    ORDER BY run_at, id LIMIT 1
) AS behind;

-- name: job_record_outcomes
-- Record attempt outcomes in one statement. Each is fenced by (id, attempt, worker): if the
-- job was rescued, cancelled or claimed again meanwhile, that outcome changes nothing.
-- kind (jobrunner.models.OutcomeKind):
--   succeeded | cancelled | failed (for good);
--   retry: retrying while attempts remain, else failed. It waits retry_delay seconds when
--     the handler named one (Retry(after=...)), else the job's own backoff: a draw between
--     half and all of least(cap, base * 2^(attempt-1)), from backoff_base / backoff_cap on
--     the row, or the worker's defaults $8 / $9 (seconds) where those are NULL;
--   defer: the attempt is given back (not counted) and the job waits retry_delay seconds,
--     e.g. a task this worker does not know yet during a deploy. After $10 deferrals it
--     counts as a retry instead, so a job no worker will ever know still ends.
-- jobrunner.attempt_outcome decides (migration 0006); the planner inlines it.
-- A job that has children (child_added_at) is left alone unless $18: its end must release or
-- cancel its children in the same transaction, and a statement cannot see a child committed
-- after it began, so jobrunner.dependencies writes those in a transaction of their own
-- (this statement with $18, then job_dependencies_settle). The test is on the row as it is
-- when updated: a child added while this statement waited for the parent's row (its lock is
-- taken by job_dependencies_add) is seen here, so no child is ever missed. $18 comes in per
-- row and the test is a join clause, as the worker's id is: as a filter on the jobs side it
-- lowered the planner's estimate of the jobs read, and the plan looped over the whole batch
-- once per job (45 µs of the database's CPU a job, not 30).
-- result and error arrive as JSON text, encoded by the worker as each attempt ends.
-- Also counts outcomes per minute and queue, and queues a webhook delivery for each job with
-- a callback URL that reached a terminal state, in the same transaction (none is lost).
-- One UPDATE over the unnested batch, no second read of the jobs: the new state is worked out
-- from the row being updated (its attempt against max_attempts).
-- The worker's id comes in per row (array_fill) and is matched as a join clause: as a filter
-- on the jobs side (`j.worker_id = $7`), a value the statistics never saw, the planner expects
-- one row there and loops over the whole batch once per job (a 250-job write took 30 ms,
-- not 2). job_heartbeat and job_release_many match it the same way.
-- 'running' comes in per row too (o.held): as a constant it let the planner read every
-- running job through jobs_lease_idx and hash them, a plan whose cost it could not tell
-- from the batch's, so it planned each call anew (0.5 ms, ~4 µs a job). Matched per row,
-- only the primary key finds the rows: one plan, a nested loop over the batch, kept.
WITH recorded AS (
    UPDATE jobrunner.jobs AS j
    SET state = jobrunner.outcome_state(
            jobrunner.attempt_outcome(o.kind, j.attempt, j.max_attempts, j.errors, $10)),
        attempt = j.attempt - (jobrunner.attempt_outcome(
            o.kind, j.attempt, j.max_attempts, j.errors, $10) = 'deferred')::int,
        finished_at = CASE WHEN jobrunner.attempt_outcome(
                                o.kind, j.attempt, j.max_attempts, j.errors, $10)
                                IN ('retrying', 'deferred') THEN NULL ELSE now() END,
        run_at = CASE WHEN jobrunner.attempt_outcome(
                               o.kind, j.attempt, j.max_attempts, j.errors, $10)
                               IN ('retrying', 'deferred')
                      THEN now() + make_interval(secs => greatest(0, coalesce(
                          o.retry_delay,
                          jobrunner.backoff_delay(
                              j.attempt,
                              coalesce(extract(epoch FROM j.backoff_base)::float8, $8::float8),
                              coalesce(extract(epoch FROM j.backoff_cap)::float8, $9::float8)))))
                      ELSE j.run_at END,
        result = CASE WHEN o.kind = 'succeeded' THEN o.result::jsonb END,
        lease_expires_at = NULL,
        errors = CASE WHEN o.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(o.error::jsonb || jsonb_build_object(
                          'attempt', j.attempt, 'worker', j.worker_id,
                          'started_at', j.started_at, 'finished_at', now(),
                          'outcome', jobrunner.attempt_outcome(
                              o.kind, j.attempt, j.max_attempts, j.errors, $10))) END
    FROM unnest($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::float8[],
                array_fill($7::text, ARRAY[cardinality($1::uuid[])]),
                array_fill($18::bool, ARRAY[cardinality($1::uuid[])]),
                array_fill('running'::jobrunner.job_state, ARRAY[cardinality($1::uuid[])]))
         AS o(id, attempt, kind, result, error, retry_delay, worker, with_children, held)
    WHERE j.id = o.id AND j.attempt = o.attempt AND j.worker_id = o.worker
      AND j.state = o.held AND (j.child_added_at IS NULL OR o.with_children)
    RETURNING j.id, j.queue, j.state, j.owner, j.callback_url, j.run_at, j.attempt,
              j.child_added_at IS NOT NULL AS has_children, j.trace_context
), counted AS (
    INSERT INTO jobrunner.throughput AS t (minute, queue, succeeded, failed, retried, cancelled)
    SELECT date_trunc('minute', now()), queue,
           count(*) FILTER (WHERE state = 'succeeded'), count(*) FILTER (WHERE state = 'failed'),
           count(*) FILTER (WHERE state = 'retrying'), count(*) FILTER (WHERE state = 'cancelled')
    FROM recorded GROUP BY queue ORDER BY queue
    ON CONFLICT (minute, queue) DO UPDATE
    SET succeeded = t.succeeded + excluded.succeeded, failed = t.failed + excluded.failed,
        retried = t.retried + excluded.retried, cancelled = t.cancelled + excluded.cancelled
), webhooks AS (
    -- The deliveries' rows: $11-$17 are made by the parameter maker (jobrunner.job_rows)
    -- from the delivery task's defaults; only the job they deliver is filled in here.
    -- Owned by nobody: a delivery is jobrunner's work, not the user's. It joins the trace
    -- of the job it delivers (jobrunner.tracing).
    INSERT INTO jobrunner.jobs
        (queue, task, args, priority, max_attempts, timeout, backoff_base, backoff_cap,
         trace_context)
    SELECT $11, $12, jsonb_build_object('job_id', id), $13, $14, $15, $16, $17, trace_context
    FROM recorded
    WHERE callback_url IS NOT NULL AND state IN ('succeeded', 'failed', 'cancelled')
    RETURNING queue
)
-- run_at only for a retrying job (its next run, for the worker's log line): a timestamp
-- decoded for every succeeded job cost the worker ~0.5 µs a job for nothing.
-- `rung`: one doorbell on jobrunner_outcomes per statement that wrote anything, delivered at
-- commit, so the API's event streams read the new states at once instead of at their next
-- poll (jobrunner.api.events); both subqueries are uncorrelated, so each runs once.
SELECT recorded.id, recorded.state,
       CASE WHEN recorded.state = 'retrying' THEN recorded.run_at END AS run_at,
       recorded.attempt, recorded.has_children,
       (SELECT count(pg_notify('jobrunner_jobs', $11))
        FROM (SELECT 1 FROM webhooks LIMIT 1) AS any_webhook) AS webhooks,
       (SELECT count(pg_notify('jobrunner_outcomes', ''))
        FROM (SELECT 1 FROM recorded LIMIT 1) AS any_recorded) AS rung
FROM recorded;

-- name: job_heartbeat
-- Extend the leases of the attempts worker $3 still holds; returns the ones it still holds,
-- and whether a cancel was asked for each. An attempt missing from the answer was lost.
-- A row some other transaction has locked (this worker's own outcome flush, most often) is
-- skipped, not waited for: the flush and the heartbeat each lock their rows in their own
-- order, so waiting could deadlock them. A skipped attempt is reported held, as this
-- statement's snapshot sees it, and renewed at the next beat.
WITH held AS (  -- the worker's id per row: see job_record_outcomes
    SELECT *
    FROM unnest($1::uuid[], $2::int4[], array_fill($3::text, ARRAY[cardinality($1::uuid[])]))
         AS held(id, attempt, worker)
), mine AS (
    SELECT j.id
    FROM jobrunner.jobs AS j
    JOIN held ON j.id = held.id AND j.attempt = held.attempt AND j.worker_id = held.worker
    WHERE j.state = 'running'
    FOR UPDATE OF j SKIP LOCKED
), renewed AS (
    UPDATE jobrunner.jobs AS j
    SET lease_expires_at = now() + make_interval(secs => $4::float8)
    FROM mine
    WHERE j.id = mine.id
    RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested
)
SELECT id, cancel_requested FROM renewed
UNION ALL
SELECT j.id, j.cancel_requested_at IS NOT NULL
FROM jobrunner.jobs AS j
JOIN held ON j.id = held.id AND j.attempt = held.attempt AND j.worker_id = held.worker
WHERE j.state = 'running' AND j.id NOT IN (SELECT id FROM renewed);

-- name: job_release_many
-- A worker shutting down hands back attempts it will not finish: queued again at once, the
-- interrupted attempt not counted against the job.
WITH released AS (
    UPDATE jobrunner.jobs AS j
    SET state = 'queued', attempt = j.attempt - 1, run_at = now(), lease_expires_at = NULL,
        started_at = NULL, worker_id = NULL
    FROM unnest($1::uuid[], $2::int4[], array_fill($3::text, ARRAY[cardinality($1::uuid[])]))
         AS held(id, attempt, worker)  -- the worker's id per row: see job_record_outcomes
    WHERE j.id = held.id AND j.attempt = held.attempt AND j.worker_id = held.worker
      AND j.state = 'running' AND j.cancel_requested_at IS NULL
    RETURNING j.id, j.queue
)
SELECT released.id, pg_notify('jobrunner_jobs', released.queue) FROM released;

-- name: job_get_visible
-- A job as user $2 may see it: admins ($3) see all, others only their own.
SELECT * FROM jobrunner.all_jobs WHERE id = $1 AND ($3::bool OR owner = $2);

-- name: job_list_id_range
-- Jobs whose id lies between $1 and $2 (an id prefix, such as the dashboard's short ids, as
-- a range of the primary key) that user $3 may see (admins, $4, see all); at most $5.
SELECT * FROM jobrunner.all_jobs
WHERE id BETWEEN $1 AND $2 AND ($4::bool OR owner = $3)
ORDER BY id DESC
LIMIT $5;

-- name: job_cancel
-- Cancel a job: at once unless running; a running one is asked to stop, and its worker is
-- told through the cancel channel (and its heartbeat, should the notification be lost).
-- A job cancelled at once that has children is settled by the caller, same transaction.
WITH cancelled AS (
    UPDATE jobrunner.jobs AS j
    SET state = CASE WHEN j.state = 'running' THEN 'running' ELSE 'cancelled' END::jobrunner.job_state,
        finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE now() END,
        cancel_requested_at = now()
    WHERE j.id = $1 AND ($3::bool OR j.owner = $2)
      AND j.state NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING j.*
)
SELECT cancelled.*
FROM cancelled
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_cancel', cancelled.id::text) WHERE cancelled.state = 'running'
) AS bell ON true;

-- name: job_retry
-- Put a failed or cancelled job back in the queue, with one more attempt if it had none left.
WITH retried AS (
    UPDATE jobrunner.jobs AS j
    SET state = 'queued', run_at = now(), finished_at = NULL, result = NULL,
        cancel_requested_at = NULL, max_attempts = greatest(j.max_attempts, j.attempt + 1)
    WHERE j.id = $1 AND ($3::bool OR j.owner = $2) AND j.state IN ('failed', 'cancelled')
    RETURNING j.*
)
SELECT retried.*
FROM retried
LEFT JOIN LATERAL (SELECT pg_notify('jobrunner_jobs', retried.queue)) AS doorbell ON true;

-- name: job_promote_due
-- Scheduled and retrying jobs whose time has come become queued; rings each queue's doorbell.
WITH due AS (
    SELECT id FROM jobrunner.jobs
    WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), promoted AS (
    UPDATE jobrunner.jobs AS j SET state = 'queued'
    WHERE j.id = ANY(ARRAY(SELECT id FROM due))  -- a key lookup in any plan, as in job_claim
    RETURNING j.queue
)
SELECT queue, count(*) AS promoted, pg_notify('jobrunner_jobs', queue)
FROM promoted GROUP BY queue;

-- name: job_rescue_expired
-- Attempts whose lease expired (their worker died or froze) count as failed with "worker
-- lost": queued again at once while attempts remain, else failed. Those that ended and have
-- children come back with has_children: the caller settles them (job_dependencies_settle)
-- in the same transaction.
WITH expired AS (
    SELECT id FROM jobrunner.jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), rescued AS (
    UPDATE jobrunner.jobs AS j
    SET state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                     WHEN j.attempt < j.max_attempts THEN 'queued'
                     ELSE 'failed' END::jobrunner.job_state,
        finished_at = CASE WHEN j.cancel_requested_at IS NULL AND j.attempt < j.max_attempts
                           THEN NULL ELSE now() END,
        run_at = now(),
        lease_expires_at = NULL,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'worker', j.worker_id, 'started_at', j.started_at,
            'finished_at', now(), 'error', 'worker lost: lease expired',
            'outcome', CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                            WHEN j.attempt < j.max_attempts THEN 'queued' ELSE 'failed' END))
    WHERE j.id = ANY(ARRAY(SELECT id FROM expired))  -- a key lookup in any plan: job_claim
    RETURNING j.id, j.queue, j.state, j.owner, j.callback_url,
              j.child_added_at IS NOT NULL AS has_children, j.trace_context
), webhooks AS (  -- deliveries as in job_record_outcomes, $2-$8 from the parameter maker
    INSERT INTO jobrunner.jobs
        (queue, task, args, priority, max_attempts, timeout, backoff_base, backoff_cap,
         trace_context)
    SELECT $2, $3, jsonb_build_object('job_id', id), $4, $5, $6, $7, $8, trace_context
    FROM rescued
    WHERE callback_url IS NOT NULL AND state IN ('failed', 'cancelled')
)
SELECT rescued.id, rescued.state, rescued.has_children,
       pg_notify('jobrunner_jobs', rescued.queue)
FROM rescued;

-- name: job_prune
-- Delete up to $3 jobs finished in state $1 more than $2 seconds ago, oldest first, and their
-- rows in job_dependencies. A parent is kept while a child of it is unfinished (a child reads
-- its parents' results each time it runs), and for $2 seconds after it last gained a child:
-- that last test is made again on the row as it is when deleted, so a child added while this
-- statement ran (after its snapshot, unseen by NOT EXISTS) keeps its parent.
WITH pruned AS (
    DELETE FROM jobrunner.jobs
    WHERE id = ANY(ARRAY(  -- a key lookup in any plan, as in job_claim
        SELECT j.id FROM jobrunner.jobs AS j
        WHERE j.state = $1::jobrunner.job_state
          AND j.finished_at < now() - make_interval(secs => $2::float8)
          AND j.state IN ('succeeded', 'failed', 'cancelled')
          AND (j.child_added_at IS NULL OR NOT EXISTS (
              SELECT 1 FROM jobrunner.job_dependencies AS d
              JOIN jobrunner.jobs AS c ON c.id = d.child_id
              WHERE d.parent_id = j.id AND c.state NOT IN ('succeeded', 'failed', 'cancelled')))
        ORDER BY j.finished_at
        LIMIT $3
    ))
      AND (child_added_at IS NULL OR child_added_at < now() - make_interval(secs => $2::float8))
    RETURNING id, pending_parents IS NOT NULL AS has_parents,
              child_added_at IS NOT NULL AS has_children
), as_child AS (
    -- Their rows in job_dependencies, found by an index probe per pruned job that had any
    -- (none for the rest) and deleted by row address, as in job_dependencies_settle.
    SELECT d.ctid AS row_id FROM pruned AS p
    CROSS JOIN LATERAL (
        SELECT ctid FROM jobrunner.job_dependencies WHERE child_id = p.id AND p.has_parents
        FOR UPDATE
    ) AS d
), as_parent AS (
    SELECT d.ctid AS row_id FROM pruned AS p
    CROSS JOIN LATERAL (
        SELECT ctid FROM jobrunner.job_dependencies WHERE parent_id = p.id AND p.has_children
        FOR UPDATE
    ) AS d
), unlinked AS (
    DELETE FROM jobrunner.job_dependencies
    WHERE ctid = ANY(ARRAY(SELECT row_id FROM as_child UNION ALL SELECT row_id FROM as_parent))
)
SELECT count(*) FROM pruned;

-- ===== The archive: finished jobs leave jobs for job_history (migration 0020) =====

-- name: job_archive
-- Move up to $2 jobs finished more than $1 seconds ago, oldest first, from jobs to
-- job_history, in one statement: any snapshot sees each in exactly one table. Rows another
-- transaction holds (a retry, a new child, a bulk action) are skipped, and the finished test
-- is made again on the row as it is when deleted. A parent stays while a child of it is
-- unfinished (a child reads its parents' results each time it runs) and for $1 seconds after
-- it last gained a child (job_dependencies_add marks it), as job_prune keeps one.
-- $3: where to start along jobs_finished_idx (NULL: its start). Behind a long transaction
-- elsewhere, the entries of the jobs moved already stay in that index, dead but not yet
-- removable, and a walk from its start steps over every one of them at each tick
-- (jobrunner.worker.maintenance remembers how far the last move reached). Answers how many
-- moved and the newest finished_at among them.
WITH moved AS (
    DELETE FROM jobrunner.jobs
    WHERE id = ANY(ARRAY(  -- a key lookup in any plan, as in job_claim
        SELECT j.id FROM jobrunner.jobs AS j
        WHERE j.state IN ('succeeded', 'failed', 'cancelled')
          AND j.finished_at < now() - make_interval(secs => $1::float8)
          AND j.finished_at >= coalesce($3::timestamptz, '-infinity')
          AND (j.child_added_at IS NULL OR NOT EXISTS (
              SELECT 1 FROM jobrunner.job_dependencies AS d
              JOIN jobrunner.jobs AS c ON c.id = d.child_id
              WHERE d.parent_id = j.id AND c.state NOT IN ('succeeded', 'failed', 'cancelled')))
        ORDER BY j.finished_at
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ))
      -- finished, as the row is now (the table's finished_exactly_when_terminal: the same
      -- test as the state's). Said by finished_at, not by state, so that jobs_finished_idx,
      -- whose predicate is the state's, cannot serve this scan: the planner read every
      -- entry of it here (filtering on the ids) where it misjudged how many there are, dead
      -- ones behind a long transaction included. The primary key is the only way in.
      AND finished_at IS NOT NULL
      AND (child_added_at IS NULL OR child_added_at < now() - make_interval(secs => $1::float8))
    RETURNING *
), archived AS (
    INSERT INTO jobrunner.job_history SELECT * FROM moved RETURNING finished_at
)
SELECT count(*) AS moved, max(finished_at) AS newest FROM archived;

-- name: job_history_restore
-- Move the archived jobs $1 in states $4 that user $2 may touch (admins, $3: all) back to
-- jobs, unchanged, in one statement: before a write to a finished job (a retry, a new
-- child), which then runs on jobs in the same transaction. Answers the ids moved.
WITH restored AS (
    DELETE FROM jobrunner.job_history AS h
    WHERE h.id = ANY($1::uuid[]) AND ($3::bool OR h.owner = $2)
      AND h.state = ANY($4::jobrunner.job_state[])
    RETURNING h.*
), moved AS (
    INSERT INTO jobrunner.jobs SELECT * FROM restored RETURNING id
)
SELECT id FROM moved;

-- name: job_lock_many
-- Lock the jobs $1 still in jobs (as job_dependencies_add will), waiting for a transaction
-- that holds one (the archiver moving it: it is then gone, and found in job_history by a
-- job_history_restore after). Answers how many are held.
SELECT count(*) FROM (
    SELECT id FROM jobrunner.jobs WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE
) AS held;

-- name: job_history_prune
-- Delete up to $3 archived jobs finished in state $1 more than $2 seconds ago, oldest first
-- (job_history_state_idx), and their rows in job_dependencies: for the states kept shorter
-- than the longest retention, whose partitions live on for the others.
WITH pruned AS (
    DELETE FROM jobrunner.job_history
    WHERE (id, finished_at) IN (
        SELECT id, finished_at FROM jobrunner.job_history
        WHERE state = $1::jobrunner.job_state
          AND finished_at < now() - make_interval(secs => $2::float8)
        ORDER BY finished_at
        LIMIT $3
    )
    RETURNING id, pending_parents IS NOT NULL AS has_parents,
              child_added_at IS NOT NULL AS has_children
), unlinked AS (
    DELETE FROM jobrunner.job_dependencies AS d
    USING pruned
    WHERE (d.child_id = pruned.id AND pruned.has_parents)
       OR (d.parent_id = pruned.id AND pruned.has_children)
)
SELECT count(*) FROM pruned;

-- name: job_history_default_prune
-- As job_history_prune, in the default partition only (jobs finished where no partition
-- was, such as those an upgrade left in jobs): partitions cover the rest, dropped whole.
WITH pruned AS (
    DELETE FROM jobrunner.job_history_default
    WHERE (id, finished_at) IN (
        SELECT id, finished_at FROM jobrunner.job_history_default
        WHERE state = $1::jobrunner.job_state
          AND finished_at < now() - make_interval(secs => $2::float8)
        ORDER BY finished_at
        LIMIT $3
    )
    RETURNING id, pending_parents IS NOT NULL AS has_parents,
              child_added_at IS NOT NULL AS has_children
), unlinked AS (
    DELETE FROM jobrunner.job_dependencies AS d
    USING pruned
    WHERE (d.child_id = pruned.id AND pruned.has_parents)
       OR (d.parent_id = pruned.id AND pruned.has_children)
)
SELECT count(*) FROM pruned;

-- name: job_history_partitions_make
-- Partitions of job_history from $1 seconds before now to $2 seconds after (or around $5,
-- a test's clock), $3 seconds wide, those missing made; waits $4 seconds at most for locks.
SELECT jobrunner.job_history_partitions_make(
    coalesce($5::timestamptz, now()) - make_interval(secs => $1::float8),
    coalesce($5::timestamptz, now()) + make_interval(secs => $2::float8),
    make_interval(secs => $3::float8), make_interval(secs => $4::float8));

-- name: job_history_partitions_drop
-- Drop the partitions of job_history whose jobs all finished more than $1 seconds ago (or
-- before $3 less $1, a test's clock), with their links; waits $2 seconds at most for locks.
SELECT jobrunner.job_history_partitions_drop(
    coalesce($3::timestamptz, now()) - make_interval(secs => $1::float8),
    make_interval(secs => $2::float8));

-- name: job_history_partitions_list
-- The partitions of job_history, oldest first, with their bounds (doctor, tests, psql).
SELECT c.relname AS name,
       pg_get_expr(c.relpartbound, c.oid) AS bounds
FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
WHERE i.inhparent = 'jobrunner.job_history'::regclass
ORDER BY c.relname;

-- name: job_archive_oldest
-- Seconds since the oldest finished job still in jobs finished (NULL: none), for doctor and
-- /metrics: the archiver moves each one JOBRUNNER_ARCHIVE_AFTER after it finishes, so an
-- age well past that says it has fallen behind. min() is read from the low end of
-- jobs_finished_idx, stepping over the parents that gained a child: the archiver keeps
-- those while a child is unfinished, however long that is, and they say nothing of its pace.
SELECT extract(epoch FROM now() - min(finished_at))::float8 AS seconds
FROM jobrunner.jobs
WHERE state IN ('succeeded', 'failed', 'cancelled') AND child_added_at IS NULL;

-- name: job_archive_due
-- The finished jobs in jobs the archiver could have moved (finished more than $1 seconds
-- ago, parents that gained a child aside, as in job_archive_oldest), counted up to $2:
-- along jobs_finished_idx from its low end, so a backlog of millions costs $2 rows.
SELECT count(*) AS due FROM (
    SELECT 1 FROM jobrunner.jobs
    WHERE state IN ('succeeded', 'failed', 'cancelled')
      AND finished_at < now() - make_interval(secs => $1::float8)
      AND child_added_at IS NULL
    ORDER BY finished_at  -- the index's order: a seq scan could read the whole table first
    LIMIT $2
) AS due;

-- name: job_history_partitions_ahead
-- job_history's partitions by the catalog alone (the default partition aside): how many
-- there are, how many start after now, and whether one covers now. What doctor compares
-- with JOBRUNNER_HISTORY_PARTITIONS_AHEAD; bounds read as job_history_partitions_drop reads them.
WITH bounds AS (
    SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')
               ::timestamptz AS low,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')
               ::timestamptz AS high
    FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'jobrunner.job_history'::regclass
      AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
)
SELECT count(*) AS made,
       count(*) FILTER (WHERE low > now()) AS ahead,
       coalesce(bool_or(low <= now() AND now() < high), false) AS covers_now
FROM bounds;

-- name: job_history_default_rows
-- Rows in job_history's default partition, counted up to $1, and the finished_at range
-- they span (its copy of job_history_finished_idx, one probe at each end). Empty while
-- partitions are made ahead of the jobs archived into them.
SELECT (SELECT count(*) FROM (SELECT 1 FROM jobrunner.job_history_default LIMIT $1) AS d)
           AS held,
       (SELECT min(finished_at) FROM jobrunner.job_history_default) AS oldest,
       (SELECT max(finished_at) FROM jobrunner.job_history_default) AS newest;

-- name: job_tasks_unknown
-- Tasks with jobs waiting because a worker did not know them (their last attempt was
-- deferred: a deploy under way, or code never deployed), with how many. Read along
-- jobs_due_idx over the $1 soonest-due scheduled and retrying jobs only: a deferred job is
-- due within JOBRUNNER_UNKNOWN_TASK_DELAY, so it stands near the front, and the read stays
-- bounded however many jobs are scheduled (doctor runs it, the dashboard every refresh).
SELECT due.task, count(*) AS jobs
FROM (
    SELECT task, state, errors FROM jobrunner.jobs
    WHERE state IN ('scheduled', 'retrying')
    ORDER BY run_at
    LIMIT $1
) AS due
WHERE due.state = 'retrying' AND due.errors -> -1 ->> 'outcome' = 'deferred'
GROUP BY due.task
ORDER BY due.task;

-- name: job_find_waiting
-- The oldest waiting job of task $1 whose args contain $2 (optionally in queue $3); for tests.
SELECT * FROM jobrunner.jobs
WHERE task = $1 AND args @> $2::jsonb AND ($3::text IS NULL OR queue = $3)
  AND state IN ('waiting', 'queued', 'scheduled', 'retrying')
ORDER BY id
LIMIT 1;

-- name: job_count_unfinished
-- User $1's unfinished jobs, counted up to $2.
SELECT count(*) FROM (
    SELECT 1 FROM jobrunner.jobs
    WHERE owner = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')
    LIMIT $2
) AS unfinished;

-- name: job_list_all
-- Newest first from before cursor $1 (an id; ids are time-ordered), optionally filtered,
-- by tags ($10: the job carries all of them) and args containment ($11) too. A search by
-- those is planned for its own values (queries.job_list), so it reads jobs_tags_idx or
-- jobs_args_idx when they are rare, and walks the primary key when they are common.
-- Those indexes hold only jobs with tags / non-empty args (migration 0019); the second
-- line of each test says so, and is what lets the plan use them (the searches below too).
-- args only when $8 and result only when $9: a column not output is never read from its
-- TOAST, so a page of jobs with megabytes of args each costs no more than any other.
-- payload_bytes (the JSON text of what was included) lets the caller cap a page's size.
SELECT id, queue, task, CASE WHEN $8::bool THEN args END AS args, priority, state, attempt,
       max_attempts, run_at, created_at, started_at, finished_at, worker_id, lease_expires_at,
       timeout, cancel_requested_at, CASE WHEN $9::bool THEN result END AS result, errors,
       dedup_key, owner, callback_url, backoff_base, backoff_cap, pending_parents,
       on_parent_failure, child_added_at, tags,
       CASE WHEN $8::bool THEN octet_length(args::text) ELSE 0 END
       + CASE WHEN $9::bool THEN coalesce(octet_length(result::text), 0) ELSE 0 END
           AS payload_bytes
FROM jobrunner.all_jobs
WHERE id < coalesce($1::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  AND ($2::jobrunner.job_state IS NULL OR state = $2)
  AND ($3::text IS NULL OR task = $3)
  AND ($4::text IS NULL OR queue = $4)
  AND ($5::timestamptz IS NULL OR created_at >= $5)
  AND ($6::timestamptz IS NULL OR created_at < $6)
  AND ($10::text[] IS NULL OR tags @> $10)
  AND ($10 IS NULL OR cardinality($10) = 0 OR tags <> '{}')
  AND ($11::jsonb IS NULL OR args @> $11)
  AND ($11 IS NULL OR $11 = '{}' OR args <> '{}')
ORDER BY id DESC
LIMIT $7;

-- name: job_list_owned
-- Like job_list_all, only user $10's jobs (jobs_owner_idx, read backwards); tags $11 and
-- args $12 as job_list_all's $10 and $11.
SELECT id, queue, task, CASE WHEN $8::bool THEN args END AS args, priority, state, attempt,
       max_attempts, run_at, created_at, started_at, finished_at, worker_id, lease_expires_at,
       timeout, cancel_requested_at, CASE WHEN $9::bool THEN result END AS result, errors,
       dedup_key, owner, callback_url, backoff_base, backoff_cap, pending_parents,
       on_parent_failure, child_added_at, tags,
       CASE WHEN $8::bool THEN octet_length(args::text) ELSE 0 END
       + CASE WHEN $9::bool THEN coalesce(octet_length(result::text), 0) ELSE 0 END
           AS payload_bytes
FROM jobrunner.all_jobs
WHERE owner = $10
  AND id < coalesce($1::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
  AND ($2::jobrunner.job_state IS NULL OR state = $2)
  AND ($3::text IS NULL OR task = $3)
  AND ($4::text IS NULL OR queue = $4)
  AND ($5::timestamptz IS NULL OR created_at >= $5)
  AND ($6::timestamptz IS NULL OR created_at < $6)
  AND ($11::text[] IS NULL OR tags @> $11)
  AND ($11 IS NULL OR cardinality($11) = 0 OR tags <> '{}')
  AND ($12::jsonb IS NULL OR args @> $12)
  AND ($12 IS NULL OR $12 = '{}' OR args <> '{}')
ORDER BY id DESC
LIMIT $7;

-- name: job_get_many
-- Several whole jobs in one round trip (args and result included: not for polling).
SELECT * FROM jobrunner.all_jobs WHERE id = ANY($1::uuid[]);

-- name: job_motion_many
-- Where the jobs $1 that SSE streams watch stand, read each poll: only what moves as a job
-- changes state. An error entry is only ever added as a job leaves `running`, so a job
-- whose motion is unchanged has no new entry, and job_progress_many (which reads the
-- errors column, however many attempts and tracebacks it holds) runs for the moved only.
SELECT id, state, attempt, started_at, finished_at, progress_at
FROM jobrunner.all_jobs
WHERE id = ANY($1::uuid[]);

-- name: job_progress_many
-- What SSE streams need of the jobs $1 they watch, read for those that moved: no args, no
-- result (TOASTed columns not selected are never read, however big), and of each attempt's
-- error entry only its times, outcome and the first $2 characters of its message (no
-- traceback). A poll's cost per job is bounded whatever the job carries.
SELECT j.id, j.state, j.attempt, j.run_at, j.created_at, j.started_at, j.finished_at,
       j.pending_parents IS NOT NULL AS has_parents,
       j.progress, j.progress_message, j.progress_data, j.progress_at,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'attempt', e -> 'attempt', 'outcome', e -> 'outcome',
                      'started_at', e -> 'started_at', 'finished_at', e -> 'finished_at',
                      'error', left(e ->> 'error', $2)) ORDER BY n)
           FROM jsonb_array_elements(j.errors) WITH ORDINALITY AS entries(e, n)
       ), '[]'::jsonb) AS errors
FROM jobrunner.all_jobs AS j
WHERE j.id = ANY($1::uuid[]);

-- name: job_count_by_state
-- Jobs per state and queue; each state's count stops at $1 (one index per state bounds it).
-- Unfinished jobs are only in jobs; finished ones are in both tables, each state counted in
-- a branch of its own with its name spelled out, so each is planned for how common it is
-- (job_history_state_idx for a rare one: never a walk of the archive to find none).
SELECT counted.state, counted.queue, counted.jobs
FROM (
    SELECT states.state, live.queue, live.jobs
    FROM unnest(enum_range(NULL::jobrunner.job_state)) AS states(state)
    CROSS JOIN LATERAL (
        SELECT capped.queue, count(*) AS jobs
        FROM (SELECT queue FROM jobrunner.jobs WHERE state = states.state LIMIT $1) AS capped
        GROUP BY capped.queue
    ) AS live
    WHERE states.state NOT IN ('succeeded', 'failed', 'cancelled')
    UNION ALL
    SELECT 'succeeded', queue, count(*)
    FROM (SELECT queue FROM jobrunner.all_jobs WHERE state = 'succeeded' LIMIT $1) AS capped
    GROUP BY queue
    UNION ALL
    SELECT 'failed', queue, count(*)
    FROM (SELECT queue FROM jobrunner.all_jobs WHERE state = 'failed' LIMIT $1) AS capped
    GROUP BY queue
    UNION ALL
    SELECT 'cancelled', queue, count(*)
    FROM (SELECT queue FROM jobrunner.all_jobs WHERE state = 'cancelled' LIMIT $1) AS capped
    GROUP BY queue
) AS counted
ORDER BY counted.queue, counted.state;

-- name: job_count_live_by_queue
-- Unfinished jobs per queue and state (GET /queues), each state's count stopping at $1. One
-- branch per state, each with its state spelled out, so each reads its own partial index
-- (jobs_claim_idx, jobs_lease_idx, jobs_due_idx, jobs_waiting_idx) and stops at the cap.
SELECT 'queued' AS state, queue, count(*) AS jobs
FROM (SELECT queue FROM jobrunner.jobs WHERE state = 'queued' LIMIT $1) AS capped
GROUP BY queue
UNION ALL
SELECT 'running', queue, count(*)
FROM (SELECT queue FROM jobrunner.jobs WHERE state = 'running' LIMIT $1) AS capped
GROUP BY queue
UNION ALL
SELECT 'scheduled', queue, count(*)
FROM (SELECT queue FROM jobrunner.jobs WHERE state = 'scheduled' LIMIT $1) AS capped
GROUP BY queue
UNION ALL
SELECT 'retrying', queue, count(*)
FROM (SELECT queue FROM jobrunner.jobs WHERE state = 'retrying' LIMIT $1) AS capped
GROUP BY queue
UNION ALL
SELECT 'waiting', queue, count(*)
FROM (SELECT queue FROM jobrunner.jobs WHERE state = 'waiting' LIMIT $1) AS capped
GROUP BY queue;

-- name: job_count_owned_live_by_queue
-- User $1's unfinished jobs per queue and state, read along jobs_owner_live_idx (at most $2
-- rows: the unfinished-jobs cap bounds them anyway).
SELECT mine.state::text AS state, mine.queue, count(*) AS jobs
FROM (
    SELECT queue, state FROM jobrunner.jobs
    WHERE owner = $1 AND state NOT IN ('succeeded', 'failed', 'cancelled')
    LIMIT $2
) AS mine
GROUP BY mine.state, mine.queue;

-- name: job_delivery_latest
-- The newest webhook delivery of job $1: a delivery job is owned by nobody and names the job
-- in its args. jobs_delivery_idx (migration 0011) finds it; the task's name is written out,
-- as the index's predicate is, so the planner can use the index in any plan.
SELECT state, attempt, max_attempts, run_at, created_at, finished_at,
       errors -> -1 ->> 'error' AS last_error
FROM jobrunner.all_jobs
WHERE task = 'jobrunner.deliver_webhook' AND args ->> 'job_id' = $1::uuid::text
ORDER BY id DESC
LIMIT 1;

-- name: job_queue_oldest_queued
-- How long the oldest queued job of each of the queues $1 has waited since its run_at
-- (/metrics), in seconds, and how many lanes were looked at. jobs_claim_idx is ordered by
-- lane (priority, fairness_key) and then run_at, so the oldest job of a queue is one of its
-- lanes' first entries: a skip scan walks the lanes, one probe each (the claim's walk, see
-- job_claim), and stops after $2 lanes a queue. Exact for a queue of up to $2 lanes, else
-- the oldest among the first $2; never a read of the backlog itself.
WITH RECURSIVE lanes (queue, priority, fairness_key, run_at, n) AS (
    SELECT q.queue, head.priority, head.fairness_key, head.run_at, 1
    FROM unnest($1::text[]) AS q(queue)
    CROSS JOIN LATERAL (
        SELECT priority, fairness_key, run_at FROM jobrunner.jobs
        WHERE state = 'queued' AND queue = q.queue
        ORDER BY priority DESC, fairness_key, run_at, id
        LIMIT 1
    ) AS head
    UNION ALL
    SELECT l.queue, step.priority, step.fairness_key, step.run_at, l.n + 1
    FROM lanes AS l
    CROSS JOIN LATERAL (
        -- the next key of this priority, else the first lane of a lower one
        (SELECT priority, fairness_key, run_at FROM jobrunner.jobs
         WHERE state = 'queued' AND queue = l.queue AND priority = l.priority
           AND fairness_key > l.fairness_key
         ORDER BY fairness_key, run_at, id LIMIT 1)
        UNION ALL
        (SELECT priority, fairness_key, run_at FROM jobrunner.jobs
         WHERE state = 'queued' AND queue = l.queue AND priority < l.priority
         ORDER BY priority DESC, fairness_key, run_at, id LIMIT 1)
        LIMIT 1
    ) AS step
    WHERE l.n < $2
)
SELECT queue, greatest(0, extract(epoch FROM now() - min(run_at)))::float8 AS oldest_seconds,
       count(*) AS lanes
FROM lanes
GROUP BY queue
ORDER BY queue;

-- name: job_pickup_by_minute
-- Median pickup latency (run_at to start) per minute, over the last $2 jobs finished in the
-- last $1 minutes: the finished-jobs index bounds the read however big the table is.
SELECT date_trunc('minute', recent.finished_at) AS minute,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY recent.pickup_seconds) AS pickup_p50,
       count(*) AS jobs
FROM (
    SELECT finished_at, extract(epoch FROM started_at - run_at)::float8 AS pickup_seconds
    FROM jobrunner.all_jobs
    WHERE state IN ('succeeded', 'failed', 'cancelled') AND started_at IS NOT NULL
      AND finished_at > now() - make_interval(mins => $1::int)
    ORDER BY finished_at DESC
    LIMIT $2
) AS recent
GROUP BY 1
ORDER BY 1;

-- name: job_queues_waiting
-- The queues that have queued jobs (at most $2 of them), but for those in $3, each with how
-- many, counted up to $1. A skip scan written out: one probe of jobs_claim_idx per queue
-- for the next queue's name, so the read costs the number of queues, not the depth of the
-- backlog; the queues in $3 (those a worker serves: the dashboard asks every two seconds)
-- are not counted at all.
WITH RECURSIVE waiting(queue, n) AS (
    SELECT min(queue), 1 FROM jobrunner.jobs WHERE state = 'queued'
    UNION ALL
    SELECT (SELECT min(j.queue) FROM jobrunner.jobs AS j
            WHERE j.state = 'queued' AND j.queue > waiting.queue),
           waiting.n + 1
    FROM waiting
    WHERE waiting.queue IS NOT NULL AND waiting.n < $2
)
SELECT waiting.queue,
       (SELECT count(*) FROM (SELECT 1 FROM jobrunner.jobs AS j
                              WHERE j.state = 'queued' AND j.queue = waiting.queue
                              LIMIT $1) AS capped) AS jobs
FROM waiting
WHERE waiting.queue IS NOT NULL AND waiting.queue <> ALL($3::text[])
ORDER BY waiting.queue;

-- ===== Bulk actions: cancel, retry, delete by filter (jobrunner.bulk) =====
-- Every statement here takes the same filter: user $1 (admins, $2, act on every user's jobs),
-- states $3 (those the action applies to, met with the caller's state filter), task $4, queue
-- $5, created from $6 and before $7, tags $8 (all of them), args containing $9. A batch also
-- takes the id it starts after ($10: keyset, oldest first) and its size ($11), and answers
-- one row per job it changed plus last_id (the cursor for the next batch) and scanned; a
-- batch that changed nothing answers one row with a NULL id. Each is run planned for its own
-- values (queries.fresh_statement), so a rare tag or args value reads its GIN index and a
-- user's jobs are walked along jobs_owner_idx. Each write is fenced as its single-job
-- statement is: the state (and owner) test is made again on the row as it is when written.

-- name: job_bulk_count
-- How many jobs the filter matches (a dry run's answer).
SELECT count(*) FROM jobrunner.all_jobs
WHERE ($2::bool OR owner = $1)
  AND state = ANY($3::jobrunner.job_state[])
  AND ($4::text IS NULL OR task = $4)
  AND ($5::text IS NULL OR queue = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($8::text[] IS NULL OR tags @> $8)
  AND ($8 IS NULL OR cardinality($8) = 0 OR tags <> '{}')
  AND ($9::jsonb IS NULL OR args @> $9)
  AND ($9 IS NULL OR $9 = '{}' OR args <> '{}');

-- name: job_bulk_cancel
-- Cancel a batch as job_cancel does each job: at once unless running; a running one is asked
-- to stop (cancel channel and heartbeat). Those cancelled at once with children are settled
-- by the caller, same transaction.
WITH batch AS MATERIALIZED (
    SELECT id, child_added_at FROM jobrunner.jobs
    WHERE ($2::bool OR owner = $1)
      AND state = ANY($3::jobrunner.job_state[])
      AND ($4::text IS NULL OR task = $4)
      AND ($5::text IS NULL OR queue = $5)
      AND ($6::timestamptz IS NULL OR created_at >= $6)
      AND ($7::timestamptz IS NULL OR created_at < $7)
      AND ($8::text[] IS NULL OR tags @> $8)
      AND ($8 IS NULL OR cardinality($8) = 0 OR tags <> '{}')
      AND ($9::jsonb IS NULL OR args @> $9)
      AND ($9 IS NULL OR $9 = '{}' OR args <> '{}')
      AND id > coalesce($10::uuid, '00000000-0000-0000-0000-000000000000')
    ORDER BY id
    LIMIT $11
), scanned AS (  -- no max(uuid) before PostgreSQL 18
    SELECT (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT count(*) FROM batch) AS scanned
), cancelled AS (
    UPDATE jobrunner.jobs AS j
    SET state = CASE WHEN j.state = 'running' THEN 'running' ELSE 'cancelled' END::jobrunner.job_state,
        finished_at = CASE WHEN j.state = 'running' THEN NULL ELSE now() END,
        cancel_requested_at = now()
    WHERE j.id = ANY(ARRAY(SELECT id FROM batch)) AND ($2::bool OR j.owner = $1)
      AND j.state NOT IN ('succeeded', 'failed', 'cancelled')
    RETURNING j.id, j.state, j.child_added_at IS NOT NULL AS has_children
)
SELECT cancelled.id, cancelled.state, cancelled.has_children, scanned.last_id, scanned.scanned
FROM scanned
LEFT JOIN cancelled ON true
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_cancel', cancelled.id::text) WHERE cancelled.state = 'running'
) AS bell ON true;

-- name: job_bulk_restore
-- Before job_bulk_retry's batch (same parameters, same transaction): its archived jobs come
-- back to jobs (job_history_restore), and its jobs still in jobs are held, so the archiver
-- moves none of them away before the retry writes it. Answers how many were restored.
WITH batch AS MATERIALIZED (
    SELECT id, child_added_at FROM jobrunner.all_jobs
    WHERE ($2::bool OR owner = $1)
      AND state = ANY($3::jobrunner.job_state[])
      AND ($4::text IS NULL OR task = $4)
      AND ($5::text IS NULL OR queue = $5)
      AND ($6::timestamptz IS NULL OR created_at >= $6)
      AND ($7::timestamptz IS NULL OR created_at < $7)
      AND ($8::text[] IS NULL OR tags @> $8)
      AND ($8 IS NULL OR cardinality($8) = 0 OR tags <> '{}')
      AND ($9::jsonb IS NULL OR args @> $9)
      AND ($9 IS NULL OR $9 = '{}' OR args <> '{}')
      AND id > coalesce($10::uuid, '00000000-0000-0000-0000-000000000000')
    ORDER BY id
    LIMIT $11
), held AS (
    SELECT id FROM jobrunner.jobs WHERE id = ANY(ARRAY(SELECT id FROM batch))
    ORDER BY id
    FOR NO KEY UPDATE
), restored AS (
    DELETE FROM jobrunner.job_history AS h
    WHERE h.id = ANY(ARRAY(SELECT id FROM batch)) AND ($2::bool OR h.owner = $1)
      AND h.state IN ('failed', 'cancelled')
    RETURNING h.*
), moved AS (
    INSERT INTO jobrunner.jobs SELECT * FROM restored RETURNING id
)
SELECT (SELECT count(*) FROM moved) AS restored, (SELECT count(*) FROM held) AS held;

-- name: job_bulk_retry
-- Put a batch of failed or cancelled jobs back in their queues as job_retry does each, and
-- ring each queue once. The batch is read from both tables; job_bulk_restore, run just
-- before in the same transaction with the same parameters, brought its archived jobs back.
WITH batch AS MATERIALIZED (
    SELECT id, child_added_at FROM jobrunner.all_jobs
    WHERE ($2::bool OR owner = $1)
      AND state = ANY($3::jobrunner.job_state[])
      AND ($4::text IS NULL OR task = $4)
      AND ($5::text IS NULL OR queue = $5)
      AND ($6::timestamptz IS NULL OR created_at >= $6)
      AND ($7::timestamptz IS NULL OR created_at < $7)
      AND ($8::text[] IS NULL OR tags @> $8)
      AND ($8 IS NULL OR cardinality($8) = 0 OR tags <> '{}')
      AND ($9::jsonb IS NULL OR args @> $9)
      AND ($9 IS NULL OR $9 = '{}' OR args <> '{}')
      AND id > coalesce($10::uuid, '00000000-0000-0000-0000-000000000000')
    ORDER BY id
    LIMIT $11
), scanned AS (  -- no max(uuid) before PostgreSQL 18
    SELECT (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT count(*) FROM batch) AS scanned
), retried AS (
    UPDATE jobrunner.jobs AS j
    SET state = 'queued', run_at = now(), finished_at = NULL, result = NULL,
        cancel_requested_at = NULL, max_attempts = greatest(j.max_attempts, j.attempt + 1)
    WHERE j.id = ANY(ARRAY(SELECT id FROM batch)) AND ($2::bool OR j.owner = $1)
      AND j.state IN ('failed', 'cancelled')
    RETURNING j.id, j.state, j.queue
), rung AS (
    SELECT count(pg_notify('jobrunner_jobs', queue)) FROM (SELECT DISTINCT queue FROM retried) AS q
)
SELECT retried.id, retried.state, false AS has_children, scanned.last_id, scanned.scanned
FROM scanned CROSS JOIN rung
LEFT JOIN retried ON true;

-- name: job_bulk_delete
-- Delete a batch of finished jobs, live or archived, and their rows in job_dependencies, keeping (as job_prune
-- does) a parent while a child of it is unfinished. A child added after this statement's
-- snapshot changes its parent's child_added_at, and the row is then kept: the test is made
-- again on the row as it is when deleted.
WITH batch AS MATERIALIZED (
    SELECT id, child_added_at FROM jobrunner.all_jobs
    WHERE ($2::bool OR owner = $1)
      AND state = ANY($3::jobrunner.job_state[])
      AND ($4::text IS NULL OR task = $4)
      AND ($5::text IS NULL OR queue = $5)
      AND ($6::timestamptz IS NULL OR created_at >= $6)
      AND ($7::timestamptz IS NULL OR created_at < $7)
      AND ($8::text[] IS NULL OR tags @> $8)
      AND ($8 IS NULL OR cardinality($8) = 0 OR tags <> '{}')
      AND ($9::jsonb IS NULL OR args @> $9)
      AND ($9 IS NULL OR $9 = '{}' OR args <> '{}')
      AND id > coalesce($10::uuid, '00000000-0000-0000-0000-000000000000')
    ORDER BY id
    LIMIT $11
), scanned AS (  -- no max(uuid) before PostgreSQL 18
    SELECT (SELECT id FROM batch ORDER BY id DESC LIMIT 1) AS last_id,
           (SELECT count(*) FROM batch) AS scanned
), deleted AS (
    DELETE FROM jobrunner.jobs AS j
    USING batch AS b
    WHERE j.id = b.id AND j.child_added_at IS NOT DISTINCT FROM b.child_added_at
      AND ($2::bool OR j.owner = $1)
      AND j.state IN ('succeeded', 'failed', 'cancelled')
      AND (j.child_added_at IS NULL OR NOT EXISTS (
          SELECT 1 FROM jobrunner.job_dependencies AS d
          JOIN jobrunner.jobs AS c ON c.id = d.child_id
          WHERE d.parent_id = j.id AND c.state NOT IN ('succeeded', 'failed', 'cancelled')))
    RETURNING j.id, j.state, j.pending_parents IS NOT NULL AS has_parents,
              j.child_added_at IS NOT NULL AS has_children
), archived AS (
    -- The batch's archived jobs: no child can be added to one (it would first come back to
    -- jobs), and one with an unfinished child was never archived.
    DELETE FROM jobrunner.job_history AS h
    WHERE h.id = ANY(ARRAY(SELECT id FROM batch))
      AND ($2::bool OR h.owner = $1)
    RETURNING h.id, h.state, h.pending_parents IS NOT NULL AS has_parents,
              h.child_added_at IS NOT NULL AS has_children
), gone AS (
    SELECT * FROM deleted UNION ALL SELECT * FROM archived
), unlinked AS (
    DELETE FROM jobrunner.job_dependencies AS d
    USING gone
    WHERE (d.child_id = gone.id AND gone.has_parents)
       OR (d.parent_id = gone.id AND gone.has_children)
)
SELECT gone.id, gone.state, false AS has_children, scanned.last_id, scanned.scanned
FROM scanned
LEFT JOIN gone ON true;

-- name: bulk_action_insert
-- The audit row of a bulk action: who ($1), what ($2), a dry run or not ($3), the filter
-- ($4), how many jobs ($5), and whether it went through every match ($6).
INSERT INTO jobrunner.bulk_actions (actor, action, dry_run, filter, jobs, complete)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
RETURNING id, at;

-- ===== Dependencies: jobs that wait for jobs (jobrunner.dependencies) =====

-- name: job_dependencies_add
-- Jobs just inserted as 'waiting' (this transaction) wait for their parents: one element of
-- $1 (child), $2 (parent) and $4 (the child's on_parent_failure) per pair. Only parents
-- owned by $3 count when $3 is given (a user depends on their own jobs only): the caller
-- compares `parents_found` with the parents it named, and rolls back when any is missing.
-- Each parent is locked, in id order (two makers of children never wait on each other
-- crosswise), and read as it is once an outcome holding its row has committed: a parent's
-- outcome and a child's insert take turns at that row, so neither misses the other. A
-- parent already finished counts at once; one that failed or was cancelled cancels a child
-- that did not ask to run anyway. The children come back as they stand, each with
-- `parents_found`; the ready ones ring their queue's doorbell (heard at commit). A child
-- cancelled before it ran sends no webhook, as with job_cancel.
WITH wanted AS MATERIALIZED (
    SELECT DISTINCT e.child_id, e.parent_id, e.policy
    FROM unnest($1::uuid[], $2::uuid[], $4::text[]) AS e(child_id, parent_id, policy)
), parents AS MATERIALIZED (
    SELECT p.id, p.state
    FROM jobrunner.jobs AS p
    WHERE p.id = ANY(ARRAY(SELECT DISTINCT parent_id FROM wanted))
      AND ($3::text IS NULL OR p.owner = $3)
    ORDER BY p.id
    FOR NO KEY UPDATE
), marked AS (
    -- Gaining a child moves a parent's outcome into a transaction with its children's
    -- release (job_record_outcomes), and keeps it from pruning for a retention (job_prune).
    UPDATE jobrunner.jobs AS p SET child_added_at = now()
    WHERE p.id = ANY(ARRAY(SELECT id FROM parents))
), linked AS (
    INSERT INTO jobrunner.job_dependencies (parent_id, child_id, resolved_at)
    SELECT w.parent_id, w.child_id,
           CASE WHEN p.state IN ('succeeded', 'failed', 'cancelled') THEN now() END
    FROM wanted AS w JOIN parents AS p ON p.id = w.parent_id
), counts AS (
    SELECT w.child_id, min(w.policy) AS policy,
           count(*) FILTER (WHERE p.state NOT IN ('succeeded', 'failed', 'cancelled'))
               AS pending,
           min(p.id::text || ' ' || p.state) FILTER (WHERE p.state IN ('failed', 'cancelled'))
               AS failed_parent
    FROM wanted AS w JOIN parents AS p ON p.id = w.parent_id
    GROUP BY w.child_id
), children AS (
    UPDATE jobrunner.jobs AS c
    SET pending_parents = counts.pending,
        on_parent_failure = counts.policy,
        state = jobrunner.dependent_state(
            counts.pending, counts.failed_parent IS NOT NULL AND counts.policy = 'cancel',
            c.run_at),
        finished_at = CASE WHEN counts.failed_parent IS NOT NULL AND counts.policy = 'cancel'
                           THEN now() END,
        run_at = CASE WHEN counts.pending = 0 THEN greatest(c.run_at, now()) ELSE c.run_at END,
        errors = CASE WHEN counts.failed_parent IS NOT NULL AND counts.policy = 'cancel'
                      THEN c.errors || jsonb_build_array(jsonb_build_object(
                          'error', 'parent ' || counts.failed_parent, 'outcome', 'cancelled',
                          'finished_at', now()))
                      ELSE c.errors END
    FROM counts
    -- Made by this transaction, and waiting since: no test of state needed (nor wanted:
    -- beside one, a planner short of statistics may scan jobs_waiting_idx for the ids).
    WHERE c.id = counts.child_id
      AND c.id = ANY(ARRAY(SELECT child_id FROM counts))  -- a key lookup in any plan
    RETURNING c.id, c.queue, c.state, c.run_at, c.finished_at, c.errors, c.pending_parents,
              c.on_parent_failure
)
SELECT children.id, children.state, children.run_at, children.finished_at, children.errors,
       children.pending_parents, children.on_parent_failure,
       (SELECT count(*) FROM parents) AS parents_found
FROM children
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_jobs', children.queue) WHERE children.state = 'queued'
) AS doorbell ON true;

-- name: job_dependencies_settle
-- Jobs $1 just ended (this transaction wrote their end and holds their rows): count each
-- one's end for its children, once per (parent, child) pair (resolved_at), so a parent
-- retried by hand that ends again is not counted twice. A child whose parents have all
-- settled is released: queued (or scheduled, when it asked to start later), due from now; a
-- parent that failed or was cancelled cancels a child that did not ask to run anyway. The
-- children are locked in id order first (concurrent settles never wait crosswise), and each
-- update works from the child's row as it is after any settle before it committed, so a
-- child is released exactly once however many of its parents end at once. The children
-- changed here come back, each saying whether it has children of its own: the caller
-- settles the cancelled ones in turn, each level in a statement of its own (a later
-- statement sees grandchildren this one could not). A child cancelled before it ran sends
-- no webhook, as with job_cancel.
-- Jobs are read by primary key alone, their states tested after: beside a test on state,
-- a planner short of statistics chose a partial index (every finished job, every waiting
-- one) and filtered it for the ids.
WITH ended AS MATERIALIZED (
    SELECT id, state FROM jobrunner.jobs WHERE id = ANY($1::uuid[])
), pending AS MATERIALIZED (
    -- Each ended parent's unresolved rows, through an index probe per parent whatever the
    -- statistics say, locked, then updated by their row address (ctid: a TID scan in any
    -- plan; no one moves a row we hold). Joined to `ended` in one UPDATE, a plan made
    -- before the table was analyzed read all of it (a fan-in's 10,000 rows: 170 ms, not 1).
    SELECT d.ctid AS row_id, d.child_id, e.id AS parent_id, e.state AS parent_state
    FROM ended AS e
    CROSS JOIN LATERAL (
        SELECT ctid, child_id FROM jobrunner.job_dependencies
        WHERE parent_id = e.id AND resolved_at IS NULL
        FOR NO KEY UPDATE
    ) AS d
    WHERE e.state IN ('succeeded', 'failed', 'cancelled')
), resolved AS (
    UPDATE jobrunner.job_dependencies SET resolved_at = now()
    WHERE ctid = ANY(ARRAY(SELECT row_id FROM pending))
), counts AS (
    SELECT child_id, count(*) AS settled,
           min(parent_id::text || ' ' || parent_state) FILTER (WHERE parent_state <> 'succeeded')
               AS failed_parent
    FROM pending
    GROUP BY child_id
), locked AS MATERIALIZED (
    SELECT c.id, c.state FROM jobrunner.jobs AS c
    WHERE c.id = ANY(ARRAY(SELECT child_id FROM counts))
    ORDER BY c.id
    FOR NO KEY UPDATE
), children AS (
    UPDATE jobrunner.jobs AS c
    SET pending_parents = c.pending_parents - counts.settled,
        state = jobrunner.dependent_state(
            c.pending_parents - counts.settled,
            counts.failed_parent IS NOT NULL AND c.on_parent_failure = 'cancel', c.run_at),
        finished_at = CASE WHEN counts.failed_parent IS NOT NULL
                                AND c.on_parent_failure = 'cancel' THEN now() END,
        run_at = CASE WHEN c.pending_parents = counts.settled THEN greatest(c.run_at, now())
                      ELSE c.run_at END,
        errors = CASE WHEN counts.failed_parent IS NOT NULL AND c.on_parent_failure = 'cancel'
                      THEN c.errors || jsonb_build_array(jsonb_build_object(
                          'error', 'parent ' || counts.failed_parent, 'outcome', 'cancelled',
                          'finished_at', now()))
                      ELSE c.errors END
    FROM counts
    -- Still waiting once locked (a child cancelled meanwhile is left as it is); held by
    -- this transaction from `locked` on, so the update works from that very row.
    WHERE c.id = counts.child_id
      AND c.id = ANY(ARRAY(SELECT id FROM locked WHERE state = 'waiting'))
    RETURNING c.id, c.queue, c.state, c.child_added_at IS NOT NULL AS has_children
)
SELECT children.id, children.state, children.has_children
FROM children
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_jobs', children.queue) WHERE children.state = 'queued'
) AS doorbell ON true;

-- name: job_parent_results
-- How the jobs $1 ended, for the children a worker just claimed (one read per claim): the
-- result of each that succeeded, the last error of each that did not.
SELECT id, task, state, result, errors -> -1 ->> 'error' AS error
FROM jobrunner.all_jobs
WHERE id = ANY($1::uuid[]);

-- name: job_parents_list
-- Jobs $1 (a job's parents, in the order it named them) as user $2 may see them (admins $3:
-- all): a parent not found (pruned) or not theirs comes back with no task and no state.
SELECT given.id, j.task, j.state
FROM unnest($1::uuid[]) WITH ORDINALITY AS given(id, n)
LEFT JOIN (
    SELECT id, task, state FROM jobrunner.all_jobs
    WHERE id = ANY($1::uuid[]) AND ($3::bool OR owner = $2)
) AS j ON j.id = given.id
ORDER BY given.n;

-- name: job_children_list
-- Of the first $4 children of job $1, oldest first, those user $2 may see (admins $3: all;
-- a user's job has the user's children only, but code may hang its own on it); each with
-- how many children the job has (counted up to 10,000).
SELECT c.id, c.task, c.state,
       (SELECT count(*) FROM (SELECT 1 FROM jobrunner.job_dependencies
                              WHERE parent_id = $1 LIMIT 10000) AS capped) AS total
FROM jobrunner.all_jobs AS c
WHERE c.id = ANY(ARRAY(
    SELECT d.child_id FROM jobrunner.job_dependencies AS d
    WHERE d.parent_id = $1
    ORDER BY d.child_id
    LIMIT $4
))
  AND ($3::bool OR c.owner = $2)
ORDER BY c.id;

-- ===== Progress: what running handlers report (jobrunner.progress) =====

-- name: progress_write_many
-- The latest progress of attempts worker $6 runs (job $1, attempt $2: fraction $3, message
-- $4, data $5), in one statement, fenced like job_heartbeat: only a row that attempt still
-- holds is written, and a row another transaction has locked (the heartbeat, an outcome) is
-- skipped, not waited for. Returns the rows written (written: true) and the skipped ones
-- still held (false), to be tried again.
WITH reported AS (
    SELECT *
    FROM unnest($1::uuid[], $2::int4[], $3::float8[], $4::text[], $5::text[],
                array_fill($6::text, ARRAY[cardinality($1::uuid[])]))
         AS r(id, attempt, fraction, message, data, worker)
), mine AS (
    SELECT j.id
    FROM jobrunner.jobs AS j
    JOIN reported AS r ON j.id = r.id AND j.attempt = r.attempt AND j.worker_id = r.worker
    WHERE j.state = 'running'
    FOR UPDATE OF j SKIP LOCKED
), written AS (
    UPDATE jobrunner.jobs AS j
    SET progress = r.fraction, progress_message = r.message, progress_data = r.data::jsonb,
        progress_at = now()
    FROM mine JOIN reported AS r ON r.id = mine.id
    WHERE j.id = mine.id
    RETURNING j.id
)
SELECT id, true AS written FROM written
UNION ALL
SELECT r.id, false
FROM reported AS r
JOIN jobrunner.jobs AS j ON j.id = r.id AND j.attempt = r.attempt AND j.worker_id = r.worker
WHERE j.state = 'running' AND r.id NOT IN (SELECT id FROM written);

-- name: progress_read_many
-- The progress of the jobs $1 whose progress_at moved while their state did not (the event
-- streams' poll, jobrunner.api.events): these four columns only.
SELECT id, progress, progress_message, progress_data, progress_at
FROM jobrunner.jobs
WHERE id = ANY($1::uuid[]) AND progress_at IS NOT NULL;

-- ===== Queue controls, as the claim reads them =====

-- name: queue_lock_limited
-- Before job_claim takes from queues with limits: lock their control rows (in name order,
-- so two workers never wait on each other crosswise) for the rest of the transaction, so
-- one worker at a time counts and starts that queue's jobs.
SELECT name FROM jobrunner.queues
WHERE name = ANY($1::text[])
  AND (max_running IS NOT NULL OR max_running_per_owner IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR UPDATE;

-- name: queue_limited_names
-- Which of the queues $1 have limits (so the worker claims them under queue_lock_limited).
-- Read by each worker about once a second.
SELECT name FROM jobrunner.queues
WHERE name = ANY($1::text[])
  AND (max_running IS NOT NULL OR max_running_per_owner IS NOT NULL OR rate_limit IS NOT NULL);

-- ===== The doorbell =====

-- name: doorbell_ring
-- Ring the doorbells of queues $1: after jobs committed without ringing (jobrunner.doorbell),
-- or a bulk fill (the benchmark).
SELECT count(pg_notify('jobrunner_jobs', queue)) FROM unnest($1::text[]) AS queue;

-- ===== Queues: controls, grants, who may submit where =====

-- name: queue_list
-- Every queue an admin configured, with the users it is opened to one by one.
SELECT q.*,
       ARRAY(SELECT g.username FROM jobrunner.queue_grants AS g
             WHERE g.queue = q.name ORDER BY g.username) AS granted_to
FROM jobrunner.queues AS q
ORDER BY q.name;

-- name: queue_get
-- Queue $1's row, or none.
SELECT q.*,
       ARRAY(SELECT g.username FROM jobrunner.queue_grants AS g
             WHERE g.queue = q.name ORDER BY g.username) AS granted_to
FROM jobrunner.queues AS q
WHERE q.name = $1;

-- name: queue_list_open
-- The queues user $1 may submit to: open to all, or opened to them.
SELECT q.*, ARRAY[]::text[] AS granted_to
FROM jobrunner.queues AS q
WHERE q.open_to_all
   OR EXISTS (SELECT 1 FROM jobrunner.queue_grants AS g
              WHERE g.queue = q.name AND g.username = $1)
ORDER BY q.name;

-- name: queue_set
-- Create queue $1 or change its controls, as $11 (who, for updated_by). A control changes
-- only when told: $2 pauses (true), resumes (false) or leaves (NULL) the queue; when $3,
-- max_running becomes $4 (NULL: no limit); when $5, max_running_per_owner becomes $6; when
-- $7, the start rate becomes $8 starts per $9 seconds (NULL: no limit); $10 sets
-- open_to_all, or NULL leaves it. Workers read the row at their next claim. A queue left
-- running has its doorbell rung (heard at commit), so idle workers claim at once what a
-- resume or a raised limit lets start.
WITH saved AS (
    INSERT INTO jobrunner.queues AS q
        (name, paused_at, max_running, max_running_per_owner, rate_limit, rate_period,
         open_to_all, updated_by)
    VALUES ($1, CASE WHEN $2::bool THEN now() END, $4, $6, $8,
            make_interval(secs => $9::float8), coalesce($10::bool, false), $11)
    ON CONFLICT (name) DO UPDATE
    SET paused_at = CASE WHEN $2::bool IS NULL THEN q.paused_at
                         WHEN $2::bool THEN coalesce(q.paused_at, now()) END,
        max_running = CASE WHEN $3::bool THEN excluded.max_running ELSE q.max_running END,
        max_running_per_owner = CASE WHEN $5::bool THEN excluded.max_running_per_owner
                                     ELSE q.max_running_per_owner END,
        rate_limit = CASE WHEN $7::bool THEN excluded.rate_limit ELSE q.rate_limit END,
        rate_period = CASE WHEN $7::bool THEN excluded.rate_period ELSE q.rate_period END,
        open_to_all = coalesce($10::bool, q.open_to_all),
        updated_at = now(),
        updated_by = excluded.updated_by
    RETURNING q.*
)
SELECT saved.*,
       ARRAY(SELECT g.username FROM jobrunner.queue_grants AS g
             WHERE g.queue = saved.name ORDER BY g.username) AS granted_to
FROM saved
LEFT JOIN LATERAL (
    SELECT pg_notify('jobrunner_jobs', saved.name) WHERE saved.paused_at IS NULL
) AS doorbell ON true;

-- name: queue_grant
-- Open queue $1 to user $2 (making the queue's row, with no limits, if it has none), as $3.
-- The user's name comes back, or no row when there is no such user (nothing is written).
WITH member AS (
    SELECT username FROM jobrunner.users WHERE username = $2
), queue AS (
    INSERT INTO jobrunner.queues (name, updated_by)
    SELECT $1, $3 FROM member
    ON CONFLICT (name) DO NOTHING
), granted AS (
    INSERT INTO jobrunner.queue_grants (queue, username)
    SELECT $1, username FROM member
    ON CONFLICT DO NOTHING
)
SELECT username FROM member;

-- name: queue_revoke
-- Close queue $1 to user $2 again (what is open to all stays open); the grant, or no row.
DELETE FROM jobrunner.queue_grants WHERE queue = $1 AND username = $2
RETURNING queue;

-- name: queue_access_rules
-- Who may submit where, in one read that each API process repeats every second
-- (jobrunner.api.queue_access): the queues open to all, every grant (as two arrays in the
-- same order), and the users who are admins or may give a priority other than 0. Other
-- users are plain users with a maximum priority of 0.
WITH grants AS (
    SELECT coalesce(array_agg(queue), '{}') AS queues,
           coalesce(array_agg(username), '{}') AS users
    FROM jobrunner.queue_grants
), privileged AS (
    SELECT coalesce(array_agg(username), '{}') AS users,
           coalesce(array_agg(role = 'admin'), '{}') AS admins,
           coalesce(array_agg(max_priority::int), '{}') AS max_priorities
    FROM jobrunner.users
    WHERE (role = 'admin' OR max_priority <> 0) AND disabled_at IS NULL
)
SELECT ARRAY(SELECT name FROM jobrunner.queues WHERE open_to_all) AS open_queues,
       grants.queues AS grant_queues, grants.users AS grant_users,
       privileged.users, privileged.admins, privileged.max_priorities
FROM grants, privileged;

-- name: queue_access_get
-- What the rules say of user $1 submitting to queue $2, read afresh before a submission is
-- refused: whether they are an admin, their highest priority, and whether the queue is open
-- to them. No row: no such user.
SELECT u.role = 'admin' AS admin, u.max_priority::int AS max_priority,
       EXISTS (SELECT 1 FROM jobrunner.queues WHERE name = $2 AND open_to_all)
       OR EXISTS (SELECT 1 FROM jobrunner.queue_grants WHERE queue = $2 AND username = $1)
           AS open
FROM jobrunner.users AS u
WHERE u.username = $1;

-- ===== Outcome counters per minute =====

-- name: throughput_prune
-- Per-minute counters older than $1 seconds.
DELETE FROM jobrunner.throughput WHERE minute < now() - make_interval(secs => $1::float8);

-- name: throughput_recent
-- Per-minute outcome counters of the last $1 minutes.
SELECT minute, queue, succeeded, failed, retried, cancelled
FROM jobrunner.throughput
WHERE minute >= date_trunc('minute', now()) - make_interval(mins => $1::int)
ORDER BY minute, queue;

-- ===== Workers: the registry (jobrunner.worker.presence writes, jobrunner.fleet reads) =====

-- name: worker_register
-- Worker $1 starts (or its row was pruned while it ran): its row, written whole. A worker id
-- seen before (a test's fixed id) starts afresh: started and seen now, no longer stopped.
INSERT INTO jobrunner.workers AS w (id, host, pid, queues, tasks, concurrency)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE
SET host = excluded.host, pid = excluded.pid, queues = excluded.queues, tasks = excluded.tasks,
    concurrency = excluded.concurrency, started_at = now(), last_seen_at = now(),
    stopped_at = NULL;

-- name: worker_touch
-- Worker $1 is still alive; no row comes back when it has none (pruned, or never written
-- while the database was away): it registers again.
UPDATE jobrunner.workers SET last_seen_at = now()
WHERE id = $1 AND stopped_at IS NULL
RETURNING id;

-- name: worker_stop
-- Worker $1 stopped gracefully.
UPDATE jobrunner.workers SET stopped_at = now(), last_seen_at = now() WHERE id = $1;

-- name: worker_list
-- Up to $2 workers, live ones first (not stopped, seen within $1 seconds), then the most
-- recently seen, each with its running jobs: one pass over the running rows (partial
-- indexes on state = 'running'), however many workers there are.
SELECT w.id, w.host, w.pid, w.queues, w.tasks, w.concurrency, w.started_at, w.last_seen_at,
       w.stopped_at,
       (w.stopped_at IS NULL AND w.last_seen_at > now() - make_interval(secs => $1::float8))
           AS live,
       coalesce(running.jobs, 0) AS running
FROM jobrunner.workers AS w
LEFT JOIN (
    SELECT worker_id, count(*) AS jobs FROM jobrunner.jobs
    WHERE state = 'running' GROUP BY worker_id
) AS running ON running.worker_id = w.id
ORDER BY live DESC, w.last_seen_at DESC, w.id
LIMIT $2;

-- name: worker_served_queues
-- The queues of the workers seen within the last $1 seconds, stopped or not: the API's
-- served-queue check. A worker stopped a moment ago still counts, so submissions go through
-- while a rolling restart has stopped the old workers and not yet started the new ones.
SELECT DISTINCT queue
FROM jobrunner.workers, unnest(queues) AS queue
WHERE last_seen_at > now() - make_interval(secs => $1::float8);

-- name: worker_prune
-- Rows of workers stopped or unseen for more than $1 seconds (a stop also sets last_seen_at).
DELETE FROM jobrunner.workers WHERE last_seen_at < now() - make_interval(secs => $1::float8);

-- ===== Schedules (periodic jobs: jobrunner.schedules, migration 0015) =====

-- name: schedule_clock_rows
-- The database's clock and the schedules named $1 (the code schedules a starting worker
-- syncs), so the next ticks are worked out from database time.
SELECT now() AS now, s.name, s.source, s.cron, s.task, s.next_run_at, s.last_run_at
FROM (SELECT now()) AS clock
LEFT JOIN jobrunner.schedules AS s ON s.name = ANY($1::text[]);

-- name: schedule_sync_code
-- Write the code schedules a worker declares: name (= task) $1, cron $2, next tick $3, by $4.
-- A missing one is inserted; an existing code schedule takes a changed cron (with its next
-- tick) or its first cron (a row carried over from periodic_ticks); an unchanged one is not
-- written at all, so workers starting side by side never move a tick the firing step set.
-- paused is never written: an operator's pause survives every sync. A runtime schedule of
-- the same name is left alone, and its name comes back in `shadowed`.
WITH declared AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
        AS d(name, cron, next_run_at)
), saved AS (
    INSERT INTO jobrunner.schedules AS s (name, task, cron, next_run_at, source, created_by)
    SELECT d.name, d.name, d.cron, d.next_run_at, 'code', $4 FROM declared AS d
    ON CONFLICT (name) DO UPDATE
    SET task = excluded.task, cron = excluded.cron, next_run_at = excluded.next_run_at,
        updated_at = now()
    WHERE s.source = 'code' AND s.cron IS DISTINCT FROM excluded.cron
    RETURNING s.name
)
SELECT s.name AS shadowed FROM jobrunner.schedules AS s
WHERE s.name = ANY($1::text[]) AND s.source = 'runtime';

-- name: schedule_forget_code
-- Delete the code schedules of tasks $1: tasks the starting worker registers without a cron,
-- so their code no longer declares one.
DELETE FROM jobrunner.schedules WHERE source = 'code' AND name = ANY($1::text[])
RETURNING name;

-- name: schedule_take_due
-- Up to $1 due schedules, locked: a second caller skips them, and once this transaction has
-- moved their next_run_at it finds them no longer due. With the database's clock.
SELECT now() AS now, s.name, s.task, s.args, s.cron, s.timezone, s.queue, s.priority
FROM jobrunner.schedules AS s
WHERE NOT s.paused AND s.next_run_at <= now()
ORDER BY s.next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: schedule_record_fired
-- After firing the schedules $1 (in the transaction that locked them): each one's next tick
-- $2, the job it enqueued $3 (NULL: none, and why in $4). One that cannot go on (a cron that
-- no longer parses, set by hand) is paused by $5, its reason in $4.
UPDATE jobrunner.schedules AS s
SET next_run_at = coalesce(f.next_run_at, s.next_run_at),
    last_run_at = CASE WHEN f.job_id IS NULL THEN s.last_run_at ELSE now() END,
    last_job_id = coalesce(f.job_id, s.last_job_id),
    last_error = f.error,
    paused = s.paused OR f.pause,
    updated_at = now()
FROM unnest($1::text[], $2::timestamptz[], $3::uuid[], $4::text[], $5::bool[])
    AS f(name, next_run_at, job_id, error, pause)
WHERE s.name = f.name;

-- name: schedule_list
-- Every schedule by name, with the state of the job its last tick enqueued (one probe of
-- the jobs' primary key each, live or archived; NULL once that job was pruned).
SELECT s.*, j.state AS last_job_state, j.finished_at AS last_job_finished_at
FROM jobrunner.schedules AS s
LEFT JOIN jobrunner.all_jobs AS j ON j.id = s.last_job_id
ORDER BY s.name;

-- name: schedule_get
SELECT s.*, j.state AS last_job_state, j.finished_at AS last_job_finished_at
FROM jobrunner.schedules AS s
LEFT JOIN jobrunner.all_jobs AS j ON j.id = s.last_job_id
WHERE s.name = $1;

-- name: schedule_add
-- A runtime schedule: name $1, task $2, args $3, cron $4 in time zone $5, queue $6 and
-- priority $7 (NULL: the task's), first tick $8, added by $9. No row comes back when the
-- name is taken (by a runtime or a code schedule).
INSERT INTO jobrunner.schedules
    (name, task, args, cron, timezone, queue, priority, next_run_at, source, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'runtime', $9)
ON CONFLICT (name) DO NOTHING
RETURNING *, NULL::jobrunner.job_state AS last_job_state,
          NULL::timestamptz AS last_job_finished_at;

-- name: schedule_pause
-- Pause schedule $1; the name comes back, or no row when there is none.
UPDATE jobrunner.schedules SET paused = true, updated_at = now()
WHERE name = $1
RETURNING name;

-- name: schedule_resume_lock
-- The schedule $1 to resume, locked, with the database's clock: its next tick is worked
-- out from now (the ticks missed while paused are not replayed) and written by
-- schedule_resume in the same transaction.
SELECT now() AS now, s.cron, s.timezone
FROM jobrunner.schedules AS s WHERE s.name = $1
FOR UPDATE;

-- name: schedule_resume
-- Resume schedule $1 from its next tick $2; one not paused keeps the tick it has (a due
-- one would otherwise lose it).
UPDATE jobrunner.schedules
SET paused = false, next_run_at = CASE WHEN paused THEN $2 ELSE next_run_at END,
    last_error = CASE WHEN paused THEN NULL ELSE last_error END, updated_at = now()
WHERE name = $1;

-- name: schedule_delete_runtime
-- Delete runtime schedule $1. Its source comes back: 'runtime' when it was deleted, 'code'
-- when it was not (code schedules are removed from code); no row when there is none.
WITH gone AS (
    DELETE FROM jobrunner.schedules WHERE name = $1 AND source = 'runtime' RETURNING source
)
SELECT source FROM gone
UNION ALL
SELECT source FROM jobrunner.schedules WHERE name = $1 AND source = 'code';

-- ===== The maintenance lock =====

-- name: maintenance_try_lock
-- Whichever worker holds this lock does the maintenance tick. While it holds it, the server
-- ends its session if it waits on its client too long: a holder frozen mid-tick (SIGSTOP, a
-- blocked event loop) would otherwise stop every worker's rescues and promotions for as long
-- as it stays frozen. Idle between statements: 5 s (PostgreSQL 14+); inside a statement's
-- transaction, where a frozen client leaves it waiting for the rest of the protocol
-- exchange: 10 s (transaction_timeout, PostgreSQL 17+). A healthy tick stays far below both.
SELECT CASE WHEN pg_try_advisory_lock(hashtext('jobrunner.maintenance'))
            THEN set_config('idle_session_timeout', '5s', false) IS NOT NULL
                 AND (current_setting('server_version_num')::int < 170000
                      OR set_config('transaction_timeout', '10s', false) IS NOT NULL)
            ELSE false END;

-- name: maintenance_unlock
SELECT pg_advisory_unlock(hashtext('jobrunner.maintenance')),
       set_config('idle_session_timeout', '0', false),
       CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN set_config('transaction_timeout', '0', false) END;

-- ===== The history of finished jobs =====

-- name: history_list_all
-- Finished jobs, newest first, after the cursor ($1 finished_at, $2 id); optionally filtered,
-- by tags ($10) and args containment ($11) too, as job_list_all is (and planned the same way).
-- Read from the jobrunner.history view (migration 0018); with the LIMIT the planner still
-- walks jobs_finished_idx backwards (tests/api/test_plans.py). The result only when $9: a
-- column not output is never read from its TOAST (payload_bytes: see job_list_all).
SELECT id, queue, task, state, attempt, max_attempts, owner, created_at, started_at,
       finished_at, run_duration, total_duration, CASE WHEN $9::bool THEN result END AS result,
       last_error, parents, has_children, tags,
       CASE WHEN $9::bool THEN coalesce(octet_length(result::text), 0) ELSE 0 END
           AS payload_bytes
FROM jobrunner.history
WHERE ($1::timestamptz IS NULL OR (finished_at, id) < ($1, $2::uuid))
  AND ($3::jobrunner.job_state IS NULL OR state = $3)
  AND ($4::text IS NULL OR task = $4)
  AND ($5::text IS NULL OR queue = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($10::text[] IS NULL OR tags @> $10)
  AND ($10 IS NULL OR cardinality($10) = 0 OR tags <> '{}')
  AND ($11::jsonb IS NULL OR args @> $11)
  AND ($11 IS NULL OR $11 = '{}' OR args <> '{}')
ORDER BY finished_at DESC, id DESC
LIMIT $8;

-- name: history_list_owned
-- Like history_list_all, only user $10's jobs (jobs_owner_finished_idx, read backwards); tags
-- $11 and args $12 as history_list_all's $10 and $11.
SELECT id, queue, task, state, attempt, max_attempts, owner, created_at, started_at,
       finished_at, run_duration, total_duration, CASE WHEN $9::bool THEN result END AS result,
       last_error, parents, has_children, tags,
       CASE WHEN $9::bool THEN coalesce(octet_length(result::text), 0) ELSE 0 END
           AS payload_bytes
FROM jobrunner.history
WHERE owner = $10
  AND ($1::timestamptz IS NULL OR (finished_at, id) < ($1, $2::uuid))
  AND ($3::jobrunner.job_state IS NULL OR state = $3)
  AND ($4::text IS NULL OR task = $4)
  AND ($5::text IS NULL OR queue = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($11::text[] IS NULL OR tags @> $11)
  AND ($11 IS NULL OR cardinality($11) = 0 OR tags <> '{}')
  AND ($12::jsonb IS NULL OR args @> $12)
  AND ($12 IS NULL OR $12 = '{}' OR args <> '{}')
ORDER BY finished_at DESC, id DESC
LIMIT $8;

-- ===== Accounts =====

-- name: user_insert
-- A new account, disabled from the start when $5 (awaiting approval); no row comes back
-- when the name is taken, in any case (users_username_lower_key).
INSERT INTO jobrunner.users (username, password_hash, role, webhook_secret, disabled_at)
VALUES ($1, $2, $3, $4, CASE WHEN $5::bool THEN now() END)
ON CONFLICT DO NOTHING
RETURNING username, role, created_at, webhook_secret, disabled_at, max_priority;

-- name: user_get
SELECT username, role, created_at, webhook_secret, disabled_at, max_priority
FROM jobrunner.users WHERE username = $1;

-- name: user_get_password_hash
-- The password hash of user $1, and whether the account is disabled.
SELECT password_hash, disabled_at IS NOT NULL AS disabled
FROM jobrunner.users WHERE username = $1;

-- name: user_list
SELECT username, role, created_at, webhook_secret, disabled_at, max_priority
FROM jobrunner.users ORDER BY username;

-- name: user_set_password
-- A new password hash for user $1; their sessions other than $3 end with it.
WITH changed AS (
    UPDATE jobrunner.users SET password_hash = $2 WHERE username = $1 RETURNING username
), revoked AS (
    UPDATE jobrunner.sessions AS s SET revoked_at = now()
    FROM changed
    WHERE s.username = changed.username AND s.revoked_at IS NULL
      AND s.id IS DISTINCT FROM $3::uuid
)
SELECT username FROM changed;

-- name: user_set_disabled
-- Disable ($2) or enable user $1; disabling revokes every session of theirs at once.
WITH changed AS (
    UPDATE jobrunner.users
    SET disabled_at = CASE WHEN $2::bool THEN coalesce(disabled_at, now()) END
    WHERE username = $1
    RETURNING username, role, created_at, webhook_secret, disabled_at, max_priority
), revoked AS (
    UPDATE jobrunner.sessions AS s SET revoked_at = now()
    FROM changed
    WHERE $2::bool AND s.username = changed.username AND s.revoked_at IS NULL
)
SELECT * FROM changed;

-- name: user_set_max_priority
-- The highest priority user $1 may give a job (admins: any); above 0 jumps other users' jobs.
UPDATE jobrunner.users SET max_priority = $2 WHERE username = $1
RETURNING username, role, created_at, webhook_secret, disabled_at, max_priority;

-- name: user_delete
-- Delete user $1 unless they own jobs (their sessions and idempotency keys go with them):
-- the row, or none. Jobs keep an owner that must still name an account.
DELETE FROM jobrunner.users AS u
WHERE u.username = $1 AND NOT EXISTS (SELECT 1 FROM jobrunner.all_jobs WHERE owner = u.username)
RETURNING username;

-- name: user_owns_jobs
SELECT EXISTS (SELECT 1 FROM jobrunner.all_jobs WHERE owner = $1);

-- name: user_set_webhook_secret
-- A new webhook signing secret for user $1.
UPDATE jobrunner.users SET webhook_secret = $2 WHERE username = $1
RETURNING username, role, created_at, webhook_secret, disabled_at, max_priority;

-- ===== Sessions =====

-- name: session_revoke_all
-- Log out every session of user $1.
UPDATE jobrunner.sessions SET revoked_at = now()
WHERE username = $1 AND revoked_at IS NULL;

-- name: session_create
-- A login: a session that lives $2 seconds, holding its first refresh token $3.
WITH session AS (
    INSERT INTO jobrunner.sessions (username, expires_at)
    VALUES ($1, now() + make_interval(secs => $2::float8))
    RETURNING id, expires_at
), token AS (
    INSERT INTO jobrunner.refresh_tokens (jti, session_id, expires_at)
    SELECT $3, id, expires_at FROM session
)
SELECT id FROM session;

-- name: session_principal
-- Who holds a live session $1 (an access token's sid) as user $2: their role, or no row
-- (also for a disabled account, whose sessions were revoked as it was disabled).
SELECT u.role
FROM jobrunner.sessions AS s
JOIN jobrunner.users AS u ON u.username = s.username
WHERE s.id = $1 AND s.username = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
  AND u.disabled_at IS NULL;

-- name: session_live_many
-- Which of the sessions $1 (each of user $2 at the same place) are live: the same check as
-- session_principal, for a batch of submissions (jobrunner.api.submit_batch) or the open
-- event streams (jobrunner.api.events), one round trip for them all.
SELECT batch.n, s.id IS NOT NULL AS live
FROM unnest($1::uuid[], $2::text[]) WITH ORDINALITY AS batch(session_id, username, n)
LEFT JOIN jobrunner.sessions AS s
    ON s.id = batch.session_id AND s.username = batch.username
   AND s.revoked_at IS NULL AND s.expires_at > now()
ORDER BY batch.n;

-- name: session_principal_take
-- session_principal, and up to $6 tokens from rate bucket $3 (refilling $4 per second,
-- holding at most $5) in the same round trip: the role and how many tokens were taken; no
-- row, and no token taken, for a dead session.
SELECT u.role, jobrunner.rate_bucket_take_upto($3, $4, $5, $6) AS taken
FROM jobrunner.sessions AS s
JOIN jobrunner.users AS u ON u.username = s.username
WHERE s.id = $1 AND s.username = $2 AND s.revoked_at IS NULL AND s.expires_at > now();

-- name: session_revoke
-- Log out session $1 of user $2.
UPDATE jobrunner.sessions SET revoked_at = coalesce(revoked_at, now())
WHERE id = $1 AND username = $2
RETURNING id;

-- ===== Refresh tokens =====

-- name: refresh_token_use
-- Spend refresh token $1 of session $2 and put token $3 in its place. No row comes back when
-- the token was spent before, expired, or its session was revoked. `issued_at` (the
-- rotation's time, whole seconds) is the new pair's iat, so refresh_token_successor can
-- issue the very same pair again.
WITH spent AS (
    UPDATE jobrunner.refresh_tokens AS t
    SET used_at = now(), successor_jti = $3
    FROM jobrunner.sessions AS s
    WHERE t.jti = $1 AND t.session_id = $2 AND s.id = t.session_id
      AND t.used_at IS NULL AND t.expires_at > now()
      AND s.revoked_at IS NULL AND s.expires_at > now()
    RETURNING s.id, s.username, s.expires_at
), replaced AS (
    INSERT INTO jobrunner.refresh_tokens (jti, session_id, expires_at)
    SELECT $3, id, expires_at FROM spent
)
SELECT spent.id, spent.username, u.role, floor(extract(epoch FROM now()))::int8 AS issued_at
FROM spent JOIN jobrunner.users AS u ON u.username = spent.username;

-- name: refresh_token_successor
-- Refresh token $1 of session $2, spent less than $3 seconds ago on a live session: the
-- token that replaced it and when (the pair to hand out again), or no row.
SELECT t.successor_jti, s.username, floor(extract(epoch FROM t.used_at))::int8 AS issued_at
FROM jobrunner.refresh_tokens AS t
JOIN jobrunner.sessions AS s ON s.id = t.session_id
WHERE t.jti = $1 AND t.session_id = $2 AND t.successor_jti IS NOT NULL
  AND t.used_at > now() - make_interval(secs => $3::float8)
  AND s.revoked_at IS NULL AND s.expires_at > now();

-- name: refresh_token_reused
-- Was refresh token $1 of session $2 spent already? Then the session is revoked (the token
-- leaked: whoever holds it and whoever rotated it cannot both be its owner).
UPDATE jobrunner.sessions AS s
SET revoked_at = coalesce(s.revoked_at, now())
FROM jobrunner.refresh_tokens AS t
WHERE t.jti = $1 AND t.session_id = $2 AND s.id = t.session_id AND t.used_at IS NOT NULL
RETURNING s.id;

-- ===== Rate buckets =====

-- name: rate_bucket_take
-- Take one token from bucket $1, which holds at most $3 and refills $2 per second: the
-- tokens left, or NULL when the bucket is empty.
SELECT jobrunner.rate_bucket_take($1, $2, $3);

-- name: rate_bucket_take_upto
-- Take up to $4 tokens from bucket $1 (as rate_bucket_take): how many were taken.
SELECT jobrunner.rate_bucket_take_upto($1, $2, $3, $4);

-- name: rate_bucket_wait
-- Seconds until bucket $1 (refilling $2 per second) holds a whole token again.
SELECT greatest(0, (1 - (tokens + extract(epoch FROM now() - updated_at)::float8 * $2::float8))
                   / $2::float8)
FROM jobrunner.rate_buckets WHERE key = $1;

-- name: rate_bucket_prune
-- Buckets untouched for $1 seconds are full again: forgetting them changes nothing.
DELETE FROM jobrunner.rate_buckets WHERE updated_at < now() - make_interval(secs => $1::float8);

-- ===== Idempotency keys =====

-- name: idempotency_key_get
-- The submission user $1 made with key $2 within the last $3 seconds.
SELECT request_hash, job_id FROM jobrunner.idempotency_keys
WHERE owner = $1 AND key = $2 AND created_at > now() - make_interval(secs => $3::float8);

-- name: idempotency_key_claim
-- Key $2 of user $1 now names job $4, unless a live submission holds it: then no row. A
-- racing claim of the same key waits here for the first one's transaction to end.
INSERT INTO jobrunner.idempotency_keys AS k (owner, key, request_hash, job_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (owner, key) DO UPDATE
SET request_hash = excluded.request_hash, job_id = excluded.job_id, created_at = now()
WHERE k.created_at <= now() - make_interval(secs => $5::float8)
RETURNING job_id;

-- ===== API housekeeping =====

-- name: api_state_prune
-- Idempotency keys older than $1 seconds, and sessions expired (or revoked) $2 seconds ago.
WITH keys AS (
    DELETE FROM jobrunner.idempotency_keys
    WHERE created_at < now() - make_interval(secs => $1::float8)
    RETURNING 1
), sessions AS (
    DELETE FROM jobrunner.sessions
    WHERE least(expires_at, coalesce(revoked_at, expires_at))
          < now() - make_interval(secs => $2::float8)
    RETURNING 1
)
SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM sessions);

-- ===== Migrations =====

-- name: migration_lock
-- Serialises `jobrunner migrate` across processes starting at once.
SELECT pg_advisory_lock(hashtext('jobrunner.migrate'));

-- name: migration_unlock
SELECT pg_advisory_unlock(hashtext('jobrunner.migrate'));

-- name: migration_schema_create
CREATE SCHEMA IF NOT EXISTS jobrunner;

-- name: migration_table_create
CREATE TABLE IF NOT EXISTS jobrunner.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- name: migration_table_exists
SELECT to_regclass('jobrunner.schema_migrations') IS NOT NULL;

-- name: migration_list
SELECT version, name, checksum, applied_at FROM jobrunner.schema_migrations ORDER BY version;

-- name: migration_record
INSERT INTO jobrunner.schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- ===== Server =====

-- name: session_claim_plans
-- The worker's claim connection plans job_claim once and keeps the plan: planning the
-- claim (a dozen probes of jobs, eight indexes to weigh for each) cost ~0.9 ms, five times
-- the statement's own work for a batch of 20. A plan made once must not depend on the
-- statistics of the moment: made on an empty, never analyzed table it read the whole table
-- at every claim once it filled (258 ms a claim beside 200,000 rows). With sequential
-- scans off (bitmap scans are off on every worker connection), each read of jobs is an
-- index scan on the index that matches it, whatever the statistics said (a plan test holds
-- this). Reset when the connection goes back to the pool.
SELECT set_config('plan_cache_mode', 'force_generic_plan', false),
       set_config('enable_seqscan', 'off', false);

-- name: session_outcome_plans
-- The worker's outcome connection lets PostgreSQL keep one plan per statement (its default,
-- where worker connections otherwise plan every call): job_record_outcomes finds its rows
-- only through the primary key (see there), so its generic plan is the batch's own, and
-- planning it anew cost ~0.5 ms a flush (~4 µs a job). Sequential scans are off as on the
-- claim connection, so a plan made while the table was small cannot outlive that. Reset
-- when the connection goes back to the pool.
SELECT set_config('plan_cache_mode', 'auto', false),
       set_config('enable_seqscan', 'off', false);

-- name: clock_now
SELECT now();

-- name: ping
-- A cheap round trip: is this connection still alive?
SELECT 1;

-- name: server_info
-- What `jobrunner doctor` reports about the server it reached.
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       current_database() AS database;

-- name: server_oldest_snapshot
-- What holds back cleanup of dead rows the longest: the oldest snapshot (xmin) still held by
-- a session of any database of this server, or by a prepared transaction. While it lasts,
-- no row version that died after it began can be removed, so every claim steps over the
-- index entries of jobs finished since (README "Long transactions"). Sessions of other roles
-- show their query only to a role with pg_read_all_stats (pg_monitor); their xmin shows
-- to all. held_for: since the transaction began (a prepared one: since it was prepared).
-- With $1, only those of this database: the ones that hold back cleanup of its own tables
-- (a snapshot in another database of the server does not), which is what the worker's
-- claim (jobrunner.worker.lanes) asks; doctor and the dashboard show the server's.
SELECT holder, pid, usename, application_name, client_addr, state, query, held_for, xmin_age
FROM (
    SELECT 'session' AS holder, pid, usename::text, application_name,
           host(client_addr) AS client_addr, state, left(query, 200) AS query,
           now() - coalesce(xact_start, query_start, backend_start) AS held_for,
           age(backend_xmin) AS xmin_age
    FROM pg_stat_activity
    WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()
      AND (NOT $1::bool OR datname = current_database())
    UNION ALL
    SELECT 'prepared transaction', NULL, owner::text, gid, NULL, 'prepared', NULL,
           now() - prepared, age(transaction)
    FROM pg_prepared_xacts
    WHERE NOT $1::bool OR database = current_database()
) AS holders
ORDER BY xmin_age DESC, held_for DESC
LIMIT 1;

-- name: notify_send
-- Send payload $2 on channel $1: `jobrunner doctor`'s LISTEN/NOTIFY round trip.
SELECT pg_notify($1, $2);
