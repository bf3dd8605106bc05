"""The API process killed (-9) in the middle of a burst of submissions that each carry an
Idempotency-Key; a client re-sends every submission whose answer it never saw (and some it
did) with the same key and body once the API is back, each twice at once, as impatient clients
do. Each key ends up with exactly one job, a re-sent key whose first submission committed gets
that job back, and every job completes.

The API is the real `python -m jobrunner api` in its own process; so is the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx

from jobrunner import accounts
from tests.faults.checks import Db, assert_nothing_lost, assert_repeats_explained
from tests.support.fault_server import Figures
from tests.support.processes import (
    REPO_ROOT,
    Processes,
    WorkerOptions,
    WorkerProcess,
)
from tests.support.waiting import equals, wait_for

PASSWORD = "correct horse battery"
KEYS = 400
SENDERS = 8
KILL_AFTER = 120  # answers seen before the kill
RESEND_SEEN_EVERY = 10  # of the answered submissions, re-send every tenth too
API_ENV = {
    "JOBRUNNER_JWT_SECRET": "k" * 48,
    "JOBRUNNER_SUBMIT_RATE_PER_MINUTE": "1000000",
    "JOBRUNNER_SUBMIT_BURST": "1000000",
    "JOBRUNNER_POOL_MAX_SIZE": str(SENDERS * 2),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_api(procs: Processes, name: str, port: int) -> WorkerProcess:
    """`jobrunner api` as its own process, killed with the workers at teardown."""
    log_path = procs.log_dir / f"{name}-{len(procs.started)}.log"
    argv = [sys.executable, "-m", "jobrunner", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, cwd=REPO_ROOT, env=procs.env(API_ENV),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = WorkerProcess(name, popen, log_path)
    procs.started.append(api)
    return api


async def _wait_ready(http: httpx.AsyncClient, api: WorkerProcess) -> None:
    async def ready() -> bool:
        assert api.alive(), f"the API exited: {api.log()[-2000:]}"
        with contextlib.suppress(httpx.TransportError):
            return (await http.get("/readyz")).status_code == 200
        return False

    await wait_for(ready, timeout=60, what=f"{api.name} ready", interval=0.05)


def _body(i: int) -> dict[str, Any]:
    return {"task": "fault.record", "args": {"n": i}, "max_attempts": 50}


@dataclass
class Burst:
    """Submissions of keys 0..KEYS-1 by SENDERS concurrent clients; what each one heard."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    answered: dict[int, UUID] = field(default_factory=dict)
    unseen: set[int] = field(default_factory=set)  # sent (or not) but no answer heard
    odd: list[str] = field(default_factory=list)
    in_flight: int = 0

    async def submit(self, i: int) -> httpx.Response | None:
        headers = {**self.headers, "Idempotency-Key": f"burst-{i}"}
        self.in_flight += 1
        try:
            return await self.http.post("/jobs", json=_body(i), headers=headers)
        except httpx.TransportError:  # killed under us, or not listening: no answer
            return None
        finally:
            self.in_flight -= 1

    async def run(self, keys: list[int]) -> None:
        queue = list(reversed(keys))

        async def sender() -> None:
            while queue:
                i = queue.pop()
                answer = await self.submit(i)
                if answer is None:
                    self.unseen.add(i)
                elif answer.status_code == 201:
                    self.answered[i] = UUID(answer.json()["id"])
                else:
                    self.odd.append(f"key {i}: {answer.status_code} {answer.text[:200]}")

        await asyncio.gather(*(sender() for _ in range(SENDERS)))


async def _kill_when(burst: Burst, api: WorkerProcess) -> int:
    """kill -9 the API once KILL_AFTER answers are in; returns the requests in flight then."""
    await wait_for(
        lambda: len(burst.answered) >= KILL_AFTER, timeout=60, what="answers before kill"
    )
    in_flight = burst.in_flight
    os.kill(api.pid, signal.SIGKILL)
    await api.wait_exit(10)
    return in_flight


async def _resend(burst: Burst, keys: list[int]) -> tuple[dict[int, UUID], set[int]]:
    """Re-send `keys` with the same key and body; each twice at once, as an impatient client
    would. Returns the job each key got, and the keys answered as replays."""
    got: dict[int, UUID] = {}
    replayed: set[int] = set()
    gate = asyncio.Semaphore(SENDERS)

    async def one(i: int) -> None:
        async with gate:
            answers = await asyncio.gather(burst.submit(i), burst.submit(i))
        ids = set()
        for answer in answers:
            assert answer is not None and answer.status_code == 201, (i, answer)
            ids.add(UUID(answer.json()["id"]))
        assert len(ids) == 1, f"key {i} answered with two jobs: {ids}"
        got[i] = ids.pop()
        made = [a for a in answers if a is not None and "Idempotent-Replayed" not in a.headers]
        assert len(made) <= 1, f"key {i}: both answers say they made the job"
        if not made:
            replayed.add(i)

    await asyncio.gather(*(one(i) for i in keys))
    return got, replayed


async def test_api_killed_mid_burst_idempotency_keys_make_one_job_each(
    db: Db, procs: Processes, figures: Figures
) -> None:
    await accounts.create_user(await db.conn(), username="alice", password=PASSWORD)
    procs.start_worker("w", WorkerOptions(lease_seconds=10.0, heartbeat_interval=0.5))
    await wait_for(db.serves, timeout=60, what="a worker registered")  # else users get 422
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    api = _start_api(procs, "api", port)
    keys = list(range(KEYS))
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _wait_ready(http, api)
        login = await http.post("/auth/token", json={"username": "alice", "password": PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        burst = Burst(http, headers)
        killing = asyncio.create_task(_kill_when(burst, api))
        await burst.run(keys)
        in_flight_at_kill = await killing
    killed = time.monotonic()
    assert burst.odd == []
    assert burst.unseen, "the kill came after the burst: nothing was in doubt"
    seen = dict(burst.answered)
    restarted = _start_api(procs, "api-again", port)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _wait_ready(http, restarted)
        back = time.monotonic() - killed
        burst.http = http  # the access token outlives the process: same secret, same session
        again = sorted(burst.unseen) + sorted(seen)[::RESEND_SEEN_EVERY]
        got, replayed = await _resend(burst, again)
    for i, job_id in seen.items():
        assert got.get(i, job_id) == job_id, f"key {i} made a second job"
    assert {i for i in got if i in seen} <= replayed, "an answered key was not replayed"
    final = {**got, **seen}
    assert sorted(final) == keys

    await _assert_one_job_per_key(db, final)
    ids = list(final.values())
    await wait_for(lambda: db.all_done(ids), timeout=60, what="every job done")
    all_done = time.monotonic() - killed
    await wait_for(lambda: equals(db.unfinished(), 0), timeout=30, what="nothing left unfinished")
    await assert_nothing_lost(db, ids)
    assert await assert_repeats_explained(db) == 0  # no worker fault here: each ran once
    assert restarted.alive()
    committed_unseen = replayed & burst.unseen
    figures(
        keys=KEYS, answered_before_kill=len(seen), in_flight_at_kill=in_flight_at_kill,
        unseen=len(burst.unseen), unseen_but_committed=len(committed_unseen),
        unseen_made_on_resend=len(burst.unseen) - len(committed_unseen),
        api_ready_after_kill_seconds=back, all_done_after_kill_seconds=all_done,
    )  # fmt: skip


async def _assert_one_job_per_key(db: Db, final: dict[int, UUID]) -> None:
    """In the database: one key row per key naming that key's job, and one job per key."""
    rows = await db.fetch(
        "SELECT key, job_id FROM jobrunner.idempotency_keys WHERE owner = 'alice'"
    )
    stored = {int(r["key"].removeprefix("burst-")): r["job_id"] for r in rows}
    assert stored == final, "a key names a job other than the one its answers gave"
    jobs = await db.fetch(
        "SELECT (args->>'n')::int AS n, count(*) AS made, min(id::text)::uuid AS id"
        " FROM jobrunner.all_jobs WHERE owner = 'alice' GROUP BY 1"
    )
    twice = {r["n"]: r["made"] for r in jobs if r["made"] != 1}
    assert twice == {}, f"keys with more than one job: {twice}"
    assert {r["n"]: r["id"] for r in jobs} == final
