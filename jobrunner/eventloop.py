"""The event loop the long-running commands run on: uvloop where it is installed.

uvicorn[standard] brings uvloop on Linux and macOS. Its socket I/O and scheduling are written
in C, so less of each request's and each job's time is spent in the loop itself; elsewhere
(Windows) the standard loop does the same work.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when it is there."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(main)
