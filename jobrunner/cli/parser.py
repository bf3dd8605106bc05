"""The command line itself: every command, its flags and help, and `main`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import pydantic

from jobrunner import bulk
from jobrunner.bench.command import register as register_bench
from jobrunner.cli.argtypes import aware, json_object, limit, rate
from jobrunner.cli.common import err, settings_from
from jobrunner.commands import Handler, set_handler
from jobrunner.db.errors import SCHEMA_MISSING
from jobrunner.errors import JobrunnerError
from jobrunner.logs import configure_logging
from jobrunner.models import KEEP, JobState

# ----- wiring ---------------------------------------------------------------------------

Subparsers = argparse._SubParsersAction  # argparse names no public type for it
# Each command names its function (jobrunner.commands): only the one that runs is imported.
SERVING = "jobrunner.cli.serving"


def _add_worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--queues", help="comma-separated queues to work (default: default,webhooks)"
    )
    parser.add_argument("--concurrency", type=int, help="jobs run at once (default 32)")
    parser.add_argument("--poll-interval", type=float, help="seconds between polls (default 1)")
    parser.add_argument("--lease-seconds", type=float, help="lease of a running job (default 30)")
    parser.add_argument("--heartbeat-interval", type=float, help="seconds between lease renewals")
    parser.add_argument("--drain-timeout", type=float, help="seconds to finish jobs on SIGTERM")
    parser.add_argument("--maintenance-interval", type=float, help="seconds between maintenance")
    parser.add_argument("--backoff-base", type=float, help="first retry delay in seconds")
    parser.add_argument("--backoff-cap", type=float, help="longest retry delay in seconds")
    parser.add_argument(
        "--no-listen",
        dest="listen",
        action="store_const",
        const=False,
        help="poll only; do not LISTEN for new jobs",
    )


def _add_http_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")


def _add_serving(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up",
        help="API, worker, maintenance and dashboard in one process (what `make run` runs)",
        description="Start everything in one process on http://127.0.0.1:8000. With no "
        "JOBRUNNER_DATABASE_URL it starts an embedded PostgreSQL in JOBRUNNER_DATA_DIR/pgdata. "
        "It migrates the database, turns on dev mode when no JOBRUNNER_JWT_SECRET is set, and "
        "on first start creates an admin account and prints its password once.",
    )
    _add_http_flags(p)
    _add_worker_flags(p)
    set_handler(p, SERVING, "cmd_up")

    p = sub.add_parser(
        "api",
        help="run the HTTP API only (no worker)",
        description="Serve the HTTP API with uvicorn. Needs JOBRUNNER_JWT_SECRET "
        "(or JOBRUNNER_DEV_MODE=1) and a migrated database.",
    )
    _add_http_flags(p)
    set_handler(p, SERVING, "cmd_api")

    p = sub.add_parser(
        "worker",
        help="run a worker process",
        description="Claim and run jobs until SIGTERM or SIGINT, then drain. "
        "Every flag has a JOBRUNNER_* variable of the same name.",
    )
    _add_worker_flags(p)
    set_handler(p, SERVING, "cmd_worker")

    p = sub.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending migrations in order, each in a transaction, "
        "under an advisory lock (safe from many processes at once).",
    )
    p.add_argument("--status", action="store_true", help="list applied and pending migrations")
    p.add_argument(
        "--first-admin",
        metavar="NAME",
        help="then, if the database has no account yet, create admin NAME and print its "
        "password once (what compose's migrate does; `jobrunner up` makes `admin` itself)",
    )
    set_handler(p, SERVING, "cmd_migrate")


def _add_enqueue(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "enqueue",
        help="submit a job",
        description="Submit a job and print it as JSON. With --wait, follow it to its end and "
        "print its result; the exit status is non-zero unless it succeeded.",
        epilog="""example: jobrunner enqueue square_sum --args '{"data": [1, 2, 3]}' --wait""",
    )
    p.add_argument("task", metavar="TASK", help="a registered task name, e.g. square_sum")
    p.add_argument(
        "--args",
        type=json_object,
        default={},
        metavar="JSON",
        help="the task's arguments as a JSON object (default {})",
    )
    p.add_argument("--queue", help="queue (default: the task's)")
    p.add_argument("--priority", type=int, help="-100..100, higher runs first")
    p.add_argument("--delay", type=float, metavar="SECONDS", help="run no sooner than this")
    p.add_argument("--max-attempts", type=int, help="attempts before failing for good")
    p.add_argument("--wait", action="store_true", help="wait for the end and print the result")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up after this long (exit 124)",
    )
    set_handler(p, "jobrunner.cli.jobs", "cmd_enqueue")


def _add_jobs(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "jobs",
        help="list, show, cancel and retry jobs",
        description="Inspect and act on jobs, as an admin would.",
    )
    jobs = p.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    ls = jobs.add_parser("ls", help="newest jobs first", description="List jobs, newest first.")
    ls.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    ls.add_argument("--task", help="only this task")
    ls.add_argument("--queue", help="only this queue")
    ls.add_argument("--tag", action="append", help="only jobs with this tag (repeat: all of them)")
    ls.add_argument("--args", help='only jobs whose args contain this JSON object, e.g. {"a": 1}')
    ls.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, text in [
        ("show", "every field of a job, with each failed attempt"),
        ("cancel", "cancel a job (a running one is stopped by its worker)"),
        ("retry", "put a failed or cancelled job back in the queue"),
    ]:
        action = jobs.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("id", metavar="ID", help="the job's id")
        action.add_argument("--json", action="store_true", help="print the job as JSON")
    _add_bulk(jobs)  # jobs bulk cancel|retry|delete (issue 16)
    set_handler(p, "jobrunner.cli.jobs", "cmd_jobs")


def _add_bulk(jobs: Subparsers[argparse.ArgumentParser]) -> None:
    """`bulk` under `jobrunner jobs`."""
    p = jobs.add_parser(
        "bulk",
        help="cancel, retry or delete every job a filter matches",
        description="Cancel unfinished jobs, retry failed or cancelled ones, or delete "
        "finished ones: every job the filter matches, in batches of 1,000. Audited in "
        "jobrunner.bulk_actions.",
    )
    p.add_argument("action", choices=bulk.ACTIONS, help="what to do to them")
    p.add_argument("--state", choices=[s.value for s in JobState], help="only this state")
    p.add_argument("--task", help="only this task")
    p.add_argument("--queue", help="only this queue")
    p.add_argument("--tag", action="append", help="only jobs with this tag (repeat: all of them)")
    p.add_argument("--args", help='only jobs whose args contain this JSON object, e.g. {"a": 1}')
    p.add_argument("--created-after", type=aware, help="ISO time with a timezone")
    p.add_argument("--created-before", type=aware, help="ISO time with a timezone")
    p.add_argument("--dry-run", action="store_true", help="count them; change nothing")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    set_handler(p, "jobrunner.cli.bulk", "cmd_bulk")


def _add_users(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "users",
        help="create and list API accounts",
        description="Manage the accounts that log in to the API and dashboard.",
    )
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    create = users.add_parser(
        "create",
        help="create an account",
        description="Create an account. Without --password: asked for on a terminal, "
        "otherwise generated and printed once.",
    )
    create.add_argument("name", metavar="NAME", help="3-64 of A-Z a-z 0-9 _ . -")
    create.add_argument("--admin", action="store_true", help="an admin sees every job")
    create.add_argument("--password", help="the password (visible in shell history)")
    users.add_parser("list", help="every account", description="List every account.")
    for action, what in (
        ("disable", "Refuse the account's logins and end its sessions at once."),
        ("enable", "Let a disabled (or approval-awaiting) account log in."),
        ("delete", "Delete an account that owns no jobs (else disable it)."),
    ):
        users.add_parser(action, help=what.split(".")[0].lower(), description=what).add_argument(
            "name"
        )
    highest = users.add_parser(
        "max-priority",
        help="set the highest priority a user may give a job",
        description="Set the highest priority the user may give a job over the API (0 at "
        "first; admins give any). Above 0, their jobs jump other users' waiting jobs.",
    )
    highest.add_argument("name", metavar="NAME")
    highest.add_argument("max_priority", metavar="N", type=int, help="-100..100")
    set_handler(p, "jobrunner.cli.admin", "cmd_users")


def _add_queues(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "queues",
        help="list queues; pause, resume, limit and open them",
        description="Queue controls, obeyed by every worker within a second: pause, the most "
        "jobs running at once (in all, and per owner), a start rate; and which users may "
        "submit to a queue over the API (a queue open to all, or opened to one user).",
    )
    queues = p.add_subparsers(dest="queues_command", required=True, metavar="ACTION")
    ls = queues.add_parser(
        "ls",
        help="every queue with controls or unfinished jobs",
        description="Every queue with controls or unfinished jobs: its controls, who may "
        "submit, and its jobs per state (each state counted up to 100,000).",
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    for action, what in (
        ("pause", "No worker starts the queue's jobs until it is resumed."),
        ("resume", "Workers start the queue's jobs again (its doorbell rings)."),
    ):
        queues.add_parser(action, help=what.split(" (")[0].rstrip(".").lower(), description=what)
    set_ = queues.add_parser(
        "set",
        help="set or remove a queue's limits",
        description="Set the queue's controls; a flag left out leaves that control as it is, "
        "and `none` removes a limit.",
        epilog="example: jobrunner queues set emails --max-running 20 --rate 600/minute",
    )
    set_.add_argument("--max-running", type=limit, default=KEEP, metavar="N|none",
                      help="jobs running at once, across all workers")  # fmt: skip
    set_.add_argument("--max-running-per-owner", type=limit, default=KEEP, metavar="N|none",
                      help="jobs of one owner running at once")  # fmt: skip
    set_.add_argument("--rate", type=rate, default=KEEP, metavar="N/second|N/minute|none",
                      help="jobs started per second or minute, across all workers")  # fmt: skip
    set_.add_argument("--open-to-all", choices=["yes", "no"], default=None,
                      help="whether every user may submit here")  # fmt: skip
    for action, what in (
        ("grant", "Open the queue to one user (besides the queues open to all)."),
        ("revoke", "Close the queue to that user again."),
    ):
        queues.add_parser(action, help=what.split(" (")[0].rstrip(".").lower(), description=what)
    for name, command in queues.choices.items():
        if name != "ls":
            command.add_argument("name", metavar="QUEUE")
        if name in ("grant", "revoke"):
            command.add_argument("user", metavar="USER")
    set_handler(p, "jobrunner.cli.queues", "cmd_queues")


def _add_schedules(sub: Subparsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schedules",
        help="list periodic jobs; add, pause, resume and remove them",
        description="Schedules: each tick of a cron expression (read in a time zone) "
        "enqueues one job, however many workers run. Code schedules come from "
        "@task(cron=...); runtime ones are added here or over the API.",
    )
    schedules = p.add_subparsers(dest="schedules_command", required=True, metavar="ACTION")
    ls = schedules.add_parser(
        "ls",
        help="every schedule, with its next and last run",
        description="Every schedule, with its next run, last run and the state of the job "
        "its last tick enqueued (times in UTC).",
    )
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    add = schedules.add_parser(
        "add",
        help="add a runtime schedule",
        description="Add a runtime schedule: each tick enqueues TASK with --args (and the "
        "task's defaults, but --queue and --priority when given).",
        epilog="example: jobrunner schedules add nightly-sums square_sum '30 2 * * *' "
        "--timezone Europe/Berlin --args '{\"data\": [1, 2, 3]}'",
    )
    add.add_argument("name", metavar="NAME", help="1 to 128 of A-Z a-z 0-9 _ . : -")
    add.add_argument("task", metavar="TASK", help="the task each tick enqueues")
    add.add_argument("cron", metavar="CRON", help="five fields, e.g. '*/5 * * * *' (quoted)")
    add.add_argument("--timezone", default="UTC", help="IANA time zone the cron is read in")
    add.add_argument("--args", type=json_object, default={}, metavar="JSON",
                     help="the jobs' arguments, a JSON object")  # fmt: skip
    add.add_argument("--queue", default=None, help="instead of the task's queue")
    add.add_argument("--priority", type=int, default=None, help="instead of the task's, -100..100")
    for action, what in (
        ("pause", "No tick fires until it is resumed (code schedules too)."),
        ("resume", "Fire again from the next tick after now (missed ticks are skipped)."),
        ("rm", "Remove a runtime schedule (a code one: remove its cron from code, or pause it)."),
    ):
        command = schedules.add_parser(
            action, help=what.split(" (")[0].rstrip(".").lower(), description=what
        )
        command.add_argument("name", metavar="NAME")
    set_handler(p, "jobrunner.cli.schedules", "cmd_schedules")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobrunner",
        description="A background job runner whose only queue is PostgreSQL. "
        "Settings come from JOBRUNNER_* environment variables; with no "
        "JOBRUNNER_DATABASE_URL an embedded PostgreSQL in JOBRUNNER_DATA_DIR is used.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serving(sub)
    _add_enqueue(sub)
    _add_jobs(sub)
    _add_users(sub)
    _add_queues(sub)
    _add_schedules(sub)
    p = sub.add_parser(
        "doctor",
        help="check the database, migrations, LISTEN/NOTIFY and settings",
        description="Run every check, say what to fix, exit non-zero on failure.",
    )
    set_handler(p, "jobrunner.cli.admin", "cmd_doctor")
    register_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from({})
    except pydantic.ValidationError as exc:
        err(f"jobrunner: invalid settings:\n{exc}")
        return 2
    configure_logging(settings.log_level, settings.log_format)
    handler: Handler = args.handler
    try:
        return handler.load()(args)
    except pydantic.ValidationError as exc:
        err(f"jobrunner: invalid settings:\n{exc}")
        return 2
    except JobrunnerError as exc:
        err(f"jobrunner: {exc}")
        return 2
    except SCHEMA_MISSING as exc:  # a command that does not check first (a worker, say)
        err(f"jobrunner: the database is not migrated ({exc}): run `jobrunner migrate`")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
