"""Hop-by-hop abuse: a Connection header can drop only what the gateway does not rely on.

Owns the ``Connection:``-listed header corpus (token, microversion, content type,
forwarding headers, request id, Host) and the hop-by-hop headers that must stop at the
gateway; it must never assert an answer without asserting the headers novasim received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import pytest

from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import AttackRequest, Header, Targets, request_bytes

PAUSE = b'{"pause": null}'
FLOATING = b'{"addFloatingIp": {"address": "10.0.0.9"}}'
REQUEST_ID = "req-0b7c5b8e-6f3a-4c1e-9d2a-1f2e3d4c5b6a"


@dataclass(frozen=True)
class HopCase:
    id: str
    headers: tuple[Header, ...]
    status: int = 202
    # Upstream must carry exactly these values (one line each) ...
    present: dict[str, str] = field(default_factory=dict)
    # ... and none of these names.
    absent: tuple[str, ...] = ()
    token: str = "alice:p1"
    body: bytes = PAUSE
    content_type: str | None = "application/json"


CASES: list[HopCase] = [
    HopCase(
        "connection-names-the-token",
        (("Connection", "X-Auth-Token"),),
        present={"X-Auth-Token": "alice:p1"},
        absent=("Connection",),
    ),
    HopCase(
        "connection-names-the-token-odd-case",
        (("connection", "x-AUTH-token"),),
        present={"X-Auth-Token": "alice:p1"},
    ),
    HopCase(
        "connection-names-the-token-of-a-reader",
        (("Connection", "close, X-Auth-Token"),),
        status=403,
        token="carol:p1:reader",
    ),
    HopCase(
        "connection-names-the-microversion",
        (("OpenStack-API-Version", "compute 2.43"), ("Connection", "OpenStack-API-Version")),
        present={"OpenStack-API-Version": "compute 2.43", "X-OpenStack-Nova-API-Version": "2.43"},
    ),
    HopCase(
        "connection-names-the-legacy-microversion",
        (("X-OpenStack-Nova-API-Version", "2.43"), ("Connection", "X-OpenStack-Nova-API-Version")),
        present={"OpenStack-API-Version": "compute 2.43", "X-OpenStack-Nova-API-Version": "2.43"},
    ),
    HopCase(
        "connection-names-both-microversions",
        (
            ("OpenStack-API-Version", "compute 2.43"),
            ("X-OpenStack-Nova-API-Version", "2.43"),
            ("Connection", "OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
        ),
        present={"OpenStack-API-Version": "compute 2.43", "X-OpenStack-Nova-API-Version": "2.43"},
    ),
    HopCase(
        # Were the version dropped first, the gate would decide 2.1 and allow it.
        "connection-hides-a-version-the-action-is-gone-at",
        (("OpenStack-API-Version", "compute 2.44"), ("Connection", "OpenStack-API-Version")),
        status=404,
        body=FLOATING,
    ),
    HopCase(
        "connection-names-content-type",
        (("Connection", "Content-Type"),),
        present={"Content-Type": "application/json"},
    ),
    HopCase(
        # Were the type dropped first, the gate would see "no type" and read the body.
        "connection-hides-a-refused-content-type",
        (("Connection", "Content-Type"),),
        status=415,
        content_type="application/xml",
    ),
    HopCase(
        "connection-hides-a-content-encoding",
        (("Content-Encoding", "gzip"), ("Connection", "Content-Encoding")),
        status=415,
    ),
    HopCase(
        "connection-names-content-length",
        (("Connection", "Content-Length"),),
        present={"Content-Length": "15"},
    ),
    HopCase(
        "connection-names-x-forwarded-for",
        (("X-Forwarded-For", "10.0.0.1"), ("Connection", "X-Forwarded-For")),
        present={"X-Forwarded-For": "127.0.0.1"},
    ),
    HopCase(
        "connection-names-absent-x-forwarded-for",
        (("Connection", "close, X-Forwarded-For"),),
        present={"X-Forwarded-For": "127.0.0.1"},
    ),
    HopCase(
        "connection-names-every-forwarding-header",
        (("Connection", "X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, Forwarded"),),
        present={
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "127.0.0.1",
        },
        absent=("Forwarded",),
    ),
    HopCase(
        "spoofed-forwarding-headers-are-replaced",
        (
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
            ("Forwarded", "for=10.0.0.1;host=evil.example"),
            ("X-Forwarded-Prefix", "/evil"),
        ),
        present={
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Host": "127.0.0.1",
        },
        absent=("Forwarded", "X-Forwarded-Prefix"),
    ),
    HopCase(
        "connection-names-the-request-id",
        (("X-OpenStack-Request-ID", REQUEST_ID), ("Connection", "X-OpenStack-Request-ID")),
        present={"X-OpenStack-Request-ID": REQUEST_ID},
    ),
    HopCase("connection-names-host", (("Connection", "Host"),), absent=("Connection",)),
    HopCase(
        # A service token is a token, not an assertion: Nova's keystonemiddleware checks
        # it, and Connection cannot make the gateway drop it.
        "connection-names-service-token",
        (("X-Service-Token", "svc-token"), ("Connection", "X-Service-Token")),
        present={"X-Service-Token": "svc-token"},
    ),
    HopCase(
        "connection-names-a-spoofed-role",
        (("X-Roles", "admin"), ("Connection", "close, X-Roles")),
        status=403,
        token="carol:p1:reader",
    ),
    HopCase(
        "connection-names-a-custom-header",
        (("X-Custom", "1"), ("Connection", "X-Custom")),
        absent=("X-Custom", "Connection"),
    ),
    HopCase(
        "two-connection-headers",
        (("Connection", "keep-alive"), ("X-Custom", "1"), ("Connection", "X-Custom")),
        absent=("X-Custom", "Connection"),
    ),
    HopCase("keep-alive", (("Keep-Alive", "timeout=5, max=100"),), absent=("Keep-Alive",)),
    HopCase(
        "proxy-connection", (("Proxy-Connection", "keep-alive"),), absent=("Proxy-Connection",)
    ),
    HopCase("te-trailers", (("TE", "trailers"),), absent=("TE",)),
    HopCase("trailer-announcement", (("Trailer", "X-Roles"),), absent=("Trailer",)),
    HopCase(
        "proxy-authorization",
        (("Proxy-Authorization", "Basic YWRtaW46YWRtaW4="),),
        absent=("Proxy-Authorization",),
    ),
    HopCase("upgrade-without-connection", (("Upgrade", "websocket"),), absent=("Upgrade",)),
    HopCase(
        "proxy-authenticate",
        (("Proxy-Authenticate", "Basic"),),
        absent=("Proxy-Authenticate",),
    ),
]


def variant_request(case: HopCase, server: str) -> bytes:
    """The case's action request on ``server``, on a connection left open."""
    headers: list[Header] = [("X-Auth-Token", case.token)]
    if case.content_type is not None:
        headers.append(("Content-Type", case.content_type))
    headers.extend(case.headers)
    return request_bytes("POST", ACTION_PATH.format(server), headers, case.body, close=False)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hop_by_hop_variant(lab: Lab, case: HopCase) -> None:
    server = lab.server("p1")
    target = ACTION_PATH.format(server)
    mark = lab.mark()
    reply = (await lab.send(variant_request(case, server), replies=1)).reply
    assert reply.status == case.status, reply.body
    forwarded = lab.forwarded(mark)
    if case.status != 202:
        assert forwarded == []
        assert lab.actions_run(server) == []
        return
    assert [(r.method, r.path, r.body) for r in forwarded] == [("POST", target, case.body)]
    record = forwarded[0]
    for name, value in case.present.items():
        assert [v for k, v in record.headers if k.lower() == name.lower()] == [value], name
    for name in case.absent:
        assert record.header(name) is None, name
    # Whatever the client listed, the gateway's own headers all went up.
    for name in ("Host", "X-Auth-Token", "OpenStack-API-Version", "X-OpenStack-Request-ID"):
        assert record.header(name), name
    assert lab.actions_run(server) == ["pause"]


def _variant(case: HopCase, targets: Targets) -> bytes:
    return variant_request(case, targets.server)


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends, as data (tests/e2e replays them before the real Nova)."""
    return [
        AttackRequest(f"variant/{case.id}", partial(_variant, case), acts=case.status == 202)
        for case in CASES
    ]
