"""`jobrunner bench` as the parser declares it: its groups and flags, and nothing else, so
that every other command's parser costs no import of the bench (jobrunner.commands)."""

from __future__ import annotations

import argparse

from jobrunner.commands import set_handler

GROUPS = (
    "enqueue", "process", "latency", "backlog", "memory", "fairness", "controls", "graph",
    "http", "e2e", "start",
)  # fmt: skip
# Run only when named in --only: each takes many minutes (horizon: 2 x (warm-up + held + 1)).
ON_REQUEST = ("horizon",)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare `jobrunner bench`; its code (runner.py) is imported only when it runs."""
    p = sub.add_parser("bench", help="measure enqueue, processing, latency and HTTP throughput")
    p.add_argument("--quick", action="store_true", help="small sizes and one round, for CI")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--only",
        help=f"comma-separated groups to run: {','.join(GROUPS)} (all by default), and "
        f"{','.join(ON_REQUEST)} (only when named: minutes long)",
    )
    p.add_argument("--rounds", type=int, help="rounds per figure (default 3)")
    p.add_argument("--jobs", type=int, help="jobs per processing round (default 50000)")
    p.add_argument("--concurrency", type=int, help="worker concurrency (default 20)")
    p.add_argument("--processes", type=int, help="worker processes for the multi-process figure")
    p.add_argument("--enqueue", type=int, help="one-at-a-time enqueues per round")
    p.add_argument("--enqueue-callers", type=int, help="concurrent one-at-a-time enqueuers")
    p.add_argument("--enqueue-many", type=int, help="jobs per enqueue_many round")
    p.add_argument("--batch", type=int, help="jobs per enqueue_many call")
    p.add_argument("--trickle", type=int, help="jobs per pickup-latency round")
    p.add_argument("--rate", type=float, help="pickup-latency enqueue rate (jobs/s, default 50)")
    p.add_argument("--poll-interval", type=float, help="worker poll interval for the polling run")
    p.add_argument("--backlog", type=int, help="queued and scheduled rows for the backlog figure")
    p.add_argument("--http", type=int, help="HTTP submits per round")
    p.add_argument("--owners", type=int, help="fairness keys for the many-owners figure")
    p.add_argument("--big-backlog", type=int, help="the big owner's queued jobs (fairness)")
    p.add_argument("--small-jobs", type=int, help="the small owner's jobs (fairness)")
    p.add_argument("--rate-seconds", type=float, help="how long the start-rate figure runs (60)")
    p.add_argument("--graph-jobs", type=int, help="jobs in the fan-out/fan-in graph (graph)")
    p.add_argument("--e2e-jobs", type=int, help="jobs per end-to-end latency round (e2e)")
    p.add_argument("--e2e-every", type=float, help="seconds between them (e2e, default 0.02)")
    p.add_argument("--horizon-rate", type=float, help="jobs/s the horizon producer makes (2000)")
    p.add_argument("--horizon-minutes", type=float, help="minutes the snapshot is held (10)")
    p.add_argument("--horizon-warmup", type=float, help="seconds before the snapshot (60)")
    p.add_argument("--horizon-after", type=float, help="seconds the producer goes on after (60)")
    p.add_argument("--horizon-window", type=float, help="seconds per reported window (30)")
    p.add_argument(
        "--history-rows",
        type=int,
        help="finished jobs written to jobrunner.job_history (COPY) before each horizon run",
    )
    p.add_argument(
        "--horizon-no-baseline",
        dest="horizon_baseline",
        action="store_false",
        default=None,
        help="leave out the hand-written claim loop's run (it does not use jobrunner's claim)",
    )
    set_handler(p, "jobrunner.bench.runner", "cmd_bench")
