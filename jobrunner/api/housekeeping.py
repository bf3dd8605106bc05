"""The API's own tables, kept small: each API process prunes them now and then.

Rate buckets idle for an hour are full again, so forgetting them changes nothing; idempotency
keys outlive their 24 hours; ended sessions (expired or revoked) go a day after they end. The
deletes are idempotent, so several API processes doing the same is harmless.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from jobrunner.api.submit import IDEMPOTENCY_TTL
from jobrunner.db import queries
from jobrunner.db.pool import Pool
from jobrunner.errors import ConfigError

log = structlog.get_logger("jobrunner.api.housekeeping")


@dataclass
class HousekeepingConfig:
    interval: float = 600.0
    bucket_idle: float = 3600.0
    idempotency_ttl: float = IDEMPOTENCY_TTL
    session_grace: float = 86400.0

    def __post_init__(self) -> None:
        if min(self.interval, self.bucket_idle, self.idempotency_ttl, self.session_grace) <= 0:
            raise ConfigError("housekeeping intervals must be positive")


async def run_once(pool: Pool, config: HousekeepingConfig) -> int:
    """Prune once; returns the rows deleted."""
    async with pool.acquire() as conn:
        buckets = await queries.rate_bucket_prune(conn, idle_seconds=config.bucket_idle)
        rest = await queries.api_state_prune(
            conn, idempotency_ttl=config.idempotency_ttl, session_grace=config.session_grace
        )
    return buckets + rest


async def run_forever(pool: Pool, config: HousekeepingConfig) -> None:
    while True:
        await asyncio.sleep(config.interval)
        try:
            deleted = await run_once(pool, config)
        except Exception:  # the database may be away: try again next time
            log.warning("API housekeeping failed", exc_info=True)
            continue
        if deleted:
            log.info("API housekeeping", deleted=deleted)
