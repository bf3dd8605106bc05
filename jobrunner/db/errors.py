"""Which database errors mean "the server is away, try again" rather than a bug."""

from __future__ import annotations

import asyncpg

# Connection lost, server shutting down or starting up, too many connections, or a socket
# error: all pass once the database is back, so callers retry with backoff.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.ConnectionFailureError,
    # A connection broken mid-operation by a server restart can fail its pool reset with
    # "cannot switch to state ...; another operation is in progress". It is not a bug of
    # ours: the pool drops that connection and the next acquire makes a fresh one.
    asyncpg.InternalClientError,
)


# Anything the database can answer with; callers that must keep going (loops) catch these.
DB_ERRORS: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, asyncpg.PostgresError)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


# What an unmigrated database answers (a missing schema, table, function, type or column):
# an operator's step is missing, not a bug. The API answers 503, the CLI one line, each
# saying to run `jobrunner migrate`.
SCHEMA_MISSING: tuple[type[Exception], ...] = (
    asyncpg.InvalidSchemaNameError,
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedFunctionError,
    asyncpg.UndefinedObjectError,
    asyncpg.UndefinedColumnError,
)
