"""Header hygiene: hop-by-hop removal, protected headers, forwarding, request ids."""

from __future__ import annotations

import uuid

from gateway.proxy.headers import ForwardingPolicy, end_to_end, global_request_id, new_request_id


def names(pairs: list[tuple[str, str]]) -> set[str]:
    return {key.lower() for key, _ in pairs}


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    kept = end_to_end(
        [
            ("Connection", "keep-alive, X-Custom"),
            ("Keep-Alive", "5"),
            ("X-Custom", "1"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "x"),
            ("Transfer-Encoding", "chunked"),
            ("Accept", "*/*"),
        ]
    )
    assert names(kept) == {"accept"}


def test_connection_cannot_drop_what_the_gateway_relies_on() -> None:
    kept = end_to_end(
        [
            ("Connection", "X-Auth-Token, OpenStack-API-Version, Content-Type, X-Forwarded-For"),
            ("X-Auth-Token", "t"),
            ("OpenStack-API-Version", "compute 2.1"),
            ("Content-Type", "application/json"),
            ("X-Forwarded-For", "1.2.3.4"),
        ]
    )
    assert names(kept) == {
        "x-auth-token",
        "openstack-api-version",
        "content-type",
        "x-forwarded-for",
    }


def test_untrusted_peer_cannot_forge_forwarding_headers() -> None:
    policy = ForwardingPolicy([])
    out = dict(
        policy.upstream_headers(
            [
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Host", "evil"),
                ("Forwarded", "for=6.6.6.6"),
                ("X-Forwarded-Prefix", "/x"),
                ("Host", "gw:8774"),
            ],
            "10.1.2.3",
            "http",
            "gw:8774",
        )
    )
    assert out["X-Forwarded-For"] == "10.1.2.3"
    assert out["X-Forwarded-Host"] == "gw:8774"
    assert out["X-Forwarded-Proto"] == "http"
    assert "Forwarded" not in out and "X-Forwarded-Prefix" not in out and "Host" not in out


def test_trusted_proxy_chain_is_extended() -> None:
    policy = ForwardingPolicy(["10.0.0.0/8"])
    out = dict(
        policy.upstream_headers(
            [
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "compute.example.com"),
            ],
            "10.1.2.3",
            "http",
            "gw:8774",
        )
    )
    assert out["X-Forwarded-For"] == "203.0.113.7, 10.1.2.3"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "compute.example.com"


def test_request_ids() -> None:
    rid = new_request_id()
    assert rid.startswith("req-") and len(rid) == 40
    assert global_request_id([("X-OpenStack-Request-ID", rid)]) == rid
    assert global_request_id([("x-openstack-request-id", "req-nope")]) is None
    # Each one a random version-4 UUID in its canonical form, as Nova's own.
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for each in ids:
        parsed = uuid.UUID(each[len("req-") :])
        assert str(parsed) == each[len("req-") :]
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    assert (
        global_request_id([("X-OpenStack-Request-ID", rid), ("X-OpenStack-Request-ID", rid)])
        is None
    )
