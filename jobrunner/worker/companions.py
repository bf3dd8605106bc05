"""What runs beside a worker's fetch loop, each on its own task (the heartbeat also on its
own thread): the outcome writer, the progress writer, presence in the registry, the
listener, maintenance, the lane positions' check and the heartbeat. Started together once
the pool is open, stopped together at close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from jobrunner.db.pool import Pool
from jobrunner.listener import CANCEL_CHANNEL, JOBS_CHANNEL, Listener
from jobrunner.settings import Settings
from jobrunner.worker.attempts import AttemptBook
from jobrunner.worker.heartbeat import Heartbeat
from jobrunner.worker.lanes import LanePositions
from jobrunner.worker.maintenance import Maintenance
from jobrunner.worker.outcomes import OutcomeWriter
from jobrunner.worker.presence import Presence
from jobrunner.worker.progress import ProgressWriter


@dataclass(frozen=True, slots=True)
class Doorbell:
    """How the listener reaches the fetch loop."""

    on_jobs: Callable[[str], None]  # a queue's doorbell rang
    on_connected: Callable[[], None]  # (re)connected: notices may have been missed


class Companions:
    def __init__(
        self,
        settings: Settings,
        *,
        dsn: str,
        worker_id: str,
        book: AttemptBook,
        writer: OutcomeWriter,
        progress: ProgressWriter,
        presence: Presence,
        lanes: LanePositions,
    ) -> None:
        self._settings = settings
        self._dsn = dsn
        self._worker_id = worker_id
        self._book = book
        self._writer = writer
        self._progress = progress
        self._presence = presence
        self._lanes = lanes
        self._tasks: list[asyncio.Task[Any]] = []
        self._heartbeat: Heartbeat | None = None

    def start(
        self, pool: Pool, doorbell: Doorbell, *, listen: bool, maintenance: bool, heartbeat: bool
    ) -> None:
        self._spawn(self._writer.run(), "jobrunner-flush")
        self._spawn(self._presence.keep_seen(), "jobrunner-presence")
        self._spawn(self._progress.run(), "jobrunner-progress")
        self._spawn(self._lanes.run(pool), "jobrunner-lanes")
        settings = self._settings
        if listen:
            listener = Listener(
                self._dsn,
                channels={
                    JOBS_CHANNEL: doorbell.on_jobs,
                    CANCEL_CHANNEL: self._book.on_cancel_notice,
                },
                on_connected=doorbell.on_connected,
                check_interval=max(settings.poll_interval * 5, 1.0),
                max_backoff=settings.reconnect_max_delay,
            )
            self._spawn(listener.run(), "jobrunner-listener")
        if maintenance:
            self._spawn(Maintenance(pool, settings).run_forever(), "jobrunner-maintenance")
        if heartbeat:
            self._heartbeat = Heartbeat(
                self._dsn,
                worker_id=self._worker_id,
                interval=settings.heartbeat_interval,
                lease_seconds=settings.lease_seconds,
                held=lambda: self._book.snapshot,
                on_result=self._book.on_heartbeat,
                liveness_file=settings.liveness_file,
            )
            self._spawn(self._heartbeat.keep_alive(), "jobrunner-alive")
            self._heartbeat.start()

    async def stop(self, *also: asyncio.Task[Any]) -> None:
        """Cancel every companion (and `also`, the fetch loop), then leave the registry and
        stop the heartbeat's thread."""
        for task in (*also, *self._tasks):
            task.cancel()
        await asyncio.gather(*also, *self._tasks, return_exceptions=True)
        await self._presence.stop()
        if self._heartbeat is not None:
            await asyncio.to_thread(self._heartbeat.stop)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))
