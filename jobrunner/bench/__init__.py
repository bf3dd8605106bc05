"""`jobrunner bench`: the benchmark. command.py declares the command and its flags (and imports
nothing heavy: every CLI run reads it); runner.py runs the groups and prints the table;
rounds.py holds what the groups are made of (options, figures, worker processes, timed rounds);
fairness.py the fairness group; enqueue.py the enqueue figures beside hand-written baselines;
e2e.py end-to-end latency beside a hand-written queue (baseline_queue.py) and worker start;
http.py measures `POST /jobs` against a real API process; tasks.py holds the tasks its workers
run; queries.sql the statements only it runs, in the scratch database it creates and drops."""
