"""Every error the API answers with is `application/problem+json` (RFC 9457), from one handler.

jobrunner's errors become HTTP statuses here and only here; routes just raise.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jobrunner.accounts import (
    AccountDisabled,
    InvalidAccount,
    LoginFailed,
    UnknownUser,
    UserExists,
    UserHasJobs,
)
from jobrunner.auth import InvalidToken
from jobrunner.db.errors import SCHEMA_MISSING, TRANSIENT_ERRORS
from jobrunner.errors import (
    DatabaseUnavailable,
    InvalidArguments,
    InvalidQueueControls,
    JobNotFound,
    JobrunnerError,
    JobStateConflict,
    UnknownParent,
    UnknownTask,
)
from jobrunner.graph import InvalidGraph
from jobrunner.queues import GrantNotFound, QueueAccessDenied
from jobrunner.schedules import (
    InvalidSchedule,
    ScheduleExists,
    ScheduleInCode,
    ScheduleNotFound,
)
from jobrunner.search import InvalidFilter

log = structlog.get_logger("jobrunner.api")

PROBLEM_JSON = "application/problem+json"
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class ApiProblem(JobrunnerError):
    """An error the API raises with its status, and headers such as Retry-After."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def too_many(detail: str, retry_after: float) -> ApiProblem:
    return ApiProblem(429, detail, {"Retry-After": str(max(1, math.ceil(retry_after)))})


def problem(
    status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


_STATUS: list[tuple[type[BaseException], int]] = [
    (JobNotFound, 404),
    (JobStateConflict, 409),
    (UserExists, 409),
    (UserHasJobs, 409),
    (UnknownUser, 404),
    (GrantNotFound, 404),
    (ScheduleNotFound, 404),
    (ScheduleExists, 409),
    (ScheduleInCode, 409),
    (AccountDisabled, 403),
    (QueueAccessDenied, 403),
    (InvalidQueueControls, 422),
    (UnknownTask, 422),
    (UnknownParent, 422),  # nothing written: the parents named are not the user's to name
    (InvalidGraph, 422),
    (InvalidFilter, 422),
    (InvalidAccount, 422),
    (LoginFailed, 401),
    (DatabaseUnavailable, 503),
    (TRANSIENT_ERRORS, 503),  # type: ignore[list-item]
]


# Values PostgreSQL refused. Its own message quotes the value and names tables and columns:
# the answer names only the field, taken from the constraint's name: <table>_<field>_check
# for a table's, <field>_check for a column type's (the domains of migration 0021, whose
# errors name no table).
REFUSED_VALUES = (asyncpg.CheckViolationError, asyncpg.DataError, asyncpg.NotNullViolationError)


def _refused(exc: Exception) -> list[dict[str, Any]]:
    column = getattr(exc, "column_name", None)
    constraint = getattr(exc, "constraint_name", None) or ""
    table = getattr(exc, "table_name", None)
    prefix = f"{table}_" if table else ""
    if not column and constraint.endswith("_check") and constraint.startswith(prefix):
        column = constraint.removeprefix(prefix).removesuffix("_check")
    loc = ["body", column] if column else ["body"]
    return [{"loc": loc, "msg": "value refused by the database", "type": "value_error"}]


def _validation_errors(errors: Any) -> list[dict[str, Any]]:
    # Only loc, msg and type: ctx can hold exception objects, and input echoes secrets back.
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


def _database_problem(exc: asyncpg.PostgresError) -> JSONResponse | None:
    """The answer to an error PostgreSQL raised, never with PostgreSQL's own message."""
    if isinstance(exc, REFUSED_VALUES):
        return problem(422, "the request holds a value that cannot be stored", errors=_refused(exc))
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):  # a race, e.g. a deletion
        return problem(409, "the change conflicts with the current data; try again")
    if isinstance(exc, asyncpg.TransactionRollbackError):  # a deadlock PostgreSQL broke
        return problem(409, "the change collided with another; try again")
    if isinstance(exc, SCHEMA_MISSING):
        return problem(
            503,
            "the database is not migrated: run `jobrunner migrate`",
            headers={"Retry-After": "5"},
        )
    return None


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one place an exception becomes an HTTP answer."""
    if isinstance(exc, ApiProblem):
        return problem(exc.status, exc.detail, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, RequestValidationError):
        errors = _validation_errors(exc.errors())
        return problem(422, "the request is not valid", errors=errors)
    if isinstance(exc, InvalidArguments):
        detail = f"invalid arguments for task {exc.task!r}"
        return problem(422, detail, errors=_validation_errors(exc.details))
    if isinstance(exc, InvalidSchedule):
        errors = [{"loc": ["body", exc.field], "msg": exc.message, "type": "value_error"}]
        return problem(422, "the schedule is not valid", errors=errors)
    if isinstance(exc, InvalidToken):
        return problem(401, str(exc), headers=BEARER_CHALLENGE)  # fixed texts, never PyJWT's
    if isinstance(exc, asyncpg.PostgresError) and (answer := _database_problem(exc)):
        return answer
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            headers = {"Retry-After": "1"} if status == 503 else None
            detail = str(exc) if status < 500 else "the database is unavailable; try again"
            return problem(status, detail, headers=headers)
    log.exception("unhandled error", path=request.url.path, exc_info=exc)
    return problem(500, "internal error")


def install(app: FastAPI) -> None:
    for kind in (
        Exception,
        HTTPException,
        RequestValidationError,
        JobrunnerError,
        asyncpg.PostgresError,
        *TRANSIENT_ERRORS,
    ):
        app.add_exception_handler(kind, handle_error)
