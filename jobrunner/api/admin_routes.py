"""/admin/users: an admin disables, enables or deletes an account, or sets its highest priority.

Disabling revokes every session of the account at once and refuses its logins; it is also
how an account registered under JOBRUNNER_REGISTRATION=approval is let in (enable). An
account that owns jobs cannot be deleted (409): its jobs name their owner, so disable it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from jobrunner import accounts
from jobrunner.api.deps import AdminDep, ConnDep
from jobrunner.api.schemas import MaxPriorityUpdate, UserPublic

router = APIRouter(prefix="/admin/users", tags=["admin"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such user"}}
UserName = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{3,64}$")]


@router.get("")
async def list_users(_: AdminDep, conn: ConnDep) -> list[UserPublic]:
    return [UserPublic.of(u) for u in await accounts.list_users(conn)]


@router.post("/{username}/disable", responses=NOT_FOUND)
async def disable_user(username: UserName, _: AdminDep, conn: ConnDep) -> UserPublic:
    """Refuse the account's logins and end its sessions at once."""
    return UserPublic.of(await accounts.set_disabled(conn, username, disabled=True))


@router.post("/{username}/enable", responses=NOT_FOUND)
async def enable_user(username: UserName, _: AdminDep, conn: ConnDep) -> UserPublic:
    """Let a disabled (or approval-awaiting) account log in again."""
    return UserPublic.of(await accounts.set_disabled(conn, username, disabled=False))


@router.put("/{username}/max-priority", responses={**NOT_FOUND, 422: {}})
async def set_max_priority(
    username: UserName, body: MaxPriorityUpdate, _: AdminDep, conn: ConnDep
) -> UserPublic:
    """The highest priority the user may give a job (0 at first; admins give any). The API
    obeys a change within a second."""
    return UserPublic.of(await accounts.set_max_priority(conn, username, body.max_priority))


@router.delete(
    "/{username}",
    status_code=204,
    response_class=Response,
    responses={**NOT_FOUND, 409: {"description": "The user owns jobs: disable instead"}},
)
async def delete_user(username: UserName, _: AdminDep, conn: ConnDep) -> None:
    """Delete an account that owns no jobs, with its sessions."""
    await accounts.delete_user(conn, username)
