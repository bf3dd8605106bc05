"""The one way to reach PostgreSQL: pools for work, and a dedicated connection for LISTEN.

Every connection gets the same JSON codecs and an `application_name` naming its role, so
`pg_stat_activity` shows which process does what.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar, overload

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

from jobrunner.db.errors import TRANSIENT_ERRORS
from jobrunner.errors import ConfigError

log = structlog.get_logger("jobrunner.db")
T = TypeVar("T")

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


# One encoder for every json/jsonb parameter: json.dumps with options builds a new encoder
# per call, which costs more than encoding a small object.
dump_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


_load_json = json.JSONDecoder().decode


def _encode_jsonb(value: object) -> bytes:
    # jsonb's binary form: a format version byte (1), then the JSON text.
    return b"\x01" + dump_json(value).encode()


def _decode_jsonb(data: bytes) -> object:
    return _load_json(data[1:].decode())


# Connections that have jobrunner's codecs: every one our pools and connect() open, and any
# caller's own connection that ensure_codecs has seen.
_WITH_CODECS: weakref.WeakSet[asyncpg.Connection[asyncpg.Record]] = weakref.WeakSet()


async def init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    _WITH_CODECS.add(conn)
    await conn.set_type_codec("json", encoder=dump_json, decoder=_load_json, schema="pg_catalog")
    # jsonb travels in binary form: COPY (enqueue_many) takes nothing else.
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def ensure_codecs(conn: Conn) -> None:
    """Give `conn` jobrunner's JSON codecs if it has none yet: a caller may enqueue on a plain
    `asyncpg.connect()` connection, or one of its own pool, inside its own transaction.
    Costs a round trip once per connection (set_type_codec reads the type), then nothing."""
    # A pool hands out proxies; the codecs belong to the connection behind (asyncpg keeps it
    # in the proxy's `_con` slot, the one public way to reach it being the proxy itself).
    raw = conn._con if isinstance(conn, PoolConnectionProxy) else conn  # type: ignore[attr-defined]
    if raw is not None and raw not in _WITH_CODECS:
        await init_connection(raw)


async def _roll_back_only(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """Release without the full session reset: asyncpg still rolls back an open transaction."""


def _server_settings(role: str, worker_plans: bool) -> dict[str, str]:
    settings = {"application_name": f"jobrunner-{role}"}
    if worker_plans:
        settings["plan_cache_mode"] = "force_custom_plan"
        settings["enable_bitmapscan"] = "off"
    return settings


async def create_pool(
    dsn: str,
    *,
    role: str,
    min_size: int = 1,
    max_size: int = 10,
    stateless: bool = False,
    worker_plans: bool = False,
) -> Pool:
    """A pool of connections. `stateless` is for callers that never leave session state
    behind (no SET, no session advisory lock, no LISTEN): their connections go back to the
    pool without the reset query, one round trip less per request.

    `worker_plans` is for the worker, whose statements each carry a batch in arrays and are
    meant to walk an index. Two settings keep their plans there:
    - plan_cache_mode=force_custom_plan: planned afresh for every call, a statement is planned
      for that batch. asyncpg prepares every statement, and after five calls PostgreSQL may
      settle on a generic plan that cannot see the arrays' sizes. Measured with `jobrunner
      bench`: beside a million-row backlog a generic plan processed 12,600 jobs/s, custom
      plans 33,600; at concurrency 200, 6,000 against 37,700. A plan costs ~0.3 ms of the
      server's time, once per batch.
    - enable_bitmapscan=off: on a table not analyzed since a burst of enqueues (a new
      install, or a quiet queue that suddenly fills) the statistics say a few rows are
      queued, and the claim read every queued row through a bitmap and sorted them to take
      the first 250: 300 ms a claim with 240,000 queued, 7,800 jobs/s. Its index is already
      in claim order; without bitmap scans the planner walks it and stops at the batch
      (2 ms). The worker's other statements fetch rows by id or walk a range of an index,
      for which a plain index scan is as good."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=_roll_back_only if stateless else None,
        server_settings=_server_settings(role, worker_plans),
        # A dead server must not hang a caller forever.
        timeout=10,
        command_timeout=60,
    )
    return pool


async def connect(
    dsn: str, *, role: str, worker_plans: bool = False
) -> asyncpg.Connection[asyncpg.Record]:
    """A connection outside any pool: for LISTEN, which must outlive any one request, and the
    heartbeat. `worker_plans` as for create_pool."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
        dsn, server_settings=_server_settings(role, worker_plans), timeout=10
    )
    try:
        await init_connection(conn)
    except BaseException:
        conn.terminate()  # not left open behind a failed or cancelled start
        raise
    return conn


@overload
async def wait_for_database(
    open_: Callable[[], Awaitable[T]], *, wait: float, stop: None = None, max_delay: float = 2.0
) -> T: ...


@overload
async def wait_for_database(
    open_: Callable[[], Awaitable[T]], *, wait: float, stop: asyncio.Event, max_delay: float = 2.0
) -> T | None: ...


async def wait_for_database(
    open_: Callable[[], Awaitable[T]],
    *,
    wait: float,
    stop: asyncio.Event | None = None,
    max_delay: float = 2.0,
) -> T | None:
    """Open a pool or connection, retrying while the server is away, for up to `wait` seconds.

    A process started alongside PostgreSQL (compose, a host reboot, a failover) must not die
    on the race. Returns None when `stop` is set first; raises ConfigError after the deadline,
    with the last error, so the operator reads one line instead of a traceback.
    """
    deadline = time.monotonic() + wait
    failures = 0
    while True:
        try:
            return await open_()
        except TRANSIENT_ERRORS as exc:
            failures += 1
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConfigError(
                    f"database unreachable after {wait:g}s: {exc or type(exc).__name__}"
                ) from exc
            delay = min(max_delay, 0.05 * 2 ** min(failures, 10), left)
            log.warning(
                "database unavailable at start; retrying",
                error=str(exc) or type(exc).__name__,
                retry_in=round(delay, 3),
            )
        if stop is None:
            await asyncio.sleep(delay)
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            continue
        return None
