-- Queue administration (issue 13): the webhook delivery of a job, found cheaply.

-- A delivery job names the job it delivers in its args ({"job_id": "<uuid>"}) and is owned
-- by nobody; GET /jobs/{id} shows its owner the latest delivery's state. Partial, so only
-- delivery rows are indexed and no other insert pays for it; (job, id) gives the newest
-- delivery first when read backwards. The task's name is spelled as in jobrunner/webhooks.py
-- and in job_delivery_latest, whose literal must match this predicate for the planner.
CREATE INDEX jobs_delivery_idx ON jobrunner.jobs ((args ->> 'job_id'), id)
    WHERE task = 'jobrunner.deliver_webhook';
