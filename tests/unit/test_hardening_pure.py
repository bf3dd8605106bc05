"""Issue 14's pure parts: proxy hops, webhook URL forms. No database."""

from __future__ import annotations

from pathlib import Path

import pytest

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
