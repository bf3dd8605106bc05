"""A webhook receiver that is down (connection refused), then up but failing (503), then well:
the delivery task retries with backoff through both, and each job's outcome arrives, signed and
under one stable webhook id, once the receiver answers 2xx.

The receiver is a tiny HTTP/1.1 server in this process; the worker is a real process. Jobs are
enqueued from code with an owner, whose secret signs the deliveries (the API's submit-time URL
check is tests/api's business).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from jobrunner import accounts, client
from tests.faults.checks import Db, assert_nothing_lost
from tests.support.fault_server import Figures
from tests.support.processes import Processes, WorkerOptions
from tests.support.signatures import signature_valid
from tests.support.waiting import wait_for

JOBS = 3
OTHER_JOBS = 300
BACKOFF_BASE = 0.4  # the first retry waits 0.2-0.4 s, later ones up to the cap
BACKOFF_CAP = 1.0  # ten attempts (the delivery task's limit) span at least 4 s
REFUSED_EACH = 2  # failed attempts per delivery while nothing listens
UNAVAILABLE_EACH = 2  # and while the receiver answers 503
GAVE_UP = ("failed", "cancelled")


@dataclass
class Request:
    at: float
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def job_id(self) -> str:
        data: dict[str, Any] = json.loads(self.body)["data"]
        return str(data["id"])


@dataclass
class Receiver:
    """Records every request and answers `status`; `start()` only once the outage is over."""

    port: int
    status: int = 503
    requests: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        status = self.status
        self.requests.append(Request(time.monotonic(), status, headers, body))
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    def answered(self, job_id: str, status: int) -> int:
        return sum(r.job_id == job_id and r.status == status for r in self.requests)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    with socket.socket() as sock:  # a port nothing listens on, until the receiver starts
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    receiver = Receiver(port)
    try:
        yield receiver
    finally:
        if receiver.server is not None:
            receiver.server.close()
            await receiver.server.wait_closed()


async def _deliveries(db: Db) -> dict[str, Any]:
    """The delivery jobs, by the id of the job they report on; fails once one gave up."""
    rows = await db.fetch(
        "SELECT args->>'job_id' AS about, state::text, attempt, errors FROM jobrunner.all_jobs"
        " WHERE task = 'jobrunner.deliver_webhook'"
    )
    gave_up = {r["about"]: (r["state"], r["errors"][-1:]) for r in rows if r["state"] in GAVE_UP}
    assert not gave_up, f"deliveries gave up: {gave_up}"
    return {r["about"]: r for r in rows}


async def _each_refused(db: Db, count: int) -> bool:
    deliveries = await _deliveries(db)
    refused = [sum("ConnectError" in e["error"] for e in d["errors"]) for d in deliveries.values()]
    return len(deliveries) == JOBS and min(refused) >= count


async def _each_answered(
    db: Db, receiver: Receiver, ids: list[UUID], status: int, count: int
) -> bool:
    await _deliveries(db)  # none gave up meanwhile
    return all(receiver.answered(str(i), status) >= count for i in ids)


async def _all_delivered(db: Db) -> bool:
    deliveries = await _deliveries(db)
    return len(deliveries) == JOBS and all(d["state"] == "succeeded" for d in deliveries.values())


async def test_webhook_delivered_once_the_receiver_comes_back(
    db: Db, procs: Processes, figures: Figures, receiver: Receiver
) -> None:
    conn = await db.conn()
    alice = await accounts.create_user(conn, username="alice", password="correct horse battery")
    worker = procs.start_worker("w", WorkerOptions(
        queues="default,webhooks", backoff_base=BACKOFF_BASE, backoff_cap=BACKOFF_CAP,
        lease_seconds=10.0, heartbeat_interval=0.5,  # no lease lost: only the receiver fails
        env={"JOBRUNNER_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
             "JOBRUNNER_WEBHOOK_TIMEOUT": "2"},
    ))  # fmt: skip
    jobs = [
        await client.enqueue("fault.pid", conn=conn, owner="alice", callback_url=receiver.url)
        for _ in range(JOBS)
    ]
    ids = [job.id for job in jobs]
    down = time.monotonic()
    await wait_for(lambda: _each_refused(db, REFUSED_EACH), timeout=60, what="deliveries refused")
    # Ten attempts span only a few seconds at this test's backoff: on a slow machine the phases
    # below could outlast them. A wider budget keeps the test about order, not speed.
    await conn.execute(
        "UPDATE jobrunner.jobs SET max_attempts = 100 WHERE task = 'jobrunner.deliver_webhook'"
    )
    await receiver.start()  # up, but failing
    # Failing deliveries wait out their backoff off the worker's slots: other jobs flow.
    others = await db.enqueue_many("fault.record", [{"n": n} for n in range(OTHER_JOBS)])
    others_started = time.monotonic()
    await wait_for(lambda: db.all_done(others), timeout=60, what="other jobs done while failing")
    others_took = time.monotonic() - others_started
    await assert_nothing_lost(db, others, others_busy=True)  # deliveries are still trying
    await wait_for(lambda: _each_answered(db, receiver, ids, 503, UNAVAILABLE_EACH), timeout=60,
                   what="deliveries answered 503")  # fmt: skip
    receiver.status = 200
    well = time.monotonic()
    await wait_for(lambda: _all_delivered(db), timeout=60, what="every outcome delivered")
    delivered = time.monotonic() - well

    assert worker.alive()
    finished = await assert_nothing_lost(db, ids)
    deliveries = await _deliveries(db)
    for job_id in ids:
        _check_delivery(deliveries[str(job_id)])
        _check_requests(receiver, job_id, alice.webhook_secret, finished[job_id]["result"])
    attempts = [d["attempt"] for d in deliveries.values()]
    figures(
        jobs=JOBS, backoff_base=BACKOFF_BASE, backoff_cap=BACKOFF_CAP,
        receiver_failing_seconds=well - down, delivered_after_receiver_well_seconds=delivered,
        delivery_attempts_max=max(attempts), requests=len(receiver.requests),
        delivered_2xx=sum(r.status == 200 for r in receiver.requests),
        other_jobs=OTHER_JOBS, other_jobs_per_second_while_failing=OTHER_JOBS / others_took,
    )  # fmt: skip


def _check_delivery(delivery: Any) -> None:
    """Refused, then 503, then delivered: every failure recorded, in that order."""
    errors = [e["error"] for e in delivery["errors"]]
    assert delivery["attempt"] == len(errors) + 1, errors
    kinds = ["refused" if "ConnectError" in e else "503" if "503" in e else e for e in errors]
    assert set(kinds) <= {"refused", "503"}, errors
    assert kinds == sorted(kinds, key=["refused", "503"].index), kinds
    assert kinds.count("refused") >= REFUSED_EACH and kinds.count("503") >= UNAVAILABLE_EACH


def _check_requests(receiver: Receiver, job_id: UUID, secret: str, result: Any) -> None:
    mine = [r for r in receiver.requests if r.job_id == str(job_id)]
    assert [r.status for r in mine if r.status == 200], f"{job_id} never delivered"
    assert len({r.headers["webhook-id"] for r in mine}) == 1, "the webhook id changed"
    for request in mine:
        assert signature_valid(secret, request.headers, request.body), "a bad signature"
        event = json.loads(request.body)
        assert event["type"] == "job.succeeded" and event["data"]["result"] == result
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    assert not signature_valid(other, mine[-1].headers, mine[-1].body)
    # Backing off: a retry waits at least half the base delay after the failure it follows.
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(mine)]
    assert min(gaps) >= BACKOFF_BASE / 2 * 0.9, gaps
