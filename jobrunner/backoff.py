"""Retry delays: capped exponential backoff with full jitter. Pure: no clock, no I/O.

The delay is added to the database's `now()` when the failure is recorded, so every schedule
stays in database time.
"""

from __future__ import annotations

import random


def retry_delay(
    attempt: int, *, base: float, cap: float, rand: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    The ceiling doubles with each attempt up to `cap`; the delay is drawn between half the
    ceiling and the ceiling, so retries of many jobs that failed together spread out.

    >>> retry_delay(1, base=1.0, cap=60.0, rand=random.Random(0)) <= 1.0
    True
    >>> retry_delay(30, base=1.0, cap=60.0, rand=random.Random(0)) <= 60.0
    True
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    draw = (rand or random).random()
    return ceiling / 2 + draw * ceiling / 2
