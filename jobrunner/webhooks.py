"""Webhook delivery: the `jobrunner.deliver_webhook` task, queued by the engine when a job with
a callback URL ends, and run by any worker of the `webhooks` queue.

Signed the Standard Webhooks way: `webhook-signature: v1,<base64 HMAC-SHA256>` over
`<webhook-id>.<webhook-timestamp>.<body>`, keyed with the owner's `whsec_` secret. The id is
stable for one outcome of one job, so a receiver can drop the duplicates at-least-once brings.
A failed delivery raises, and the engine retries it with backoff; a refused URL cancels it.

SSRF: http(s) only; the host a canonical dotted quad, an IPv6 literal or a valid DNS name (not
2130706433, 0x7f000001, 0177.0.0.1 or 127.1); every address it resolves to must be public (not
loopback, private, link-local, site-local, multicast, reserved, a cloud metadata address, or
an IPv6 form carrying such an IPv4 address: mapped, 6to4, NAT64) unless it lies in
JOBRUNNER_WEBHOOK_ALLOWED_NETWORKS; the connection goes to the address that was checked (no
second lookup to rebind), redirects are not followed, and timeouts are short.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import structlog

from jobrunner import client, tracing
from jobrunner.errors import Cancel, JobNotFound, JobrunnerError
from jobrunner.job_rows import JobRows, make_rows
from jobrunner.models import Job
from jobrunner.settings import get_settings
from jobrunner.tasks import task

log = structlog.get_logger("jobrunner.webhooks")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd00:ec2::254"),
        ipaddress.ip_address("100.100.100.200"),
    }
)


class UnsafeUrl(JobrunnerError):
    """The callback URL is not one jobrunner will call."""


class DeliveryFailed(JobrunnerError):
    """The receiver did not answer 2xx; the delivery job is retried."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect (a vetted address) and the host to name there."""

    url: str
    host_header: str
    sni_hostname: str | None


def allowed_networks(cidrs: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(c, strict=False) for c in cidrs]


def is_public(address: IPAddress) -> bool:
    """Whether `address` reaches the public internet; an IPv6 form that carries an IPv4
    address (mapped, 6to4, NAT64) is judged by the IPv4 address it carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NEVER_PUBLIC_V6):
            return False
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in METADATA_ADDRESSES
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_SPACE)
    )


_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not "private"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_NEVER_PUBLIC_V6 = (
    ipaddress.ip_network("64:ff9b:1::/48"),  # RFC 8215 local-use NAT64: a private translator
    ipaddress.ip_network("fec0::/10"),  # site-local (deprecated, still routed by some stacks)
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated), with :: and ::1
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:  # 2002::/16
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_address(address: IPAddress, allowed: Sequence[IPNetwork], host: str = "the host") -> None:
    """Refuse `address` unless public or allowed. The message names `host` as the URL gave
    it, never the address a name resolved to: that would map internal DNS for a caller."""
    if any(address in network for network in allowed if network.version == address.version):
        return
    if not is_public(address):
        raise UnsafeUrl(f"refused: {host} is not a public address")


# A label of digits, or 0x and hex digits: how inet_aton spells a number. A host made only of
# them (or ending in one) is an IPv4 address to most resolvers and URL parsers, which read
# 2130706433, 0x7f000001, 0177.0.0.1 and 127.1 as 127.0.0.1.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_HOSTNAME_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)


def _check_hostname(host: str) -> None:
    """Refuse the host spellings that are not a plain dotted quad or a valid DNS name."""
    labels = host.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Python's parser takes only the canonical dotted quad; anything else numeric is a
        # disguised address whose meaning depends on who reads it.
        raise UnsafeUrl("refused: a numeric host that is not a plain dotted-quad address")
    try:
        ascii_host = host.removesuffix(".").encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl("refused: the host is not a valid internationalised name") from None
    if len(ascii_host) > 253 or not all(
        _HOSTNAME_LABEL.fullmatch(label) for label in ascii_host.split(".")
    ):
        raise UnsafeUrl("refused: the host is not a valid DNS name")
    lowered = ascii_host.lower()
    if lowered == "localhost" or lowered.endswith(".localhost"):
        raise UnsafeUrl("refused: localhost")


def check_url_syntax(url: str, allowed: Sequence[IPNetwork]) -> None:
    """What can be checked without DNS (at submit): scheme, host, and literal addresses."""
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # reading .port raises ValueError for one that is not a port
            raise ValueError("port 0")
    except ValueError:
        raise UnsafeUrl("refused: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("refused: only http and https URLs with a host")
    if parts.username or parts.password:
        raise UnsafeUrl("refused: URLs with credentials")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        _check_hostname(parts.hostname)
        return
    check_address(literal, allowed, parts.hostname)


async def resolve(url: str, allowed: Sequence[IPNetwork], *, timeout: float = 5.0) -> Target:
    """Check the URL and every address its host resolves to; pin the first one. The lookup
    gets `timeout` seconds: a resolver that never answers must not hold a delivery."""
    check_url_syntax(url, allowed)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise DeliveryFailed(f"cannot resolve {host}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise DeliveryFailed(f"cannot resolve {host}: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        check_address(address, allowed, host)
    pinned = addresses[0]
    netloc = f"[{pinned}]:{port}" if pinned.version == 6 else f"{pinned}:{port}"
    return Target(
        url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
        host_header=parts.netloc,
        sni_hostname=host if parts.scheme == "https" else None,
    )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_id(job: Job) -> str:
    """Stable for one outcome of one job, whichever delivery attempt carries it."""
    finished = int(job.finished_at.timestamp() * 1_000_000) if job.finished_at else 0
    return f"job_{job.id}_{job.attempt}_{finished}"


def payload(job: Job) -> bytes:
    from jobrunner.job_public import job_payload  # see deliver_webhook

    data = job_payload(job)
    body = {"type": f"job.{job.state.value}", "timestamp": data["finished_at"], "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def headers_for(job: Job, body: bytes, secret: str | None) -> dict[str, str]:
    msg_id, timestamp = message_id(job), int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "jobrunner-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
    }
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    # The delivery's attempt span, in the trace of the job it delivers (jobrunner.tracing):
    # a receiver that traces continues it. Not signed: the signature covers the body alone.
    tracing.inject(headers)
    return headers


async def send(target: Target, body: bytes, headers: dict[str, str], timeout: float) -> int:
    import httpx  # see deliver_webhook

    extensions: dict[str, Any] = {}
    if target.sni_hostname:
        extensions["sni_hostname"] = target.sni_hostname
    async with (
        httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False) as http,
        http.stream(
            "POST",
            target.url,
            content=body,
            headers={**headers, "host": target.host_header},
            extensions=extensions,
        ) as response,
    ):
        return response.status_code


@task(name="jobrunner.deliver_webhook", queue="webhooks", max_attempts=10, timeout=60)
async def deliver_webhook(job_id: UUID) -> dict[str, Any]:
    """POST a finished job's JSON to its callback URL, signed with its owner's secret."""
    # Imported at the first delivery, not with this module: every worker imports it (its
    # task is built in), and httpx, the accounts' jwt and argon2, and the API's job models
    # were ~50 ms of a worker's start to its first job.
    import httpx

    from jobrunner import accounts

    settings = get_settings()
    try:
        job = await client.get_job(job_id)
    except JobNotFound:
        return {"skipped": "job no longer exists"}
    if job.callback_url is None or not job.state.is_terminal:
        return {"skipped": "job has no callback or is running again"}
    try:
        target = await resolve(
            job.callback_url,
            allowed_networks(settings.webhook_allowed_networks),
            timeout=settings.webhook_timeout,
        )
    except UnsafeUrl as exc:
        raise Cancel(str(exc)) from None
    secret = None
    if job.owner is not None:
        async with client.default_pool().acquire() as conn:
            owner = await accounts.get_user(conn, job.owner)
        secret = owner.webhook_secret if owner else None
    body = payload(job)
    try:
        status = await send(target, body, headers_for(job, body, secret), settings.webhook_timeout)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
    if status == 410:
        raise Cancel("the receiver answered 410 Gone")
    if not 200 <= status < 300:
        raise DeliveryFailed(f"the receiver answered {status}")
    return {"status": status, "webhook_id": message_id(job)}


def delivery_rows() -> JobRows:
    """A delivery job as the parameter maker makes it from the task's defaults. The outcome
    write and the rescue insert one per finished job with a callback, filling in its id."""
    return make_rows(deliver_webhook.name, [{"job_id": str(UUID(int=0))}])
