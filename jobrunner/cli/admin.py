"""`jobrunner users create|list|disable|enable|delete|max-priority` and `jobrunner doctor`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import secrets
import subprocess
import sys

from jobrunner.cli import console, doctor
from jobrunner.cli.common import database, out, settings_from
from jobrunner.cli.locate import Location
from jobrunner.db.pool import Conn, connect
from jobrunner.errors import ConfigError
from jobrunner.settings import Settings

# ----- users ----------------------------------------------------------------------------


def _new_password(given: str | None) -> tuple[str, bool]:
    """The password to set, and whether to print it (it was generated)."""
    if given:
        return given, False
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise ConfigError("the passwords differ")
        if not first:
            raise ConfigError("an empty password is not allowed")
        return first, False
    return secrets.token_urlsafe(12), True


async def _users(dsn: str, args: argparse.Namespace) -> int:
    from jobrunner import accounts

    conn: Conn = await connect(dsn, role="cli")
    try:
        if args.users_command == "create":
            password, show = _new_password(args.password)
            user = await accounts.create_user(
                conn, username=args.name, password=password, admin=args.admin
            )
            out(f"created {'admin' if args.admin else 'user'} {user.username}")
            if show:
                out(f"password {password}  (shown this once)")
            return 0
        if args.users_command in ("disable", "enable"):
            disabled = args.users_command == "disable"
            await accounts.set_disabled(conn, args.name, disabled=disabled)
            out(f"{args.users_command}d {args.name}")
            return 0
        if args.users_command == "delete":
            await accounts.delete_user(conn, args.name)
            out(f"deleted {args.name}")
            return 0
        if args.users_command == "max-priority":
            user = await accounts.set_max_priority(conn, args.name, args.max_priority)
            out(f"{user.username} may give priorities up to {user.max_priority}")
            return 0
        users = await accounts.list_users(conn)
        out(
            console.table(
                ["USERNAME", "ROLE", "CREATED", "DISABLED"],
                [
                    [
                        u.username,
                        u.role,
                        f"{u.created_at:%Y-%m-%d %H:%M}",
                        "yes" if u.disabled else "",
                    ]
                    for u in users
                ],
            )
        )
        return 0
    finally:
        await conn.close()


def cmd_users(args: argparse.Namespace) -> int:
    with database(settings_from({})) as db:
        return asyncio.run(_users(db.dsn, args))


# ----- doctor ---------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    settings = settings_from({})
    where, located = doctor.check_location(settings)
    if where is not None:  # the dev-mode secret of a `jobrunner up` is kept beside its data
        settings = settings.model_copy(update={"data_dir": where.data_dir})
    checks = [*doctor.check_settings(settings), located]
    for check in checks:
        _show(check)
    if where is not None:
        checks += _database_checks(settings, where)
    healthy = all(c.status != "fail" for c in checks)
    out("all good" if healthy else "some checks failed")
    return 0 if healthy else 1


def _database_checks(settings: Settings, where: Location) -> list[doctor.Check]:
    found = []
    try:
        with database(settings, location=where, migrated=False, say=False) as db:
            for check in doctor.run_database_checks(
                db.dsn,
                seen_timeout=settings.worker_seen_timeout,
                archive=doctor.ArchivePace.of(settings),
                snapshot_warn=settings.snapshot_warn_seconds,
            ):
                _show(check)
                found.append(check)
    except (OSError, subprocess.SubprocessError, ConfigError) as exc:
        found.append(
            doctor.Check(
                "embedded PostgreSQL",
                "fail",
                str(exc),
                "set JOBRUNNER_DATABASE_URL, or check JOBRUNNER_DATA_DIR and its server.log",
            )
        )
        _show(found[-1])
    return found


def _show(check: doctor.Check) -> None:
    marks = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}
    out(f"{marks[check.status]}  {check.name}: {check.detail}")
    if check.fix and check.status != "ok":
        out(f"      fix: {check.fix}")
