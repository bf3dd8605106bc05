"""Who the client is when the API sits behind reverse proxies: JOBRUNNER_TRUSTED_PROXIES.

Rate limits key on the client's address, so that address must not be the client's to
choose. X-Forwarded-For is read only when the connection comes from a trusted proxy (a
CIDR in the setting; none by default), and then from the right: each trusted proxy appends
the address it saw, so the right-most hop that is not a trusted proxy is the first address
no client could have written. Everything left of it is whatever the client sent.

uvicorn's own proxy-header handling is turned off (jobrunner.serve), so this is the one
place the decision is made, and the ASGI tests see the same rule as production.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Sequence[str]) -> list[IPNetwork]:
    """CIDRs (a bare address is a /32 or /128); a ValueError names a bad one."""
    return [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs]


def is_trusted(host: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name or garbage is never one of our proxies
    return any(address in network for network in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The address to hold the client to: `peer` itself unless it is a trusted proxy, else
    the right-most X-Forwarded-For hop that is not one (`forwarded_for` are the header's
    values in the order received)."""
    if not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer  # every hop is ours: the first one is the client


class TrustedProxies:
    """Rewrite the ASGI `client` (and `scheme`, from X-Forwarded-Proto) for requests that
    come through a trusted proxy; added only when JOBRUNNER_TRUSTED_PROXIES is set."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = list(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if (
            scope["type"] in ("http", "websocket")
            and client
            and is_trusted(client[0], self.trusted)
        ):
            forwarded = [
                v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"
            ]
            scope = dict(scope)
            scope["client"] = (client_address(client[0], forwarded, self.trusted), 0)
            protos = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-proto"]
            proto = protos[-1].split(",")[-1].strip().lower() if protos else ""
            if proto in ("http", "https"):
                scope["scheme"] = proto
        await self.app(scope, receive, send)
