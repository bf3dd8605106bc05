-- Fair claiming (issue 13): the claim walks the ready jobs of a queue as lanes, one per
-- (priority, fairness_key), and takes turns between the lanes of the top priority. This
-- index serves every step of that walk: the top priority of a queue, the next key after a
-- key, and the oldest jobs of one lane (run_at, id).
DROP INDEX jobrunner.jobs_claim_idx;
CREATE INDEX jobs_claim_idx ON jobrunner.jobs (queue, priority DESC, fairness_key, run_at, id)
    WHERE state = 'queued';
