"""The rules on a job's columns hold in the database, whoever writes the row (psql included):
the one-column rules as column types (migration 0021's domains, checked where a value is
written), the cross-column ones as table constraints (checked on every row written). A
refusal names the field, and the API answers it with that field and none of PostgreSQL's
words."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from starlette.requests import Request

from jobrunner.api import problems
from jobrunner.db.pool import Pool

INSERT = "INSERT INTO jobrunner.jobs (task, {column}) VALUES ('noop', $1::{cast})"

# column, a value its rule refuses, the SQL type to send it as, the field the refusal names
REFUSED: list[tuple[str, Any, str, str]] = [
    ("queue", "", "text", "queue"),
    ("queue", "q" * 129, "text", "queue"),
    ("priority", 101, "int", "priority"),
    ("priority", -101, "int", "priority"),
    ("attempt", -1, "int", "attempt"),
    ("max_attempts", 0, "int", "max_attempts"),
    ("max_attempts", 1001, "int", "max_attempts"),
    ("timeout", timedelta(0), "interval", "timeout"),
    ("backoff_base", timedelta(seconds=-1), "interval", "backoff"),
    ("callback_url", "h" * 2049, "text", "callback_url"),
    ("dedup_key", "", "text", "dedup_key"),
    ("errors", "{}", "jsonb", "errors"),
    ("fairness_key", "k" * 257, "text", "fairness_key"),
    ("on_parent_failure", "maybe", "text", "on_parent_failure"),
    ("pending_parents", -1, "int", "pending_parents"),
    ("tags", [str(n) for n in range(17)], "text[]", "tags"),
    ("progress", 1.5, "float8", "progress"),
]


@pytest.mark.parametrize(("column", "value", "cast", "field"), REFUSED)
async def test_a_one_column_rule_refuses_its_value_and_names_the_field(
    pool: Pool, column: str, value: Any, cast: str, field: str
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(INSERT.format(column=column, cast=cast), value)
    request = Request({"type": "http", "method": "POST", "path": "/jobs", "headers": []})
    answer = await problems.handle_error(request, refused.value)
    body = bytes(answer.body).decode()
    assert answer.status_code == 422 and f'"loc":["body","{field}"]' in body, body
    assert "violates" not in body


async def test_a_rule_is_checked_where_its_column_is_written(pool: Pool) -> None:
    """An UPDATE that writes a column checks its type's rule; one that leaves it alone does
    not need to (the point of the domains)."""
    async with pool.acquire() as conn:
        job_id = await conn.fetchval(
            "INSERT INTO jobrunner.jobs (task) VALUES ('noop') RETURNING id"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE jobrunner.jobs SET priority = 500 WHERE id = $1", job_id)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE jobrunner.jobs SET errors = '{}' WHERE id = $1", job_id)
        await conn.execute("UPDATE jobrunner.jobs SET run_at = now() WHERE id = $1", job_id)


@pytest.mark.parametrize(
    ("columns", "values", "constraint"),
    [
        ("attempt, max_attempts", "4, 3", "attempts_within_limit"),
        ("backoff_base, backoff_cap", "'10 s', '1 s'", "backoff_cap_not_below_base"),
        ("state", "'succeeded'", "finished_exactly_when_terminal"),
        ("state", "'running'", "running_has_worker_and_lease"),
        ("state, pending_parents", "'waiting', 0", "waiting_for_parents"),
        ("result", "'1'", "result_only_when_succeeded"),
        ("progress", "0.5", "progress_reported"),
    ],
)
async def test_the_cross_column_rules_stay_table_constraints(
    pool: Pool, columns: str, values: str, constraint: str
) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(
                f"INSERT INTO jobrunner.jobs (task, {columns}) VALUES ('noop', {values})"
            )
    assert refused.value.constraint_name == constraint


async def test_archived_rows_share_the_column_types(pool: Pool) -> None:
    """job_history's columns are jobs' types, so all_jobs is a plain union: a read by id
    probes each table's primary key, no branch is converted and sorted whole."""
    async with pool.acquire() as conn:
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN (COSTS OFF) SELECT * FROM jobrunner.all_jobs ORDER BY id DESC LIMIT 5"
            )
        )
    assert "Subquery Scan" not in plan and "Merge Append" in plan, plan
