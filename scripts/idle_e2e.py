"""One job at a time over HTTP on an idle system: jobrunner against FastAPI + Celery + Redis.

A measurement harness, not part of the package. It starts both stacks side by side:

- jobrunner: `python -m jobrunner api` and `python -m jobrunner worker` (default settings,
  but the per-user submit limits raised as `jobrunner bench` does) on a scratch database;
- Celery: scripts/celery_stack (a FastAPI app calling `noop.delay()` and reading
  `AsyncResult`, one worker, Redis as broker and result backend) from a separate venv
  (`python3 -m venv /tmp/celery-venv && /tmp/celery-venv/bin/pip install 'celery[redis]'
  fastapi uvicorn httpx`); celery is no dependency of jobrunner.

Then one client (httpx, one keep-alive connection) submits N no-op jobs one at a time:

- poll: POST, then GET every `--poll-ms` (2 ms after the 201, then 2 ms after each answer)
  until the job is terminal; latency is from just before the POST to the terminal answer,
  and "first poll done" says whether the first GET already saw it finished;
- sse: POST, then GET /jobs/{id}/events, latency to the first terminal event.

Stacks and variants run alternately, `--rounds` times; `uptime` is printed before and after
each round (the machine is shared). With `--breakdown`, each jobrunner poll round also
prints where the time went, from the job rows' database times (created_at: the insert's
transaction; started_at: the claim; finished_at: the outcome write) against the client's
wall clock (one machine, one clock).

    /work/main/.venv/bin/python scripts/idle_e2e.py --jobs 500 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SCRATCH_DB = "jobrunner_idle_e2e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _uptime() -> str:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False)  # noqa: S607 - a measurement note
    return uptime.stdout.strip()


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass
class Stack:
    name: str
    base: str
    headers: dict[str, str]
    status_path: str  # format with the job id; answers {"state": ...}
    events_path: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_http(url: str, procs: list[subprocess.Popen[bytes]], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + path, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in time")


async def _scratch_database(admin_dsn: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {SCRATCH_DB}")
    finally:
        await conn.close()
    base, _, _ = admin_dsn.rpartition("/")
    return f"{base}/{SCRATCH_DB}"


def start_jobrunner(args: argparse.Namespace, logs: Path) -> Stack:
    dsn = asyncio.run(_scratch_database(args.admin_dsn))
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JOBRUNNER_DATABASE_URL": dsn,
        "JOBRUNNER_HOST": "127.0.0.1",
        "JOBRUNNER_PORT": str(port),
        "JOBRUNNER_JWT_SECRET": secrets.token_urlsafe(48),
        # One client submits a few hundred jobs a second: the default per-user limits (10 a
        # second) would answer 429. Raised the way `jobrunner bench` raises them.
        "JOBRUNNER_SUBMIT_RATE_PER_MINUTE": str(10**9),
        "JOBRUNNER_SUBMIT_BURST": str(10**7),
        "JOBRUNNER_MAX_UNFINISHED_JOBS_PER_USER": str(10**7),
    }
    py = args.jobrunner_python
    migrate = [py, "-m", "jobrunner", "migrate"]
    # `-m` puts the working directory first on sys.path: run from ROOT, so the checkout this
    # script belongs to is the jobrunner measured, wherever the script is started from.
    subprocess.run(migrate, env=env, cwd=ROOT, check=True, capture_output=True)  # noqa: S603 - our own argv
    commands = {"api": [py, "-m", "jobrunner", "api"], "worker": [py, "-m", "jobrunner", "worker"]}
    if args.probe:
        env["IDLE_E2E_PROBE_OUT"] = str(logs / "probe.jsonl")
        (logs / "probe.jsonl").unlink(missing_ok=True)
        commands["worker"] = [py, str(HERE / "idle_e2e_probe.py")]
    procs = []
    for role, argv in commands.items():
        out = (logs / f"jobrunner-{role}.log").open("wb")
        procs.append(subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out))  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    _wait_http(base, procs, "/healthz")
    user = {"username": f"idle_{secrets.token_hex(4)}", "password": secrets.token_urlsafe(16)}
    httpx.post(base + "/auth/register", json=user).raise_for_status()
    token = httpx.post(base + "/auth/token", json=user).json()["access_token"]
    stack = Stack(
        "jobrunner",
        base,
        {"Authorization": f"Bearer {token}"},
        args.jobrunner_status,
        "/jobs/{}/events",
        procs,
    )
    stack.dsn = dsn  # type: ignore[attr-defined]
    return stack


def start_celery(args: argparse.Namespace, logs: Path) -> Stack:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE / "celery_stack")}
    env.pop("VIRTUAL_ENV", None)
    py = args.celery_python
    worker_argv = [py, "-m", "celery", "-A", "tasks", "worker", "--loglevel=WARNING"]
    worker_argv += [f"--pool={args.celery_pool}", f"--concurrency={args.celery_concurrency}"]
    api_argv = [py, "-m", "uvicorn", "api:app", "--host", "127.0.0.1", "--port", str(port)]
    api_argv += ["--log-level", "warning", "--no-access-log"]
    procs = []
    for name, argv in (("worker", worker_argv), ("api", api_argv)):
        out = (logs / f"celery-{name}.log").open("wb")
        procs.append(
            subprocess.Popen(argv, env=env, cwd=HERE / "celery_stack", stdout=out, stderr=out)  # noqa: S603
        )
    base = f"http://127.0.0.1:{port}"
    _wait_http(base, procs, "/docs")
    stack = Stack("celery", base, {}, "/jobs/{}", "/jobs/{}/events", procs)
    # The worker is up once a job goes through.
    with httpx.Client(base_url=base) as http:
        job = http.post("/jobs").json()["id"]
        deadline = time.monotonic() + 60
        while http.get(f"/jobs/{job}").json()["state"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery worker ran no job within 60 s")
            time.sleep(0.05)
    return stack


@dataclass
class Sample:
    job_id: str
    sent: float  # wall clock, just before the POST
    latency_ms: float
    first_poll_done: bool
    polls: int
    done_at: float  # wall clock of the terminal answer
    answered: float  # wall clock of the 201
    get_ms: list[float] = field(default_factory=list)  # each poll's round trip


def _submit(http: httpx.Client, stack: Stack) -> str:
    response = http.post("/jobs", json={"task": "noop", "args": {}}, headers=stack.headers)
    if response.status_code != 201:
        raise RuntimeError(f"{stack.name}: POST /jobs answered {response.status_code}")
    job_id: str = response.json()["id"]
    return job_id


def run_poll(stack: Stack, jobs: int, poll: float) -> list[Sample]:
    samples = []
    with httpx.Client(base_url=stack.base, limits=httpx.Limits(max_connections=1)) as http:
        for _ in range(jobs):
            wall, started = time.time(), time.perf_counter()
            job_id = _submit(http, stack)
            answered = wall + time.perf_counter() - started
            path = stack.status_path.format(job_id)
            polls, gets = 0, []
            while True:
                time.sleep(poll)
                polls += 1
                asked = time.perf_counter()
                state = http.get(path, headers=stack.headers).json()["state"]
                gets.append((time.perf_counter() - asked) * 1000)
                if state in TERMINAL:
                    break
            elapsed = time.perf_counter() - started
            samples.append(
                Sample(
                    job_id, wall, elapsed * 1000, polls == 1, polls, wall + elapsed, answered, gets
                )
            )
    return samples


def _events(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("event:"):
            yield line.partition(":")[2].strip()


def run_sse(stack: Stack, jobs: int) -> list[Sample]:
    samples = []
    with httpx.Client(base_url=stack.base, limits=httpx.Limits(max_connections=1)) as http:
        for _ in range(jobs):
            wall, started = time.time(), time.perf_counter()
            job_id = _submit(http, stack)
            answered = wall + time.perf_counter() - started
            path = stack.events_path.format(job_id)
            with http.stream("GET", path, headers=stack.headers) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"{stack.name}: {path} answered {response.status_code}")
                elapsed = 0.0
                for event in _events(response.iter_lines()):
                    if event in TERMINAL and not elapsed:
                        elapsed = time.perf_counter() - started
                # read to its end (it ends after its terminal event): the connection is kept
            if not elapsed:
                raise RuntimeError(f"{stack.name}: {path} ended with no terminal event")
            samples.append(Sample(job_id, wall, elapsed * 1000, False, 0, wall + elapsed, answered))
    return samples


async def _rows(dsn: str, ids: list[str]) -> dict[str, tuple[datetime, datetime, datetime]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id::text, created_at, started_at, finished_at FROM jobrunner.jobs"
            " WHERE id = ANY($1::uuid[])",
            ids,
        )
    finally:
        await conn.close()
    return {r["id"]: (r["created_at"], r["started_at"], r["finished_at"]) for r in rows}


def _probe_stamps(path: Path | None) -> dict[str, dict[str, float]]:
    if path is None or not path.exists():
        return {}
    lines = path.read_text().splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def breakdown(dsn: str, samples: list[Sample], probe: Path | None) -> str:
    """Where a job's time went (ms, p50 / p99): the client's stamps, the rows' database
    times (created_at is the insert's transaction start) and, with --probe, the worker's."""
    rows = asyncio.run(_rows(dsn, [s.job_id for s in samples]))
    stamps = _probe_stamps(probe)
    steps: list[tuple[str, str, str]] = [
        ("POST sent", "created", "POST -> insert's now()"),
        ("created", "answered", "insert's now() -> 201 read"),
    ]
    if stamps:
        steps += [
            ("created", "heard", "insert's now() -> NOTIFY heard"),
            ("heard", "claim_sent", "NOTIFY heard -> claim sent"),
            ("claim_sent", "claim_back", "claim round trip"),
            ("claim_back", "run_start", "claim back -> attempt starts"),
            ("run_start", "run_end", "attempt (no-op handler)"),
            ("run_end", "report", "outcome -> writer"),
            ("report", "write_sent", "writer -> outcome statement sent"),
            ("write_sent", "write_back", "outcome write round trip"),
            ("write_back", "done", "outcome committed -> terminal answer"),
        ]
    else:
        steps += [
            ("created", "started", "insert -> claim's now()"),
            ("started", "finished", "claim -> outcome write's now()"),
            ("finished", "done", "outcome's now() -> terminal answer"),
        ]
    parts: dict[str, list[float]] = {name: [] for _, _, name in steps}
    for s in samples:
        created, started, finished = (t.timestamp() for t in rows[s.job_id])
        at = {
            "POST sent": s.sent, "answered": s.answered, "done": s.done_at,
            "created": created, "started": started, "finished": finished,
            **stamps.get(s.job_id, {}),
        }  # fmt: skip
        for a, b, name in steps:
            if a in at and b in at and at[a] and at[b]:
                parts[name].append((at[b] - at[a]) * 1000)
    return "\n".join(
        f"      {name:38} p50 {_pct(v, 50):6.2f}  p99 {_pct(v, 99):6.2f}  max {max(v):6.2f}"
        for name, v in parts.items()
        if v
    )


def summary(samples: list[Sample], poll: bool) -> str:
    ms = [s.latency_ms for s in samples]
    text = (
        f"p50 {_pct(ms, 50):6.2f}  p95 {_pct(ms, 95):6.2f}  p99 {_pct(ms, 99):6.2f}"
        f"  mean {statistics.fmean(ms):6.2f} ms"
    )
    if poll:
        late = sum(not s.first_poll_done for s in samples)
        text += f"  not done at first poll {late / len(samples):5.1%}"
        posts = [(s.answered - s.sent) * 1000 for s in samples]
        gets = [ms for s in samples for ms in s.get_ms]
        text += f"\n{'':17} POST p50 {_pct(posts, 50):5.2f} p99 {_pct(posts, 99):5.2f}"
        text += f"  GET p50 {_pct(gets, 50):5.2f} p99 {_pct(gets, 99):5.2f} ms"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-ms", type=float, default=2.0)
    parser.add_argument("--stacks", default="jobrunner,celery")
    parser.add_argument("--variants", default="poll,sse")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the worker through scripts/idle_e2e_probe.py (stamps each step; implies"
        " --breakdown)",
    )
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--jobrunner-python", default=sys.executable)
    parser.add_argument("--jobrunner-status", default="/jobs/{}/result")
    parser.add_argument("--celery-python", default="/tmp/celery-venv/bin/python")  # noqa: S108 - the venv made as the docstring says
    parser.add_argument("--celery-pool", default="prefork")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/idle_e2e_logs"))  # noqa: S108 - scratch logs
    parser.add_argument("--json", type=Path, help="write every latency here")
    args = parser.parse_args()
    args.breakdown = args.breakdown or args.probe
    args.logs.mkdir(parents=True, exist_ok=True)
    poll = args.poll_ms / 1000
    starters = {"jobrunner": start_jobrunner, "celery": start_celery}
    stacks = [starters[name](args, args.logs) for name in args.stacks.split(",")]
    results: dict[str, list[list[float]]] = {}
    try:
        for stack in stacks:  # untimed: pools open, statements prepared, workers warm
            run_poll(stack, args.warmup, poll)
            run_sse(stack, args.warmup // 5)
        print(
            f"{args.jobs} jobs one at a time, poll every {args.poll_ms:g} ms; celery worker "
            f"--pool={args.celery_pool} --concurrency={args.celery_concurrency}"
        )
        for round_no in range(1, args.rounds + 1):
            print(f"round {round_no}  [{_uptime()}]")
            order = stacks if round_no % 2 else stacks[::-1]
            for variant in args.variants.split(","):
                for stack in order:
                    if variant == "poll":
                        samples = run_poll(stack, args.jobs, poll)
                    else:
                        samples = run_sse(stack, args.jobs)
                    key = f"{stack.name} {variant}"
                    results.setdefault(key, []).append([s.latency_ms for s in samples])
                    print(f"  {key:15} {summary(samples, variant == 'poll')}", flush=True)
                    if args.breakdown and stack.name == "jobrunner":
                        probe = args.logs / "probe.jsonl" if args.probe else None
                        print(breakdown(stack.dsn, samples, probe), flush=True)  # type: ignore[attr-defined]
        print(f"after  [{_uptime()}]")
    finally:
        for stack in stacks:
            stack.stop()
    print("all rounds together:")
    for key, rounds in results.items():
        ms = [v for r in rounds for v in r]
        print(
            f"  {key:15} p50 {_pct(ms, 50):6.2f}  p95 {_pct(ms, 95):6.2f}  p99 {_pct(ms, 99):6.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
