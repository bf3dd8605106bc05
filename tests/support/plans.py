"""What a statement costs the server, read from its plan: for plan and buffer tests."""

from __future__ import annotations

import json

from jobrunner.db.pool import Conn


async def buffers_read(conn: Conn, sql: str, *args: object) -> int:
    """Shared buffers (hit or read) one run of `sql` touches, in a transaction rolled back
    after, so a probe of a claim claims nothing."""
    probe = conn.transaction()
    await probe.start()
    try:
        plan = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    finally:
        await probe.rollback()
    root = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(root["Shared Hit Blocks"] + root["Shared Read Blocks"])
