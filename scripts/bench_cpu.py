"""CPU time per job of one `jobrunner bench` group, for before/after comparisons.

Throughput on this project's VMs drifts by a fifth within minutes, so a change of 10% is lost
in it. This runs one group of `jobrunner bench` from a checkout's own virtualenv and reads,
from /proc, the CPU seconds its API or worker processes and the scratch database's
PostgreSQL backends used, divided by the jobs the group submits or processes. Run it for two
checkouts in alternation and compare the medians:

    JOBRUNNER_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python scripts/bench_cpu.py http /path/to/checkout-before
    ... python scripts/bench_cpu.py http /path/to/checkout-after

Groups: http (16,000 submits from 32 connections, plus the 640 of the warm-up) and process
(20,000 jobs, once by one worker and once by two).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

GROUPS = {
    # group: (bench flags, process the figure is about, jobs the CPU is divided by, figure)
    "http": (["--http", "16000"], "-m jobrunner api", 16000 + 32 * 20, "HTTP POST /jobs (32"),
    "process": (["--jobs", "20000"], "-m jobrunner worker", 2 * 20000, "process, 1 worker x 20"),
}
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: str) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def measure(group: str, checkout: Path) -> str:
    flags, ours, jobs, figure = GROUPS[group]
    argv = [str(checkout / ".venv/bin/jobrunner"), "bench", "--only", group, "--rounds", "1"]
    bench = subprocess.Popen(  # noqa: S603 - our own command
        [*argv, *flags], cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    last: dict[str, tuple[str, float]] = {}  # pid -> (kind, CPU seconds at the last look)
    while bench.poll() is None:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            command = _command(pid)
            kind = "app" if ours in command and str(checkout) in command else None
            if "postgres:" in command and "jobrunner_bench" in command:
                kind = "pg"
            seconds = _cpu_seconds(pid) if kind else None
            if kind and seconds is not None:
                last[pid] = (kind, seconds)
        time.sleep(0.05)
    assert bench.stdout is not None
    output = bench.stdout.read().decode()
    found = re.search(re.escape(figure) + r"[^\n]*?\s([\d,]+)\s", output)
    rate = found.group(1) if found else "?"
    app = sum(s for k, s in last.values() if k == "app") * 1e6 / jobs
    pg = sum(s for k, s in last.values() if k == "pg") * 1e6 / jobs
    return f"{checkout.name} {group}: {rate} jobs/s, {app:.0f} us app + {pg:.0f} us PostgreSQL"


if __name__ == "__main__":
    sys.stdout.write(measure(sys.argv[1], Path(sys.argv[2]).resolve()) + "\n")
