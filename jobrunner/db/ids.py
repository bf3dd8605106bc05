"""Job ids made in bulk, for inserts that cannot call jobrunner.uuid_v7() per row.

`enqueue_many` writes its rows with COPY, which is fastest when every column arrives with the
row; these ids are the same kind the column default makes (UUID version 7, RFC 9562), from a
millisecond the caller read off the database's clock. Within one call they count up (RFC 9562
section 6.2, method 1: an 18-bit counter after the version bits), so a batch's ids sort in
the order its jobs were given and its equal-priority jobs are claimed in that order. The last
56 bits are random, so two callers in the same millisecond don't collide.
"""

from __future__ import annotations

import os
from uuid import UUID

from asyncpg.pgproto.pgproto import UUID as WireUUID

COUNTER_BITS = 18
_PER_MILLISECOND = 1 << COUNTER_BITS

# Bytes 6-8 of each id: the version (7) and variant (0b10) bits around the 18-bit counter c,
# as byte 6 = 0x70 | c >> 14, byte 7 = (c >> 6) & 0xff, byte 8 = 0x80 | (c & 0x3f).
# Laid out once for every counter value, so a batch copies them with three slice writes.
_BYTE_6 = b"".join(bytes([0x70 | high]) * (1 << 14) for high in range(16))
_BYTE_7 = b"".join(bytes([middle]) * 64 for middle in range(256)) * 16
_BYTE_8 = bytes(0x80 | low for low in range(64)) * (1 << 12)


def time_ordered_ids(unix_ms: int, count: int) -> list[UUID]:
    """`count` ascending version-7 ids starting at `unix_ms`. Past 2**18 ids the counter
    wraps into the next millisecond, which keeps them ascending."""
    ids: list[UUID] = []
    millisecond = unix_ms
    while len(ids) < count:
        n = min(count - len(ids), _PER_MILLISECOND)
        raw = bytearray(os.urandom(16 * n))
        for position, byte in enumerate(millisecond.to_bytes(6, "big")):
            raw[position::16] = bytes([byte]) * n
        raw[6::16] = _BYTE_6[:n]
        raw[7::16] = _BYTE_7[:n]
        raw[8::16] = _BYTE_8[:n]
        packed = bytes(raw)
        # asyncpg's own UUID: a uuid.UUID that its codec writes without converting.
        ids.extend([WireUUID(packed[i : i + 16]) for i in range(0, 16 * n, 16)])
        millisecond += 1
    return ids
