"""Pure logic: no database."""

from __future__ import annotations

import datetime
import random
import time
import uuid
from pathlib import Path

import pytest

from jobrunner.auth import InvalidToken, TokenCodec
from jobrunner.backoff import retry_delay
from jobrunner.db.ids import COUNTER_BITS, time_ordered_ids
from jobrunner.db.queries import QUERIES, CopyTarget, load_queries
from jobrunner.errors import ConfigError, InvalidArguments
from jobrunner.registry import get_task
from jobrunner.settings import Settings
from jobrunner.tasks import Task, task


def test_backoff_doubles_with_jitter_and_respects_the_cap() -> None:
    rand = random.Random(1)
    for attempt in range(1, 30):
        ceiling = min(60.0, 2.0 ** (attempt - 1))
        delay = retry_delay(attempt, base=1.0, cap=60.0, rand=rand)
        assert ceiling / 2 <= delay <= ceiling
    with pytest.raises(ValueError):
        retry_delay(0, base=1.0, cap=60.0)


def test_weak_or_missing_jwt_secret_is_refused_outside_dev_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not set"):
        Settings(jwt_secret=None, dev_mode=False).require_jwt_secret()
    with pytest.raises(ConfigError, match="too weak"):
        Settings(jwt_secret="short", dev_mode=False).require_jwt_secret()
    strong = "x" * 40
    assert Settings(jwt_secret=strong).require_jwt_secret() == strong
    dev = Settings(dev_mode=True, data_dir=tmp_path)
    generated = dev.require_jwt_secret()
    assert len(generated) >= 32 and dev.require_jwt_secret() == generated


def test_settings_read_comma_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBRUNNER_QUEUES", "default, emails")
    monkeypatch.setenv("JOBRUNNER_TASKS", "myapp.tasks")
    settings = Settings()
    assert settings.queues == ["default", "emails"]
    assert settings.tasks == ["myapp.tasks"]
    with pytest.raises(ValueError):
        Settings(lease_seconds=1.0, heartbeat_interval=2.0)


def test_task_arguments_are_validated_from_type_hints() -> None:
    add = get_task("test.add")
    assert add.validate_args({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(InvalidArguments):
        add.validate_args({"a": 1.5, "b": 2})
    with pytest.raises(InvalidArguments):
        get_task("square_sum").validate_args({"data": [float("nan")]})
    assert add.args_schema()["required"] == ["a", "b"]


@pytest.mark.parametrize(
    "args",
    [{"a": "42", "b": 1}, {"a": True, "b": 1}, {"a": 1.0, "b": 1}, {"a": None, "b": 1}],
)
def test_arguments_are_checked_strictly_as_json_types(args: dict[str, object]) -> None:
    with pytest.raises(InvalidArguments, match=r"test\.add"):
        get_task("test.add").validate_args(args)
    with pytest.raises(InvalidArguments):
        get_task("test.add").validate_many([{"a": 1, "b": 1}, args])


def test_arguments_are_kept_as_sent() -> None:
    numbers = get_task("square_sum")
    assert numbers.validate_args({"data": [1, 2.5, 3]}) == {"data": [1, 2.5, 3]}  # no 1.0
    assert numbers.validate_many([{"data": [1]}, {"data": [2]}]) == [{"data": [1]}, {"data": [2]}]
    assert get_task("echo").validate_args({"message": True}) == {"message": True}
    assert get_task("sleep").validate_args({}) == {}  # defaults apply when it runs


def test_values_with_a_string_form_come_as_the_string_or_the_object() -> None:
    when = get_task("test.on_day")
    day, ident = datetime.date(2024, 2, 29), uuid.UUID(int=7)
    as_json = {"day": "2024-02-29", "ref": str(ident)}
    assert when.validate_args(as_json) == as_json
    assert when.validate_args({"day": day, "ref": ident}) == as_json
    with pytest.raises(InvalidArguments):
        when.validate_args({"day": "29/02/2024", "ref": str(ident)})
    assert when.call_kwargs(as_json) == {"day": day, "ref": ident}


def test_reserved_and_unsupported_argument_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="reserved"):

        @task(name="test.bad_reserved")
        async def bad(priority: int) -> None: ...

    with pytest.raises(ConfigError, match="named arguments"):

        @task(name="test.bad_varargs")
        async def worse(*values: int) -> None: ...

    with pytest.raises(ConfigError, match="cron"):
        Task(name="t", func=lambda: None, cron="not a cron")


def test_builtin_tasks_compute_what_the_readme_says() -> None:
    assert get_task("square_sum").func(data=[1, 2, 3]) == 14
    assert get_task("cube_sum").func(data=[1, 2, 3]) == 36


def test_named_queries_load_from_one_file() -> None:
    assert load_queries("-- name: a\nSELECT 1;\n\n-- name: b\n-- doc\nSELECT 2;") == {
        "a": "SELECT 1;",
        "b": "-- doc\nSELECT 2;",
    }
    assert "job_claim" in QUERIES and "job_record_outcomes" in QUERIES


def test_a_heading_between_statements_belongs_to_neither() -> None:
    text = "-- name: a\nSELECT 1;\n\n-- ===== Next =====\n\n-- name: b\nSELECT 2;"
    assert load_queries(text) == {"a": "SELECT 1;", "b": "SELECT 2;"}


def test_only_whole_comment_lines_after_a_statement_are_dropped() -> None:
    text = (
        "-- name: a\n-- doc\nSELECT 1 -- kept: on the statement's line\n  -- indented\n\n"
        "\t-- after a blank line\n   \n-- name: b\nSELECT '--';\n-- name: c\n-- only a comment\n"
    )
    assert load_queries(text) == {
        "a": "-- doc\nSELECT 1 -- kept: on the statement's line",
        "b": "SELECT '--';",
        "c": "",
    }


def test_a_cached_access_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = TokenCodec(secret="s" * 48, issuer="i", audience="a", access_ttl=60, refresh_ttl=600)
    token = codec.encode("access", sub="alice", sid=uuid.uuid4())
    assert codec.decode(token, "access").sub == "alice"
    assert codec.decode(token, "access").sub == "alice"  # from the cache this time
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken):
        codec.decode(token, "access")
    with pytest.raises(InvalidToken):  # refresh tokens are never taken from the cache
        codec.decode(token, "refresh")


def test_bulk_ids_are_version_7_ascending_and_carry_on_into_the_next_millisecond() -> None:
    per_millisecond = 1 << COUNTER_BITS
    ids = time_ordered_ids(1_700_000_000_123, per_millisecond + 5)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = [i.int >> 80 for i in ids]
    assert millis[0] == millis[per_millisecond - 1] == 1_700_000_000_123
    assert millis[per_millisecond] == millis[-1] == 1_700_000_000_124
    # The last 56 bits are random: two calls for the same millisecond don't repeat an id.
    assert not set(time_ordered_ids(1_700_000_000_123, 1000)) & set(ids)
    assert time_ordered_ids(1_700_000_000_123, 0) == []


def test_a_copy_statement_gives_its_table_and_columns() -> None:
    target = CopyTarget.parse("-- what it is\nCOPY s.t (a, b,\n  c) FROM STDIN (FORMAT binary);")
    assert (target.schema, target.table, target.columns) == ("s", "t", ("a", "b", "c"))
    for not_binary_copy in ("COPY s.t (a) FROM STDIN", "COPY s.t (a) TO STDOUT (FORMAT binary)"):
        with pytest.raises(ValueError):
            CopyTarget.parse(not_binary_copy)


def test_a_statement_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="named twice"):
        load_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
