"""A running handler's progress: how far it got, in its own words.

    @task(name="resize")
    async def resize(paths: list[str], job: JobContext) -> None:
        for n, path in enumerate(paths, 1):
            ...
            job.progress(n / len(paths), f"resized {n} of {len(paths)}", data={"last": path})

`JobContext.progress` checks a report here (`checked`: a fraction from 0 to 1, a message of
at most MESSAGE_MAX_CHARS, data a JSON object of at most DATA_MAX_BYTES) and raises
InvalidProgress on anything else, at the handler's own line. It does no I/O and takes no
lock: the report replaces the attempt's previous one on its JobContext, and the attempt's
first report puts the context on the worker's `ProgressBoard`. jobrunner.worker.progress
reads every context on the board about once a second and writes the reports it has not
written yet, in one statement for all of the worker's jobs. So a handler may report in a
tight loop (about 0.2 µs a call for a float and a short plain message, the common case);
only the last report of each second reaches the database. An attempt whose progress was
written (it ran past a round) has its last report written before its outcome; one that ends
before its first round stores none: nobody saw it run, and writing it would double the
writes of every short job.

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
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from jobrunner.errors import InvalidProgress

MESSAGE_MAX_CHARS = 200
DATA_MAX_BYTES = 2048


# What a handler's call leaves on its JobContext: fraction, message, data as JSON text. A
# plain tuple: one is made on every call, in a tenth of a named tuple's time (timeit).
RawReport = tuple[float, str | None, str | None]


class ProgressReport(NamedTuple):
    """One report of one attempt, checked and encoded, as the writer sends it. Built from a
    context's RawReport once per round, never per call."""

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


def checked(fraction: float, message: str | None, data: Mapping[str, Any] | None) -> RawReport:
    """The report, or InvalidProgress saying what is wrong with it."""
    # The common call (a float and a short plain message) is settled by this one test.
    if (
        type(fraction) is float
        and 0.0 <= fraction <= 1.0
        and data is None
        and (
            message is None
            or (
                type(message) is str
                and len(message) <= MESSAGE_MAX_CHARS
                and message.isascii()  # so no lone surrogate
                and "\x00" not in message
            )
        )
    ):
        return (fraction, message, None)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise InvalidProgress(f"progress must be a number from 0 to 1, not {fraction!r}")
    if not 0.0 <= fraction <= 1.0:  # NaN fails both comparisons
        raise InvalidProgress(f"progress must be from 0 to 1, not {fraction!r}")
    if message is not None:
        _check_message(message)
    return (float(fraction), message, _encoded(data))


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


class Reporting(Protocol):
    """What the board reads of a reporting attempt (a JobContext)."""

    @property
    def id(self) -> UUID: ...

    @property
    def attempt(self) -> int: ...

    @property
    def raw_progress(self) -> RawReport | None: ...


class ProgressBoard:
    """The attempts of a worker that reported, and which of their reports were written.

    An attempt joins at its first report (`join`, from the event loop or, for a plain `def`
    handler, from a thread: the lock makes it whole) and leaves (`leave`) once its last
    report was written before its outcome, or when the database said it no longer holds
    its row. Later reports only replace the context's raw report: no lock, no call.
    A report is "sent" once taken; `put_back` forgets that, so the next round takes it again
    unless a newer one replaced it (then that one is taken).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._joined: dict[UUID, Reporting] = {}
        self._sent: dict[UUID, RawReport] = {}  # compared by identity: each call makes one

    def __bool__(self) -> bool:
        return bool(self._joined)

    def join(self, attempt: Reporting) -> None:
        with self._lock:
            self._joined[attempt.id] = attempt

    def take(self, job_ids: Collection[UUID] | None = None) -> list[ProgressReport]:
        """The reports not sent yet, of every attempt or of `job_ids`; they count as sent
        from now on (see put_back)."""
        with self._lock:
            if job_ids is None:
                attempts = list(self._joined.values())
            else:
                attempts = [a for i in job_ids if (a := self._joined.get(i)) is not None]
            taken = []
            for attempt in attempts:
                raw = attempt.raw_progress
                if raw is not None and self._sent.get(attempt.id) is not raw:
                    self._sent[attempt.id] = raw
                    taken.append(ProgressReport(attempt.id, attempt.attempt, *raw))
            return taken

    def put_back(self, reports: Collection[ProgressReport]) -> None:
        """Reports not written this time: the next round takes them (or newer ones)."""
        with self._lock:
            for report in reports:
                self._sent.pop(report.job_id, None)

    def leave(self, job_ids: Collection[UUID]) -> None:
        """Attempts whose rows their worker no longer holds: nothing of theirs is written."""
        with self._lock:
            for job_id in job_ids:
                self._joined.pop(job_id, None)
                self._sent.pop(job_id, None)
