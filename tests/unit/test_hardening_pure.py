"""Issue 14's pure parts: proxy hops, webhook URL forms. No database."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from jobrunner import webhooks
from jobrunner.api.job_metrics import SingleFlight
from jobrunner.api.proxies import client_address, parse_networks
from jobrunner.serve import http_server
from jobrunner.settings import Settings

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # not a proxy: its header is ignored
        ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
        ("10.0.0.2", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),  # the left is the client's
        ("10.0.0.2", ["1.2.3.4", "198.51.100.1, 10.0.0.3"], "198.51.100.1"),  # two proxies
        ("10.0.0.2", ["10.0.0.9, 10.0.0.3"], "10.0.0.9"),  # all ours: the first hop
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["junk, 198.51.100.1"], "198.51.100.1"),
        ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
    ],
)
def test_the_right_most_untrusted_hop_is_the_client(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address("127.0.0.1", ["1.2.3.4"], []) == "127.0.0.1"


def test_trusted_proxies_must_be_networks() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8,not-a-network")
    parsed = Settings(trusted_proxies="10.0.0.0/8, ::1")
    assert parsed.trusted_proxies == ["10.0.0.0/8", "::1"]


def test_uvicorn_does_not_read_proxy_headers(tmp_path: Path) -> None:
    server = http_server(Settings(dev_mode=True, data_dir=tmp_path))
    assert server.config.proxy_headers is False


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",  # decimal
        "http://0x7f000001/",  # hex
        "http://0177.0.0.1/",  # octal
        "http://127.1/",  # short
        "http://0x7f.0.0.1/",
        "http://127.0.0.1./",  # trailing dot: not the canonical spelling
        "http://1.2.3.4.5/",
        "http://exa mple.com/",  # a space
        "http://a..b/",  # an empty label
        "http://" + "\u00e4" * 70 + ".com/",  # a label IDNA cannot encode
        "http://a\u0080b.com/",  # a character IDNA prohibits
        "http://[2002:7f00:1::]/",  # 6to4 carrying 127.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 carrying 10.0.0.1
        "http://[64:ff9b::7f00:1]/",  # NAT64 carrying 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 carrying the metadata address
        "http://[64:ff9b:1::5db8:d822]/",  # local-use NAT64: a private translator
        "http://[fec0::1]/",  # site-local
        "http://[::ffff:7f00:1]/",  # IPv4-mapped, hex spelling
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://example.com:99999/",
    ],
)
def test_disguised_and_private_hosts_are_refused_at_submit(url: str) -> None:
    with pytest.raises(webhooks.UnsafeUrl):
        webhooks.check_url_syntax(url, [])


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://example.com/hook",
        "https://b\u00fccher.example/hook",  # a valid IDN
        "http://my_host.example.com:8080/x",
        "http://[64:ff9b::5db8:d822]/",  # NAT64 carrying a public address
        "http://[2002:5db8:d822::]/",  # 6to4 carrying a public address
    ],
)
def test_public_hosts_pass(url: str) -> None:
    webhooks.check_url_syntax(url, [])


async def test_a_refused_delivery_does_not_say_what_a_name_resolved_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_getaddrinfo(host: str, port: int, **_: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(webhooks.UnsafeUrl) as refused:
        await webhooks.resolve("https://intranet.example/hook", [])
    assert "not a public address" in str(refused.value)
    assert "10.20.30.40" not in str(refused.value)


async def test_single_flight_computes_once_for_concurrent_callers() -> None:
    calls = 0
    started, release = asyncio.Event(), asyncio.Event()

    async def compute() -> list[str]:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return [f"value {calls}"]

    cached = SingleFlight(compute, ttl=60.0)
    callers = [asyncio.create_task(cached.get()) for _ in range(10)]
    async with asyncio.timeout(5):
        await started.wait()  # the callers were scheduled first: all of them are waiting
    release.set()
    assert {tuple(v) for v in await asyncio.gather(*callers)} == {("value 1",)}
    assert await cached.get() == ["value 1"] and calls == 1  # cached within the ttl


async def test_single_flight_does_not_keep_a_failure() -> None:
    outcomes: list[list[str] | Exception] = [RuntimeError("database away"), ["ok"]]

    async def compute() -> list[str]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    cached = SingleFlight(compute, ttl=60.0)
    with pytest.raises(RuntimeError):
        await cached.get()
    assert await cached.get() == ["ok"]
