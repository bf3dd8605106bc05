"""Measurement harness only: `python -m jobrunner worker`, with a wall-clock stamp written
at each step of a job's way through it (scripts/idle_e2e.py --probe runs this in place of
the worker). Stamps, one JSON line per job in $IDLE_E2E_PROBE_OUT:
  heard     the listener's NOTIFY callback ran
  claim     the claim statement was sent / its rows came back (claim_sent, claim_back)
  run       the attempt's task began / its outcome was made (run_start, run_end)
  report    the outcome reached the outcome writer
  write     the outcome statement was sent / it came back committed (write_sent, write_back)
The patches wrap module attributes the worker looks up at call time; nothing else changes.
"""

import json
import os
import sys
import time
from typing import Any

from jobrunner import listener
from jobrunner.db import queries
from jobrunner.worker import attempts, executor, outcomes

OUT = open(os.environ["IDLE_E2E_PROBE_OUT"], "a", buffering=1)  # noqa: SIM115
stamps: dict[str, dict[str, float]] = {}
last_heard = [0.0]


def _stamp(job_id: object, key: str, at: float | None = None) -> None:
    stamps.setdefault(str(job_id), {})[key] = at if at is not None else time.time()


_dispatch = listener.Listener._dispatch


def dispatch(self: Any, conn: Any, pid: int, channel: str, payload: object) -> None:
    if channel == listener.JOBS_CHANNEL:
        last_heard[0] = time.time()
    _dispatch(self, conn, pid, channel, payload)


listener.Listener._dispatch = dispatch  # type: ignore[method-assign]

_claim = queries.job_claim


async def job_claim(*args: Any, **kwargs: Any) -> Any:
    sent = time.time()
    rows = await _claim(*args, **kwargs)
    back = time.time()
    for job in rows:
        _stamp(job.id, "heard", last_heard[0])
        _stamp(job.id, "claim_sent", sent)
        _stamp(job.id, "claim_back", back)
    return rows


queries.job_claim = job_claim

_run_attempt = executor.run_attempt


async def run_attempt(job: Any, *args: Any, **kwargs: Any) -> Any:
    _stamp(job.id, "run_start")
    outcome = await _run_attempt(job, *args, **kwargs)
    _stamp(job.id, "run_end")
    return outcome


executor.run_attempt = run_attempt
attempts.executor = executor

_add = outcomes.OutcomeWriter.add


def add(self: Any, attempt: Any) -> None:
    _stamp(attempt.job.id, "report")
    _add(self, attempt)


outcomes.OutcomeWriter.add = add  # type: ignore[method-assign]

_record = queries.job_record_outcomes


async def job_record_outcomes(conn: Any, batch: Any, **kwargs: Any) -> Any:
    sent = time.time()
    recorded = await _record(conn, batch, **kwargs)
    back = time.time()
    for outcome in batch:
        s = stamps.pop(str(outcome.id), {})
        s.update(write_sent=sent, write_back=back, batch=len(batch))
        OUT.write(json.dumps({"id": str(outcome.id), **s}) + "\n")
    return recorded


queries.job_record_outcomes = job_record_outcomes

if __name__ == "__main__":
    from jobrunner.cli import main

    sys.argv = ["jobrunner", "worker"]
    sys.exit(main())
