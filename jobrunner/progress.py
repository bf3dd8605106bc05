"""A running handler's progress: how far it got, in its own words.

    @task(name="resize")
    async def resize(paths: list[str], job: JobContext) -> None:
        for n, path in enumerate(paths, 1):
            ...
            job.progress(n / len(paths), f"resized {n} of {len(paths)}", data={"last": path})

`JobContext.progress` checks a report here (`checked`: a fraction from 0 to 1, a message of
at most MESSAGE_MAX_CHARS, data a JSON object of at most DATA_MAX_BYTES) and raises
InvalidProgress on anything else, at the handler's own line. It does no I/O: the report goes
on the worker's `ProgressBoard`, where a later report of the same attempt replaces it, and
jobrunner.worker.progress writes what is on the board about once a second, in one statement
for all of the worker's jobs. So a handler may report in a tight loop; only the last report
of each second reaches the database. An attempt whose progress was written (it ran past a
round) has its last report written before its outcome; one that ends before its first round
stores none: nobody saw it run, and writing it would double the writes of every short job.

A new attempt starts with no progress (the claim clears it): what a failed attempt had done
is not what the next one has. Until then a retrying job keeps the failed attempt's progress.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from jobrunner.errors import InvalidProgress

MESSAGE_MAX_CHARS = 200
DATA_MAX_BYTES = 2048


class ProgressReport(NamedTuple):
    """One report of one attempt, checked and encoded, waiting to be written. A named tuple:
    made on every call, and it builds in a third of a frozen dataclass's time (timeit)."""

    job_id: UUID
    attempt: int  # fences the write: a later attempt's row is never touched
    fraction: float
    message: str | None
    data_json: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's progress as stored: what the API, the event stream and the dashboard show."""

    fraction: float
    message: str | None
    data: dict[str, Any] | None
    at: datetime  # written (database time)

    @property
    def percent(self) -> int:
        return math.floor(self.fraction * 100)


def progress_of(row: Any) -> Progress | None:
    """A row's progress, or None: never reported, or not read (listings leave it out)."""
    try:
        at = row["progress_at"]
    except KeyError:
        return None
    if at is None:
        return None
    return Progress(row["progress"], row["progress_message"], row["progress_data"], at)


def checked(
    job_id: UUID,
    attempt: int,
    fraction: float,
    message: str | None,
    data: Mapping[str, Any] | None,
) -> ProgressReport:
    """The report, or InvalidProgress saying what is wrong with it."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise InvalidProgress(f"progress must be a number from 0 to 1, not {fraction!r}")
    if not 0.0 <= fraction <= 1.0:  # NaN fails both comparisons
        raise InvalidProgress(f"progress must be from 0 to 1, not {fraction!r}")
    if message is not None:
        _check_message(message)
    return ProgressReport(job_id, attempt, float(fraction), message, _encoded(data))


def _check_message(message: object) -> None:
    if not isinstance(message, str):
        raise InvalidProgress(f"a progress message must be a string, not {type(message).__name__}")
    if len(message) > MESSAGE_MAX_CHARS:
        raise InvalidProgress(
            f"a progress message may hold {MESSAGE_MAX_CHARS} characters, not {len(message)}"
        )
    # PostgreSQL text holds neither NUL nor lone surrogates; one bad report must not make the
    # statement that writes every job's progress fail.
    if "\x00" in message:
        raise InvalidProgress("a progress message may not contain NUL characters")
    try:
        message.encode()
    except UnicodeEncodeError as exc:
        raise InvalidProgress(f"a progress message must be valid text: {exc.reason}") from None


def _encoded(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InvalidProgress(f"progress data must be a JSON object, not {type(data).__name__}")
    try:
        text = json.dumps(dict(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode())
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise InvalidProgress(f"progress data must be JSON: {exc}") from None
    if size > DATA_MAX_BYTES:
        raise InvalidProgress(f"progress data may take {DATA_MAX_BYTES} bytes as JSON, not {size}")
    if "\\u0000" in text:  # jsonb refuses it
        raise InvalidProgress("progress data may not contain NUL characters")
    return text


class ProgressBoard:
    """The latest unwritten report of each attempt a worker runs.

    Handlers post from the event loop or, for a plain `def` handler, from a thread; the
    writer takes from the event loop. A lock makes each post and take whole (uncontended,
    tens of nanoseconds).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[UUID, ProgressReport] = {}

    def __bool__(self) -> bool:
        return bool(self._latest)

    def post(self, report: ProgressReport) -> None:
        with self._lock:
            self._latest[report.job_id] = report

    def take(self, job_ids: Collection[UUID] | None = None) -> list[ProgressReport]:
        """Remove and return every report, or those of `job_ids`."""
        with self._lock:
            if job_ids is None:
                taken, self._latest = list(self._latest.values()), {}
                return taken
            return [r for i in job_ids if (r := self._latest.pop(i, None)) is not None]

    def put_back(self, reports: list[ProgressReport]) -> None:
        """Reports not written this time; one posted since is newer and stays."""
        with self._lock:
            for report in reports:
                self._latest.setdefault(report.job_id, report)
