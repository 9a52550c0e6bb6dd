"""Trusted-proxy verdicts: remembered per peer, the same as judged afresh, and bounded."""

from __future__ import annotations

import ipaddress

from gateway.proxy import headers
from gateway.proxy.headers import ForwardingPolicy

TRUSTED = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]


def judged(peer: str) -> bool:
    """The rule written out on its own: an address inside one of the trusted networks."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in TRUSTED)


def test_remembered_verdicts_match_fresh_ones() -> None:
    policy = ForwardingPolicy(TRUSTED)
    peers = ["10.1.2.3", "192.0.2.7", "192.0.2.8", "2001:db8::1", "::1", "unix", "", "10.0.0.0"]
    for _ in range(3):  # first judged, then remembered
        assert [policy.is_trusted(peer) for peer in peers] == [judged(peer) for peer in peers]
    assert [policy.is_trusted(peer) for peer in peers] == [
        True, True, False, True, False, False, False, True,
    ]  # fmt: skip


def test_no_trusted_proxies_trusts_nobody() -> None:
    policy = ForwardingPolicy([])
    assert not policy.is_trusted("10.1.2.3") and not policy.is_trusted("127.0.0.1")


def test_memory_is_bounded() -> None:
    policy = ForwardingPolicy(TRUSTED)
    for index in range(3 * headers._PEERS_REMEMBERED):
        peer = f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
        assert policy.is_trusted(peer)
    assert len(policy._verdicts) <= headers._PEERS_REMEMBERED
