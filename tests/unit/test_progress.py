"""Progress reports (jobrunner.progress) checked at the handler's call, and the board that
coalesces them: no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from jobrunner import JobContext
from jobrunner.cli.console import progress_text
from jobrunner.errors import InvalidProgress
from jobrunner.progress import DATA_MAX_BYTES, MESSAGE_MAX_CHARS, Progress, ProgressBoard


def _context() -> JobContext:
    return JobContext(uuid4(), "t", attempt=2, max_attempts=3, queue="q")


@pytest.mark.parametrize(
    ("fraction", "message", "data", "says"),
    [
        (1.5, None, None, "from 0 to 1"),
        (-0.1, None, None, "from 0 to 1"),
        (float("nan"), None, None, "from 0 to 1"),
        ("0.5", None, None, "a number"),
        (True, None, None, "a number"),
        (0.5, "x" * (MESSAGE_MAX_CHARS + 1), None, f"{MESSAGE_MAX_CHARS} characters"),
        (0.5, 42, None, "must be a string"),
        (0.5, "nul\x00", None, "NUL"),
        (0.5, "lone \udc80", None, "valid text"),
        (0.5, None, ["not", "an", "object"], "JSON object"),
        (0.5, None, {"when": datetime.now(UTC)}, "must be JSON"),
        (0.5, None, {"x": float("inf")}, "must be JSON"),
        (0.5, None, {"blob": "x" * DATA_MAX_BYTES}, f"{DATA_MAX_BYTES} bytes"),
        (0.5, None, {"nul": "\x00"}, "NUL"),
    ],
)
def test_a_bad_report_is_refused_at_the_call(
    fraction: Any, message: Any, data: Any, says: str
) -> None:
    job = _context()
    with pytest.raises(InvalidProgress, match=says):
        job.progress(fraction, message, data=data)
    assert job.last_progress is None
    assert isinstance(InvalidProgress("x"), ValueError)


def test_a_good_report_is_kept_and_handed_on() -> None:
    board = ProgressBoard()
    job = JobContext(uuid4(), "t", attempt=2, max_attempts=3, queue="q", report_to=board.join)
    job.progress(1, "done", data={"rows": 3, "name": "é"})
    assert job.last_progress is not None
    assert (job.last_progress.fraction, job.last_progress.attempt) == (1.0, 2)
    assert job.last_progress.data_json == '{"rows":3,"name":"é"}'
    assert board.take() == [job.last_progress]
    assert board.take() == []  # sent: not taken twice


@pytest.mark.parametrize(
    ("fraction", "message"),
    [(0.25, "plain"), (0.25, None), (1, "an int"), (0.5, "naïve"), (0.5, "")],
)
def test_the_quick_check_and_the_full_one_agree(fraction: float, message: str | None) -> None:
    job = _context()
    job.progress(fraction, message)
    assert job.raw_progress == (float(fraction), message, None)
    assert type(job.raw_progress[0]) is float


def test_the_board_takes_each_attempts_latest_once_until_put_back() -> None:
    board = ProgressBoard()
    one = JobContext(uuid4(), "t", attempt=1, max_attempts=3, queue="q", report_to=board.join)
    two = JobContext(uuid4(), "t", attempt=1, max_attempts=3, queue="q", report_to=board.join)
    for step in range(100):
        one.progress(step / 100)
    two.progress(0.1)
    taken = board.take([one.id])
    assert [r.fraction for r in taken] == [0.99] and board.take([one.id]) == []
    board.put_back(taken)  # not written: taken again
    assert [r.fraction for r in board.take([one.id])] == [0.99]
    one.progress(1.0)
    board.put_back(taken)  # the newer report is the one taken
    assert sorted(r.fraction for r in board.take()) == [0.1, 1.0]
    board.leave([one.id, two.id])
    assert not board


def test_progress_reads_as_a_percentage_with_its_words() -> None:
    at = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    shown = progress_text(Progress(0.427, "resized 42 of 100", {"last": "a.png"}, at))
    assert shown.startswith('42%  resized 42 of 100  {"last": "a.png"}  (at ')
