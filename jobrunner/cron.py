"""When a schedule fires next: a cron expression read on a time zone's wall clock. Pure.

The expression walks the wall clock (naive local times), and each wall-clock tick becomes an
instant through zoneinfo with fold=0 (PEP 495), so daylight saving time reads as people
expect:

- a tick that does not exist (02:30 on the night clocks spring forward from 02:00 to 03:00)
  maps to the instant the same distance past the gap's start, 03:30 the new time, and fires
  once there;
- a tick that happens twice (02:30 on the night clocks fall back from 03:00 to 02:00) fires
  once, at its first occurrence: the second pass of that hour finds the tick in the past and
  moves on.

The caller passes `after` (the database's now()); nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Ticks looked at before giving up: a wall clock repeats at most an hour, which is 60 ticks of
# the most frequent five-field expression; an expression that never fires ("30 4 31 2 *")
# makes croniter itself give up.
MAX_TICKS_TRIED = 200


class InvalidCron(ValueError):
    """A cron expression or time zone jobrunner cannot schedule by."""


def check_cron(expression: str) -> str:
    """`expression` if croniter reads it as five fields (minute hour day month weekday) or
    as an alias (@hourly, @daily, @weekly, @monthly, @yearly). Six fields (seconds) are
    refused: a maintenance tick is about a second, too coarse to keep them."""
    # croniter (with dateutil) is imported by the first cron expression, not with this
    # module: it was ~9 ms of every worker's start to its first job (tasks imports us).
    from croniter import croniter

    fields = len(expression.split())
    alias = expression.startswith("@") and fields == 1
    if not (fields == 5 or alias) or not croniter.is_valid(expression):
        raise InvalidCron(
            f"{expression!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'"
        )
    return expression


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (Europe/Berlin, UTC, America/New_York)."""
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCron(f"{name!r} is not an IANA time zone, e.g. 'Europe/Berlin'") from None


def next_tick(expression: str, timezone: str, after: datetime) -> datetime:
    """The first tick of `expression` on `timezone`'s wall clock strictly after the instant
    `after` (timezone-aware), as an aware UTC datetime."""
    if after.tzinfo is None:
        raise ValueError("after must carry a timezone")
    from croniter import croniter  # see check_cron

    tz = zone(timezone)
    wall = after.astimezone(tz).replace(tzinfo=None)
    ticks = croniter(check_cron(expression), wall)
    for _ in range(MAX_TICKS_TRIED):
        local: datetime = ticks.get_next(datetime)
        instant = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if instant > after:
            return instant
    raise InvalidCron(f"{expression!r} found no tick after {after.isoformat()}")
