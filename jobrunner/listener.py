"""LISTEN on a dedicated connection that heals itself: the worker's doorbells (new jobs,
cancel requests) and the API's outcome bell (jobrunner.api.events).

Notifications only say "look now"; the rows are the truth and polling covers any that are
lost. A dead connection (closed, or silent past its health check) is replaced with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from jobrunner.db import queries
from jobrunner.db.errors import DB_ERRORS
from jobrunner.db.pool import connect

log = structlog.get_logger("jobrunner.listener")

JOBS_CHANNEL = "jobrunner_jobs"  # payload: a queue with new jobs
CANCEL_CHANNEL = "jobrunner_cancel"  # payload: a running job asked to stop
OUTCOMES_CHANNEL = "jobrunner_outcomes"  # no payload: outcomes were written (job_record_outcomes)


class Listener:
    def __init__(
        self,
        dsn: str,
        *,
        channels: Mapping[str, Callable[[str], None]],
        on_connected: Callable[[], None],
        role: str = "listener",
        check_interval: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        """`channels`: what to call with each channel's payloads; `on_connected`: called at
        each (re)connection, when notices may have been missed."""
        self._dsn = dsn
        self._channels = dict(channels)
        self._role = role
        self._on_connected = on_connected
        self._check_interval = check_interval
        self._max_backoff = max_backoff
        self.connected = asyncio.Event()

    async def run(self) -> None:
        delay = 0.05
        while True:
            try:
                await self._listen_until_broken()
                delay = 0.05
            except DB_ERRORS as exc:
                log.warning(
                    "listener connection lost; reconnecting",
                    error=str(exc) or type(exc).__name__,
                    retry_in=round(delay, 3),
                )
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def _listen_until_broken(self) -> None:
        conn = await connect(self._dsn, role=self._role)
        closed = asyncio.Event()
        conn.add_termination_listener(lambda _conn: closed.set())
        try:
            for channel in self._channels:
                # LISTEN waits on the server like any query, and no health check runs yet: a
                # backend frozen (or a socket gone half-open) now would hold us here forever.
                async with asyncio.timeout(self._check_interval):
                    await conn.add_listener(channel, self._dispatch)
            self.connected.set()
            # Anything sent while we were away was missed: have the worker look now.
            self._on_connected()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation that lands as its inner wait ends, and this loop would then
            # outlive the app that cancelled it (seen as a hung test teardown).
            while not closed.is_set():
                try:
                    async with asyncio.timeout(self._check_interval):
                        await closed.wait()
                except TimeoutError:
                    # A frozen server or a half-open socket sends nothing: ask.
                    async with asyncio.timeout(self._check_interval):
                        await queries.ping(conn)
            raise ConnectionError("listener connection closed")
        finally:
            conn.terminate()

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: object) -> None:
        self._channels[channel](str(payload))
