"""Bodies where the method has none: a GET, HEAD or DELETE with a body never goes up.

Owns the corpus of bodies on bodiless methods (JSON, a whole second request as the body,
chunked, empty chunked, with Expect) on the paths that take those methods, and what a
pipelined request after one reads like; it must never pass a case on the answer alone:
each asserts what reached novasim and what it ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pytest

from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import LOOPBACK, AttackRequest, Targets, chunked, request_bytes

PAUSE = b'{"pause": null}'
MEMBER = "alice:p1"
SERVER_PATH = "/v2.1/servers/{}"
# (method, path) pairs Nova routes, or serves as a version document, without a body.
BODILESS = [
    ("GET", "/v2.1/servers"),
    ("GET", SERVER_PATH),
    ("DELETE", SERVER_PATH),
    ("GET", "/v2.1/"),
    ("HEAD", "/v2.1/"),
    ("HEAD", "/"),
]


def smuggled(server: str) -> bytes:
    """A complete action request, to hide in another request's body."""
    return request_bytes(
        "POST",
        ACTION_PATH.format(server),
        [("X-Auth-Token", MEMBER), ("Content-Type", "application/json")],
        PAUSE,
        close=False,
    )


def raw(method: str, target: str, *lines: bytes, body: bytes = b"") -> bytes:
    """A request head exactly as given (no length added), then ``body``."""
    head = [
        f"{method} {target} HTTP/1.1".encode(),
        f"Host: {LOOPBACK}".encode(),
        f"X-Auth-Token: {MEMBER}".encode(),
        *lines,
        b"Connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@dataclass(frozen=True)
class BodyKind:
    id: str
    build: Callable[[str, str, str], bytes]  # (method, target, server) -> request bytes


def _json(method: str, target: str, server: str) -> bytes:
    return raw(method, target, b"Content-Type: application/json", b"Content-Length: 15", body=PAUSE)


def _hidden_request(method: str, target: str, server: str) -> bytes:
    hidden = smuggled(server)
    return raw(method, target, b"Content-Length: %d" % len(hidden), body=hidden)


def _chunked(method: str, target: str, server: str) -> bytes:
    return raw(method, target, b"Transfer-Encoding: chunked", body=chunked(PAUSE))


def _chunked_hidden_request(method: str, target: str, server: str) -> bytes:
    return raw(method, target, b"Transfer-Encoding: chunked", body=chunked(smuggled(server)))


def _empty_chunked(method: str, target: str, server: str) -> bytes:
    """Chunked framing with no data: the request still announces a body."""
    return raw(method, target, b"Transfer-Encoding: chunked", body=chunked())


def _expect_continue(method: str, target: str, server: str) -> bytes:
    return raw(method, target, b"Content-Length: 15", b"Expect: 100-continue", body=PAUSE)


def _one_byte(method: str, target: str, server: str) -> bytes:
    return raw(method, target, b"Content-Length: 1", body=b" ")


KINDS = [
    BodyKind("json", _json),
    BodyKind("hidden-request", _hidden_request),
    BodyKind("chunked", _chunked),
    BodyKind("chunked-hidden-request", _chunked_hidden_request),
    BodyKind("empty-chunked", _empty_chunked),
    BodyKind("expect-100-continue", _expect_continue),
    BodyKind("one-space", _one_byte),
]


@pytest.mark.parametrize("kind", KINDS, ids=[kind.id for kind in KINDS])
@pytest.mark.parametrize(("method", "path"), BODILESS, ids=[f"{m} {p}" for m, p in BODILESS])
async def test_a_body_on_a_bodiless_method_is_refused(
    lab: Lab, method: str, path: str, kind: BodyKind
) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    sent = await lab.send(kind.build(method, path.format(server), server), head=method == "HEAD")
    assert not sent.timed_out
    reply = sent.replies[-1]  # after a 100 Continue, when Expect asked for one
    assert reply.status == 400
    if method != "HEAD":
        assert reply.fault == "badRequest"
        assert f"A {method} request carries no body" in reply.json()["badRequest"]["message"]
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize(("method", "path"), BODILESS, ids=[f"{m} {p}" for m, p in BODILESS])
async def test_an_empty_length_is_no_body(lab: Lab, method: str, path: str) -> None:
    """``Content-Length: 0`` announces no body: the request goes up, without one."""
    server = lab.server("p1")
    target = path.format(server)
    mark = lab.mark()
    sent = await lab.send(raw(method, target, b"Content-Length: 0"), head=method == "HEAD")
    assert sent.reply.status != 400  # novasim's answer, whatever it is
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [(method, target, b"")]


async def test_the_next_request_on_the_connection_is_read_after_the_body(lab: Lab) -> None:
    """The refused GET's body is consumed as a body: the pipelined request after it is
    read from where that body ends, as its own request, and is the only one that runs."""
    hidden_in, visible = lab.server("p1"), lab.server("p1")
    hidden = smuggled(hidden_in)
    first = raw("GET", "/v2.1/servers", b"Content-Length: %d" % len(hidden), body=hidden)
    first = first.replace(b"Connection: close\r\n", b"")
    second = request_bytes(
        "POST",
        ACTION_PATH.format(visible),
        [("X-Auth-Token", MEMBER), ("Content-Type", "application/json")],
        PAUSE,
    )
    mark = lab.mark()
    sent = await lab.send(first + second, replies=2)
    assert sent.statuses == [400, 202]
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [
        ("POST", ACTION_PATH.format(visible), PAUSE)
    ]
    assert lab.actions_run(hidden_in) == []
    assert lab.actions_run(visible) == ["pause"]


def _case(method: str, path: str, kind: BodyKind, targets: Targets) -> bytes:
    # A DELETE names the server a replay can afford to lose, should one ever run.
    server = targets.doomed if method == "DELETE" else targets.server
    return kind.build(method, path.format(server), targets.server)


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends that the gateway refuses, as data (tests/e2e
    replays them before the real Nova)."""
    return [
        AttackRequest(
            f"body/{method} {path}/{kind.id}",
            partial(_case, method, path, kind),
            head=method == "HEAD",
        )
        for method, path in BODILESS
        for kind in KINDS
    ]
