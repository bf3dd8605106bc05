"""The event loop the long-running commands run on: uvloop where it is installed; and the
collector kept off what was built at startup.

uvicorn[standard] brings uvloop on Linux and macOS. Its socket I/O and scheduling are written
in C, so less of each request's and each job's time is spent in the loop itself; elsewhere
(Windows) the standard loop does the same work.
"""

from __future__ import annotations

import asyncio
import gc
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


def freeze_startup_objects(*, collect: bool = True) -> None:
    """Move every object alive now out of the garbage collector's sight: for a server
    process, once its app is built (after a collection, unless `collect` is False: a
    worker's start is measured to the millisecond, and leaves little garbage).

    A busy API promotes in-flight requests' objects to the oldest generation fast enough to
    trigger a full collection about once a second, and a full collection walked the ~90,000
    objects of the modules, FastAPI's routes and pydantic's models each time: measured with a
    gc callback under `jobrunner bench`, 50-90 ms during which no request moved, which was the
    submit p99. Frozen, they are skipped (a full collection then took ~1.5 ms). They live as
    long as the process anyway.
    """
    if collect:
        gc.collect()
    gc.freeze()
