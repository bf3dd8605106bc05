"""Dependencies routes declare, as short aliases: SettingsDep, ConnDep, PrincipalDep, AdminDep,
and for submitting SubmitterDep and SubmitContextDep.

All are `async def`: FastAPI runs a plain `def` dependency on a worker thread, and the hand-off
cost more than the rest of a small request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from jobrunner import accounts
from jobrunner.accounts import Principal
from jobrunner.api.problems import ApiProblem
from jobrunner.api.submit import SubmitContext, Submitter, take_submission
from jobrunner.auth import TokenCodec
from jobrunner.db.pool import Conn, Pool
from jobrunner.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> Pool:
    pool: Pool = request.app.state.pool
    return pool


async def get_codec(request: Request) -> TokenCodec:
    codec: TokenCodec = request.app.state.codec
    return codec


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[Pool, Depends(get_pool)]
CodecDep = Annotated[TokenCodec, Depends(get_codec)]


async def get_conn(pool: PoolDep) -> AsyncIterator[Conn]:
    async with pool.acquire() as conn:
        yield conn


# scope="function": the connection goes back to the pool when the route returns, before a
# (possibly endless) streaming body is sent.
ConnDep = Annotated[Conn, Depends(get_conn, scope="function")]

bearer = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


async def get_principal(
    conn: ConnDep, codec: CodecDep, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    if not token:
        raise ApiProblem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return await accounts.authenticate(conn, codec, token)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def get_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_admin:
        raise ApiProblem(403, "this needs an admin account")
    return principal


AdminDep = Annotated[Principal, Depends(get_admin)]


async def get_submit_context(request: Request) -> SubmitContext:
    context: SubmitContext = request.app.state.submit_context
    return context


SubmitContextDep = Annotated[SubmitContext, Depends(get_submit_context)]


async def get_submitter(
    context: SubmitContextDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(bearer)],
) -> Submitter:
    """The caller, who has also spent a submission from their rate bucket."""
    if not token:
        raise ApiProblem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
    return await take_submission(context, settings, token)


SubmitterDep = Annotated[Submitter, Depends(get_submitter)]
