"""Print (or, with --write, refresh in README.md) the table of every JOBRUNNER_* setting.

The rows come from `Settings.model_fields`, so names, types and defaults are exact; the
descriptions live here, and tests/cli/test_readme.py fails when a setting has none or the
README's table is stale. Run: `.venv/bin/python scripts/settings_table.py --write`.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path

from pydantic_core import PydanticUndefined

from jobrunner.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings:start -->", "<!-- settings:end -->"

DESCRIPTIONS = {
    "database_url": "PostgreSQL to use, e.g. `postgresql://user:pass@host:5432/db`. "
    "Unset: an embedded PostgreSQL in `DATA_DIR/pgdata`.",
    "data_dir": "Where the embedded PostgreSQL and the dev-mode JWT secret live.",
    "dev_mode": "Generate and keep a JWT secret in `DATA_DIR` when none is set "
    "(`jobrunner up` turns this on by itself).",
    "tasks": "Comma-separated modules that register tasks (`myapp.tasks,other.module`), "
    "imported by API and worker alike.",
    "queues": "Comma-separated queues a worker claims from.",
    "concurrency": "Jobs one worker runs at once.",
    "poll_interval": "Longest wait between polls when no notification arrives; each wait is "
    "drawn from 0.8-1.0x this, never more, so a missed notification costs at most one interval.",
    "listen": "LISTEN for new jobs (workers) and written outcomes (the API's event streams); "
    "false means poll only.",
    "lease_seconds": "How long a claimed job is held without a heartbeat before it is rescued.",
    "heartbeat_interval": "Seconds between lease renewals; must be below `LEASE_SECONDS`.",
    "drain_timeout": "On SIGTERM, seconds running jobs get to finish before they are "
    "released to the queue.",
    "claim_batch": "Most jobs claimed in one statement.",
    "reconnect_max_delay": "Longest pause between reconnection attempts after PostgreSQL "
    "goes away.",
    "startup_wait": "How long a starting worker, API or `migrate` retries an unreachable "
    "database before it exits with one line saying so.",
    "backoff_base": "First retry delay in seconds; doubles with each attempt (with jitter).",
    "backoff_cap": "Longest retry delay in seconds.",
    "unknown_task_delay": "Seconds a job of a task no worker knows waits (no attempt spent).",
    "unknown_task_max_deferrals": "Times such a job is put back before it retries as a failure.",
    "timeout_grace": "Seconds a handler that ignores its timeout (swallows the cancellation) "
    "gets before it is abandoned: its attempt recorded as timed out, its slot and lease freed.",
    "blocked_loop_renew_cap": "While a handler blocks the event loop, the heartbeat thread "
    "keeps renewing leases up to each attempt's timeout (plus grace), or this many seconds "
    "for an attempt without one.",
    "maintenance_interval": "Seconds between maintenance ticks (promote due jobs, rescue "
    "expired leases, prune, periodic tasks).",
    "retention_succeeded": "Seconds a succeeded job is kept before it is deleted.",
    "retention_failed": "Seconds a failed job is kept.",
    "retention_cancelled": "Seconds a cancelled job is kept.",
    "prune_batch": "Rows deleted per pruning statement.",
    "archive_after": "Seconds after it finished that a job moves from `jobrunner.jobs` to the "
    "archive, `jobrunner.job_history` (README: Retention).",
    "archive_batch": "Jobs moved per archiving statement.",
    "history_partition_hours": "Width of the archive's partitions (one a day): a partition is "
    "dropped whole once every job in it is past the longest retention.",
    "history_partitions_ahead": "Partitions made ahead of the current one.",
    "history_partition_interval": "Seconds between maintenance's making and dropping of "
    "partitions.",
    "worker_seen_interval": "Seconds between a worker's updates of its row in the worker "
    "registry (`jobrunner.workers`).",
    "worker_seen_timeout": "A worker not stopped and seen within this many seconds is live "
    "(`GET /workers`, the dashboard, `doctor`).",
    "worker_retention": "Seconds the registry keeps the row of a worker that stopped or vanished.",
    "liveness_file": "A file a worker's heartbeat touches every `HEARTBEAT_INTERVAL` "
    "seconds, for a liveness probe (Kubernetes: an exec probe on its age; see Deployment). "
    "Unset: none.",
    "served_queue_window": "A user's submission to a queue no worker seen within this many "
    "seconds serves is refused (422). Longer than a rolling restart, so one does not refuse "
    "submissions.",
    "snapshot_warn_seconds": "doctor and the admin dashboard warn when a snapshot older than "
    "this holds back the cleanup of dead rows (README: Long transactions).",
    "host": "Address the API listens on.",
    "port": "Port the API listens on.",
    "jwt_secret": "Token signing secret, 32 bytes or more. Required unless dev mode.",
    "jwt_issuer": "`iss` claim of issued tokens (checked on every request).",
    "jwt_audience": "`aud` claim of issued tokens (checked on every request).",
    "access_token_ttl": "Seconds an access token is valid.",
    "refresh_token_ttl": "Seconds a refresh token is valid.",
    "max_body_bytes": "Largest request body; more is 413.",
    "max_header_bytes": "Largest total of request headers; more is 431 (a huge Cookie, say).",
    "body_read_timeout": "Seconds a request body may take to arrive once the headers are in; "
    "slower is 408 and the connection is closed.",
    "submit_rate_per_minute": "Job submissions per user per minute (shared by all API "
    "processes); more is 429. From 1,200 up, each API process takes a user's tokens a few at "
    "a time (a tenth of a second's worth, unused ones lapse after a second).",
    "submit_burst": "Submissions a user may make at once before the rate applies.",
    "max_graph_jobs": "Most jobs in one `POST /jobs/graph`; a graph takes a submission from "
    "the rate limit per job (up to the burst) and counts each toward the unfinished cap.",
    "max_unfinished_jobs_per_user": "Unfinished jobs a user may have at once (an abuse "
    "guard: submissions in flight at the same moment can pass it by their number).",
    "login_attempts_per_minute": "Failed logins per account per minute; every client address "
    "gets five times as many attempts.",
    "trusted_proxies": "Comma-separated reverse proxies (CIDRs) whose `X-Forwarded-For` is "
    "believed; empty trusts none, so every client is its TCP address. See Security.",
    "metrics_access": "Who may read `/metrics`: `admin` (an admin's access token, or "
    "`METRICS_TOKEN`) or `public` (anyone: only for a scraper on a private network).",
    "metrics_token": "A bearer token (32 bytes or more) that reads `/metrics` without an "
    "account, for a Prometheus scraper.",
    "metrics_max_queues": "Queues named in metric labels: for the depth gauges the busiest "
    "ones, for the counters the first named in the process (besides the configured ones); the "
    'rest are `queue="other"`.',
    "metrics_cache_seconds": "How long `/metrics` reuses the figures it read from the database "
    "(concurrent scrapes share one read).",
    "worker_metrics_port": "A worker process's own Prometheus endpoint (`/metrics`, no auth) on "
    "this port; unset, none. See Metrics.",
    "worker_metrics_host": "Where that endpoint listens: `0.0.0.0` for a scraper on another "
    "machine (a pod's port).",
    "webhook_allowed_networks": "Comma-separated networks (CIDR) webhooks may reach even "
    "though private, e.g. `10.0.0.0/8`.",
    "webhook_timeout": "Seconds a webhook delivery may take.",
    "pool_min_size": "Connections the API's pool keeps open.",
    "pool_max_size": "Most connections in the API's pool (a worker uses at least 4).",
    "registration": "`open`: anyone may register; `closed`: `POST /auth/register` is 403 "
    "(admins create accounts with `jobrunner users create`); `approval`: accounts start "
    "disabled until an admin enables them.",
    "cookie_secure": "`Secure` on the dashboard's cookies: `auto` (when the request came over "
    "https), `always` (set it behind a TLS-terminating proxy), or `never`.",
    "refresh_reuse_grace": "Seconds after a refresh during which the same refresh token gets "
    "the same new pair back (two tabs refreshing at once); after it, reuse revokes the session.",
    "list_max_page_bytes": "`GET /jobs` and `/history` with `include=args,result`: a page "
    "stops early (its `next_cursor` goes on) once its args and results pass this many bytes.",
    "sse_max_streams_per_user": "Event streams (`GET /jobs/{id}/events`) one user may have "
    "open at once in one API process; more is 429.",
    "sse_max_streams": "Event streams one API process serves at once; more is 429.",
    "sse_max_stream_seconds": "Longest an event stream lasts; it then closes with a `retry:` "
    "hint and EventSource reconnects (resuming with Last-Event-ID).",
    "sse_session_check_interval": "Seconds between checks that open event streams' sessions "
    "are still live (one query for all); a stream ends this long at most after a logout.",
    "log_level": "`debug`, `info`, `warning` or `error`.",
    "log_format": "`json`, `console`, or `auto` (console on a terminal, JSON elsewhere).",
}


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return "choice"
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names)
    if origin is list:
        return "list"
    name = getattr(annotation, "__name__", str(annotation))
    return {"SecretStr": "secret", "Path": "path"}.get(name, name)


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if value is None or value == []:
        return "unset"
    if isinstance(value, list):
        value = ",".join(value)
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def table() -> str:
    missing = set(Settings.model_fields) - set(DESCRIPTIONS)
    if missing:
        raise LookupError(f"describe these settings in {__file__}: {sorted(missing)}")
    rows = ["| Variable | Type | Default | What it does |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(
            f"| `JOBRUNNER_{name.upper()}` | {_type_name(field.annotation)} | "
            f"{_default(name)} | {DESCRIPTIONS[name]} |"
        )
    return "\n".join(rows)


def readme_with_table(text: str) -> str:
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{table()}\n{END}{after}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        README.write_text(readme_with_table(README.read_text()))
    else:
        print(table())
