"""`jobrunner bench`: the benchmark. runner.py runs the groups and prints the table; http.py
measures `POST /jobs` against a real API process; tasks.py holds the tasks its workers run;
queries.sql the statements only it runs, in the scratch database it creates and drops."""

from jobrunner.bench.runner import GROUPS, QUICK, fill, format_table, register

__all__ = ["GROUPS", "QUICK", "fill", "format_table", "register"]
