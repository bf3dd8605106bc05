"""Deadlines for reading request bodies, kept by one sweeper instead of a timer a request.

asyncio.timeout arms a timer, and disarms it, around every body read: ~5 µs a POST (more
than the rest of the body's handling), for a deadline that almost never fires, since the
body of most requests came in the headers' packet. Here a request reading its body is one
dict entry; a sweeper task, running only while some request reads, cancels the ones past
their deadline a few times per deadline, so a read may run up to a quarter of it late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class ReadDeadlines:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._every = min(1.0, seconds / 4)  # how often the sweeper looks
        self._reading: dict[asyncio.Task[Any], float] = {}  # task -> its deadline (loop time)
        self._late: set[asyncio.Task[Any]] = set()  # cancelled by the sweeper
        self._sweeper: asyncio.Task[None] | None = None

    async def read(self, reading: Awaitable[T]) -> T:
        """`reading`, awaited; TimeoutError if it is still waiting past the deadline."""
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        self._reading[task] = loop.time() + self.seconds
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep(), name="jobrunner body deadlines")
        try:
            return await reading
        except asyncio.CancelledError:
            if task not in self._late:
                raise
            self._late.discard(task)
            task.uncancel()
            raise TimeoutError from None
        finally:
            del self._reading[task]

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._reading:
                await asyncio.sleep(self._every)
                now = loop.time()
                for task, deadline in list(self._reading.items()):
                    if deadline <= now and task not in self._late:
                        self._late.add(task)
                        task.cancel()
        finally:
            self._sweeper = None  # the next read starts another
