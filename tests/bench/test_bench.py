"""`jobrunner bench --quick --json` runs end to end and reports every figure.

No timed assertion here: the speed targets live in the bench's own table, not in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jobrunner.bench.command import GROUPS
from jobrunner.bench.rounds import QUICK
from jobrunner.bench.runner import format_table


def test_quick_bench_reports_every_figure(db_dsn: str) -> None:
    env = {**os.environ, "JOBRUNNER_DATABASE_URL": db_dsn, "JOBRUNNER_LOG_LEVEL": "warning"}
    done = subprocess.run(
        [sys.executable, "-m", "jobrunner", "bench", "--quick", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=260,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    assert report["machine"]["cpus"] >= 1
    assert report["machine"]["postgresql"]
    assert report["options"]["rounds"] == QUICK.rounds
    assert tuple(report["options"]["groups"]) == GROUPS
    names = [f["name"] for f in report["figures"]]
    for expected in (
        "enqueue, one per call",
        "enqueue_many",
        "process, 1 worker",
        "process, 2 workers",
        "process with progress",
        "pickup p99, LISTEN",
        "pickup p99, polling",
        "process beside",
        "  beside as share of empty",
        "worker peak RSS",
        "baseline: hand-written asyncpg",
        "process, one owner",
        "  one owner as share of the baseline",
        "  many owners as share of one",
        "small owner's wait p99",
        "start-rate limit",
        "most running at once",
        "pause: last start after it",
        "graph of",
        "  fan-in started after its last parent",
        "HTTP POST /jobs",
        "  baseline: bare ASGI app",
        "  POST /jobs as share of the baseline",
        "  baseline: hand-written INSERT, 1 caller",
        "  1 caller as share of the baseline",
        "enqueue_many (1,000 per call)",
        "  1,000 per call as share of the baseline",
        "end to end p99",
        "  baseline: hand-written LISTEN/NOTIFY, p50",
        "  p50 over the baseline's",
        "worker start to first job",
    ):
        assert any(name.startswith(expected) for name in names), (expected, names)
    for figure in report["figures"]:
        if figure["skipped"]:
            continue
        assert len(figure["values"]) == QUICK.rounds, figure
        assert figure["min"] <= figure["median"] <= figure["max"], figure
        # A difference may be below zero; a pause's last start may be at it.
        assert figure["median"] > 0 or figure["name"].startswith(("pause", "  p50 over")), figure
        assert figure["met"] in (True, False, None)
    assert "median" in format_table(report)


def test_the_horizon_group_reports_windows_before_during_and_after_a_held_snapshot(
    db_dsn: str,
) -> None:
    """`--only horizon`, shrunk to seconds: every window is there, in its phase, each job of
    ours and of the baseline taken (completions add up to the arrivals), and the figures named."""
    env = {**os.environ, "JOBRUNNER_DATABASE_URL": db_dsn, "JOBRUNNER_LOG_LEVEL": "warning"}
    argv = [sys.executable, "-m", "jobrunner", "bench", "--only", "horizon", "--json"]
    argv += ["--horizon-rate", "200", "--horizon-minutes", "0.1", "--horizon-warmup", "4"]
    argv += ["--horizon-after", "4", "--horizon-window", "2"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    for who in ("ours", "baseline"):
        windows = report["windows"][who]
        assert [w["phase"] for w in windows] == ["before"] * 2 + ["held"] * 3 + ["after"] * 2
        arrivals = sum(w["arrivals"] for w in windows)
        # the last batch or two finish after the last window ends
        assert arrivals - 20 <= sum(w["completions"] for w in windows) <= arrivals
        assert all(w["pickup_p99_ms"] > 0 for w in windows), windows
    names = [f["name"] for f in report["figures"]]
    assert names[0].startswith("horizon (200 jobs/s, 0.1 min held)")
    assert "  ours claim held / before" in names
    assert "  base pickup p99, worst held window" in names
    assert "horizon windows, ours" in format_table(report)
