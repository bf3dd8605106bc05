"""When the fetch loop claims again at once (jobrunner.worker.pacing.Wakeup.after_claim):
no database, the claim's answer alone."""

from __future__ import annotations

from uuid import uuid4

import pytest

from jobrunner.models import ClaimedJob
from jobrunner.worker.pacing import Wakeup


def _job(priority: int = 0, key: str = "", queue: str = "default") -> ClaimedJob:
    return ClaimedJob(uuid4(), queue, "t", {}, 1, 3, None, priority=priority, fairness_key=key)


@pytest.mark.parametrize(
    ("claimed", "asked", "again"),
    [
        ([_job(), _job()], 2, True),  # full: more may wait
        ([], 20, False),  # empty: nothing now
        ([_job()], 20, False),  # a trickle's one job: its lane ran dry
        ([_job(key="alice"), _job(key="alice")], 20, False),
        ([_job(key="alice"), _job(key="bob")], 20, True),  # alice ran dry, bob's share may not
        ([_job(priority=5), _job(priority=0)], 20, True),
        ([_job(queue="a"), _job(queue="b")], 20, True),
    ],
)
def test_claim_again_only_when_a_batch_may_have_left_jobs(
    claimed: list[ClaimedJob], asked: int, again: bool
) -> None:
    wakeup = Wakeup(["default"])
    wakeup.more_waiting = not again
    wakeup.after_claim(claimed, asked)
    assert wakeup.more_waiting is again
