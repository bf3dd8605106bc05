"""Queue access and controls as pure values: who may submit where, and bounds on limits."""

from __future__ import annotations

import pytest

from jobrunner.errors import InvalidQueueControls
from jobrunner.models import KEEP, AccessRules, QueueChanges, Rate, UserAccess
from jobrunner.queues import RESERVED_QUEUE, refusal

RULES = AccessRules(
    open_queues=frozenset({"default", RESERVED_QUEUE}),
    grants=frozenset({("reports", "ada")}),
    admins=frozenset({"root"}),
    max_priority={"ada": 5},
)


@pytest.mark.parametrize(
    ("user", "queue", "priority", "refused"),
    [
        ("ada", "default", None, None),
        ("ada", "reports", 5, None),
        ("ada", "reports", 6, "above the highest you may give, 5"),
        ("bob", "reports", None, "not open to you"),
        ("bob", "default", 1, "above the highest you may give, 0"),
        ("bob", "default", -100, None),
        ("bob", RESERVED_QUEUE, None, "reserved"),  # even though open to all
        ("root", RESERVED_QUEUE, 100, None),
        ("root", "anything", 100, None),
    ],
)
def test_refusal_follows_the_rules(
    user: str, queue: str, priority: int | None, refused: str | None
) -> None:
    reason = refusal(queue, priority, RULES.lookup(user, queue))
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason and repr(queue) in reason


def test_an_unknown_user_is_a_plain_user() -> None:
    assert RULES.lookup("nobody", "reports") == UserAccess(admin=False, max_priority=0, open=False)


@pytest.mark.parametrize(
    "changes",
    [
        {"max_running": -1},
        {"max_running_per_owner": 0},
        {"max_running": 1_000_001},
        {"rate": Rate(0, "second")},
    ],
)
def test_queue_changes_out_of_bounds_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidQueueControls):
        QueueChanges(**changes)  # type: ignore[arg-type]


def test_queue_changes_keep_what_is_not_given() -> None:
    changes = QueueChanges(max_running=None, rate=Rate(10, "minute"))
    assert changes.max_running is None and changes.max_running_per_owner is KEEP
    assert isinstance(changes.rate, Rate) and changes.rate.seconds == 60.0
    assert changes.paused is None and changes.open_to_all is None
