"""What the parser turns flag values into (argparse `type=` callables).

Apart from the commands that use them, so that declaring the parser imports none of those
commands' modules (jobrunner.commands).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from typing import Any

from jobrunner.models import Rate

NONE = "none"  # what a limit flag takes to remove the limit
_RATE = re.compile(r"(\d+)/(s|sec|second|m|min|minute)")


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, e.g. {"data": [1, 2, 3]}')
    return value


def limit(text: str) -> int | None:
    """A limit flag's value: a whole number, or `none` to remove the limit."""
    if text.lower() == NONE:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or {NONE!r}: {text!r}") from None


def rate(text: str) -> Rate | None:
    """`--rate 10/second`, `600/minute` (or /s, /min), or `none`."""
    if text.lower() == NONE:
        return None
    found = _RATE.fullmatch(text.strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError(f"a rate is N/second, N/minute or {NONE!r}: {text!r}")
    return Rate(int(found[1]), "second" if found[2].startswith("s") else "minute")


def aware(text: str) -> datetime:
    """An ISO time that names its timezone."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("give a timezone, e.g. 2026-01-31T00:00:00+00:00")
    return when
