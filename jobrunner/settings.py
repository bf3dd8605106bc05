"""Every setting in one place, read from `JOBRUNNER_*` environment variables.

Nothing here is built at import time: processes call `get_settings()` (cached) or receive a
`Settings` argument, so tests can build their own with millisecond timings.
"""

from __future__ import annotations

import ipaddress
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobrunner.errors import ConfigError

MIN_JWT_SECRET_BYTES = 32
Seconds = Annotated[float, Field(gt=0)]
CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBRUNNER_", extra="ignore", frozen=True)

    # Where the queue lives. Unset: `jobrunner up` starts an embedded PostgreSQL in data_dir.
    database_url: str | None = None
    data_dir: Path = Path(".jobrunner")
    dev_mode: bool = False

    # Which modules register tasks (import paths), read by the API and the worker alike.
    tasks: CommaList = Field(default_factory=list)

    # Worker.
    queues: CommaList = Field(default_factory=lambda: ["default", "webhooks"])
    concurrency: int = Field(default=32, ge=1, le=10_000)
    poll_interval: Seconds = 1.0
    listen: bool = True
    lease_seconds: Seconds = 30.0
    heartbeat_interval: Seconds = 3.0
    drain_timeout: Seconds = 10.0
    claim_batch: int = Field(default=250, ge=1, le=10_000)
    reconnect_max_delay: Seconds = 5.0
    # How long a starting worker or API waits for an unreachable database before giving up:
    # started together with PostgreSQL (compose, a restart), it must not die on the race.
    startup_wait: Seconds = 60.0
    # A handler that swallows its cancellation is abandoned this long after its timeout.
    timeout_grace: Seconds = 1.0
    # While the event loop is blocked, the heartbeat thread renews an attempt's lease up to its
    # timeout (plus grace), or this long for an attempt without one.
    blocked_loop_renew_cap: Seconds = 3600.0

    # Retries: capped exponential backoff with jitter, in database time. These are the
    # defaults for jobs whose row names no backoff (a task's or a submission's own).
    backoff_base: Seconds = 1.0
    backoff_cap: Seconds = 3600.0
    # A job whose task this worker does not know (a deploy in progress) is put back this long
    # without spending an attempt, at most this many times; then it retries as a failure.
    unknown_task_delay: Seconds = 30.0
    unknown_task_max_deferrals: int = Field(default=20, ge=0, le=1000)

    # Maintenance: promotion of due jobs, lease rescue, pruning, periodic tasks.
    maintenance_interval: Seconds = 1.0
    retention_succeeded: Seconds = 7 * 86400.0
    retention_failed: Seconds = 7 * 86400.0
    retention_cancelled: Seconds = 7 * 86400.0
    prune_batch: int = Field(default=5000, ge=1)
    # Finished jobs leave the live table this long after they finish, moved in batches of
    # archive_batch to jobrunner.job_history (README "Retention"), which keeps them for the
    # retentions above in partitions history_partition_hours wide, made
    # history_partitions_ahead ahead and dropped whole once past the longest retention.
    archive_after: Seconds = 60.0
    archive_batch: int = Field(default=5000, ge=1)
    history_partition_hours: int = Field(default=24, ge=1, le=24 * 31)
    history_partitions_ahead: int = Field(default=3, ge=1, le=100)
    # How often partitions are made and dropped (each time waiting at most a second for
    # the locks a long read of the history may hold).
    history_partition_interval: Seconds = 600.0

    # The worker registry (jobrunner.workers): a worker records itself at start and every
    # worker_seen_interval, and counts as live (doctor, the dashboard, GET /workers) while
    # seen within worker_seen_timeout; maintenance deletes rows gone for worker_retention.
    worker_seen_interval: Seconds = 10.0
    worker_seen_timeout: Seconds = 60.0
    worker_retention: Seconds = 7 * 86400.0
    # A file the worker's heartbeat touches every heartbeat_interval, for a liveness probe
    # that cannot speak HTTP (Kubernetes: an exec probe on its age). Unset: none.
    liveness_file: Path | None = None
    # The API refuses a user's submission (422) to a queue no worker seen within this window
    # serves. Longer than worker_seen_timeout on purpose: in a rolling restart the old
    # workers stop before the new ones register, and submissions in that gap must go through.
    served_queue_window: Seconds = 300.0
    # doctor, the dashboard and /metrics warn when a snapshot older than this holds back the
    # cleanup of dead rows (a long transaction anywhere on the server: claims slow down
    # while it lasts; README "Long transactions").
    snapshot_warn_seconds: Seconds = 120.0

    # HTTP API.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "jobrunner"
    jwt_audience: str = "jobrunner-api"
    access_token_ttl: Seconds = 900.0
    refresh_token_ttl: Seconds = 14 * 86400.0
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    body_read_timeout: Seconds = 15.0
    submit_rate_per_minute: int = Field(default=600, ge=1)
    submit_burst: int = Field(default=100, ge=1)
    max_unfinished_jobs_per_user: int = Field(default=10_000, ge=1)
    max_graph_jobs: int = Field(default=1000, ge=1, le=100_000)
    login_attempts_per_minute: int = Field(default=10, ge=1)
    # Reverse proxies whose X-Forwarded-For is believed (CIDRs); none by default.
    trusted_proxies: CommaList = Field(default_factory=list)
    # /metrics: `admin` wants an admin's access token or metrics_token; `public` is for a
    # scraper on a private network. Queue labels beyond the busiest metrics_max_queues are
    # summed as "other"; the database's figures are recomputed at most every
    # metrics_cache_seconds.
    metrics_access: Literal["admin", "public"] = "admin"
    metrics_token: SecretStr | None = None
    metrics_max_queues: int = Field(default=20, ge=1, le=1000)
    metrics_cache_seconds: Seconds = 5.0
    # A worker process's own Prometheus endpoint (jobrunner.worker.exporter): off unless a
    # port is set. The host it listens on: 0.0.0.0 for a scraper on another machine (a pod).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Who may create an account through POST /auth/register: anyone (open), nobody (closed:
    # admins use `jobrunner users create`), or anyone, disabled until an admin enables it.
    registration: Literal["open", "closed", "approval"] = "open"
    # The dashboard's cookies carry `Secure` (sent over https only): `auto` when the request
    # came over https, `always` (behind a TLS-terminating proxy that forwards plain http), or
    # `never`.
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    # A refresh token presented again this many seconds after its rotation gets the same new
    # pair back (two tabs refreshing at once); later, it revokes the session as a leak.
    refresh_reuse_grace: float = Field(default=10.0, ge=0, le=300)
    webhook_allowed_networks: CommaList = Field(default_factory=list)
    webhook_timeout: Seconds = 5.0
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    # GET /jobs and /history with ?include=args,result: a page stops early past this many
    # bytes of args and results (at least one item, so it always moves on).
    list_max_page_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Server-sent event streams (GET /jobs/{id}/events): how many may be open at once, per
    # user and per API process (429 beyond), and how long one may last before the server
    # closes it with a `retry:` hint (EventSource then reconnects and resumes).
    sse_max_streams_per_user: int = Field(default=20, ge=1)
    sse_max_streams: int = Field(default=1000, ge=1)
    sse_max_stream_seconds: Seconds = 3600.0
    # How often open streams' sessions are checked (one query for all): a stream ends this
    # long at most after its session does (logout, revocation, expiry).
    sse_session_check_interval: Seconds = 5.0

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator(
        "tasks", "queues", "webhook_allowed_networks", "trusted_proxies", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies", "webhook_allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # a ValueError names the bad one
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"metrics_token must be at least {MIN_JWT_SECRET_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.heartbeat_interval >= self.lease_seconds:
            raise ValueError("heartbeat_interval must be shorter than lease_seconds")
        if self.worker_seen_interval >= min(self.worker_seen_timeout, self.served_queue_window):
            raise ValueError(
                "worker_seen_interval must be shorter than worker_seen_timeout and "
                "served_queue_window"
            )
        if not self.queues:
            raise ValueError("at least one queue is required")
        return self

    def require_jwt_secret(self) -> str:
        """The signing secret; in dev mode one is generated and kept in data_dir."""
        if self.jwt_secret is not None:
            secret = self.jwt_secret.get_secret_value()
            if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise ConfigError(
                    f"JOBRUNNER_JWT_SECRET is too weak: use at least {MIN_JWT_SECRET_BYTES} "
                    "random bytes, e.g. from "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
            return secret
        if not self.dev_mode:
            raise ConfigError(
                "JOBRUNNER_JWT_SECRET is not set. Set it to at least 32 random bytes, "
                "or set JOBRUNNER_DEV_MODE=1 to generate one for local use."
            )
        return _dev_secret(self.data_dir)


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / "dev-jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
