"""HTTP/1.1 framing attacks on raw sockets: smuggling, chunk tricks, folding, Expect, slow loris.

Owns the raw-bytes framing corpus (CL/TE, duplicate lengths, chunk extensions and bare
LF, obsolete folding, duplicate Host, oversized headers and trailers, pipelining,
100-continue, slow bodies, CR/LF/NUL in values); it must never send through a client
library that could normalise the bytes, and never wait without a deadline.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pytest

from tests.security.lab import ACTION_PATH, IMPATIENT_BODY_TIMEOUT, Lab
from tests.security.wire import (
    LOOPBACK,
    AttackRequest,
    Targets,
    chunked,
    connection_closed,
    read_reply,
)

PAUSE = b'{"pause": null}'
PARSER = "parser"  # aiohttp's own 400 (text/plain): the request never reached the gate
RUN = "run"  # forwarded once, with exactly the PAUSE body framed by Content-Length
FRAMING_HEADERS = ("transfer-encoding", "trailer", "te", "expect", "upgrade", "http2-settings")


def head(server: str, *lines: bytes, token: bytes = b"alice:p1", start: bytes = b"") -> bytes:
    """A pause request's head (through the blank line) with ``lines`` after the basics."""
    first = start or b"POST %s HTTP/1.1" % ACTION_PATH.format(server).encode()
    basics = [
        first,
        b"Host: 127.0.0.1",
        b"X-Auth-Token: " + token,
        b"Content-Type: application/json",
    ]
    return b"\r\n".join([*basics, *lines]) + b"\r\n\r\n"


def cl(server: str, *lines: bytes, body: bytes = PAUSE) -> bytes:
    """A Content-Length request with ``Connection: close``."""
    return head(server, b"Content-Length: %d" % len(body), *lines, b"Connection: close") + body


def te(
    server: str,
    body: bytes,
    *lines: bytes,
    te_line: bytes = b"Transfer-Encoding: chunked",
    start: bytes = b"",
) -> bytes:
    """A chunked (or otherwise transfer-coded) request with ``Connection: close``."""
    return head(server, te_line, *lines, b"Connection: close", start=start) + body


@dataclass(frozen=True)
class FramingCase:
    id: str
    build: Callable[[str], bytes]
    expect: int | str


CASES: list[FramingCase] = [
    # Content-Length and Transfer-Encoding together, in both orders (CL.TE / TE.CL).
    FramingCase(
        "cl-then-te",
        lambda s: head(s, b"Content-Length: 4", b"Transfer-Encoding: chunked") + chunked(PAUSE),
        PARSER,
    ),
    FramingCase(
        "te-then-cl",
        lambda s: head(s, b"Transfer-Encoding: chunked", b"Content-Length: 4") + chunked(PAUSE),
        PARSER,
    ),
    FramingCase(
        "te-identity-with-cl",
        lambda s: head(s, b"Transfer-Encoding: identity", b"Content-Length: 15") + PAUSE,
        PARSER,
    ),
    FramingCase(
        "cl-and-te-smuggled-request",
        lambda s: (
            head(s, b"Content-Length: 5", b"Transfer-Encoding: chunked")
            + b"0\r\n\r\n"
            + cl(s, body=b'{"unpause": null}')
        ),
        PARSER,
    ),
    # Content-Length spellings.
    FramingCase("two-cl-equal", lambda s: cl(s, b"Content-Length: 15"), PARSER),
    FramingCase("two-cl-different", lambda s: cl(s, b"Content-Length: 16") + b" ", PARSER),
    FramingCase(
        "cl-list",
        lambda s: head(s, b"Content-Length: 15, 15", b"Connection: close") + PAUSE,
        PARSER,
    ),
    FramingCase(
        "cl-plus-sign",
        lambda s: head(s, b"Content-Length: +15", b"Connection: close") + PAUSE,
        PARSER,
    ),
    FramingCase(
        "cl-hex", lambda s: head(s, b"Content-Length: 0x0f", b"Connection: close") + PAUSE, PARSER
    ),
    FramingCase(
        "cl-negative",
        lambda s: head(s, b"Content-Length: -1", b"Connection: close") + PAUSE,
        PARSER,
    ),
    FramingCase(
        "cl-with-spaces",
        lambda s: head(s, b"Content-Length:  15 ", b"Connection: close") + PAUSE,
        RUN,
    ),
    FramingCase(
        "cl-leading-zero",
        lambda s: head(s, b"Content-Length: 015", b"Connection: close") + PAUSE,
        RUN,
    ),
    FramingCase(
        "cl-shorter-than-body",
        lambda s: head(s, b"Content-Length: 5", b"Connection: close") + PAUSE,
        400,
    ),
    FramingCase(
        "body-without-length",
        lambda s: head(s, b"Connection: close") + PAUSE,
        PARSER,
    ),
    # Transfer-Encoding spellings.
    FramingCase(
        "te-twice",
        lambda s: te(s, chunked(PAUSE), b"Transfer-Encoding: identity"),
        PARSER,
    ),
    FramingCase(
        "te-chunked-identity",
        lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding: chunked, identity"),
        PARSER,
    ),
    FramingCase(
        "te-chunked-chunked",
        lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding: chunked, chunked"),
        PARSER,
    ),
    FramingCase(
        "te-xchunked",
        lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding: xchunked"),
        PARSER,
    ),
    FramingCase(
        "te-space-before-colon",
        lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding : chunked"),
        PARSER,
    ),
    FramingCase(
        "te-upper-case", lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding: CHUNKED"), RUN
    ),
    FramingCase(
        "te-tab", lambda s: te(s, chunked(PAUSE), te_line=b"Transfer-Encoding:\tchunked"), RUN
    ),
    FramingCase(
        "te-gzip-chunked",
        lambda s: te(s, chunked(gzip.compress(PAUSE)), te_line=b"Transfer-Encoding: gzip, chunked"),
        400,  # not decoded by the server: the gate reads gzip bytes, not JSON
    ),
    FramingCase(
        "te-on-http-1.0",
        lambda s: te(s, chunked(PAUSE), start=b"POST %s HTTP/1.0" % ACTION_PATH.format(s).encode()),
        RUN,
    ),
    # Chunk extensions (CVE-2024-52304), sizes and bare LF.
    FramingCase("chunk-extension", lambda s: te(s, chunked(PAUSE, extension=b";foo=bar")), RUN),
    FramingCase(
        "chunk-extension-quoted",
        lambda s: te(s, chunked(PAUSE, extension=b';a="x\\"y"')),
        RUN,
    ),
    FramingCase(
        "chunk-extension-bare-lf",
        lambda s: te(s, b"f;foo=bar\n" + PAUSE + b"\r\n0\r\n\r\n"),
        PARSER,
    ),
    FramingCase("chunk-size-bare-lf", lambda s: te(s, b"f\n" + PAUSE + b"\n0\n\n"), PARSER),
    FramingCase("chunk-data-bare-lf", lambda s: te(s, b"f\r\n" + PAUSE + b"\n0\r\n\r\n"), PARSER),
    FramingCase(
        "chunk-size-overflow",
        lambda s: te(s, b"ffffffffffffffffff\r\n" + PAUSE + b"\r\n0\r\n\r\n"),
        PARSER,
    ),
    FramingCase("chunk-size-space", lambda s: te(s, b"f \r\n" + PAUSE + b"\r\n0\r\n\r\n"), PARSER),
    FramingCase(
        "chunk-size-negative", lambda s: te(s, b"-f\r\n" + PAUSE + b"\r\n0\r\n\r\n"), PARSER
    ),
    FramingCase(
        "chunk-shorter-than-size", lambda s: te(s, b"5\r\n" + PAUSE + b"\r\n0\r\n\r\n"), PARSER
    ),
    FramingCase(
        "chunk-size-hex-prefix", lambda s: te(s, b"0xf\r\n" + PAUSE + b"\r\n0\r\n\r\n"), PARSER
    ),
    FramingCase("key-split-across-chunks", lambda s: te(s, chunked(b'{"pa', b'use": null}')), RUN),
    FramingCase(
        "one-byte-chunks",
        lambda s: te(s, chunked(*[PAUSE[i : i + 1] for i in range(len(PAUSE))])),
        RUN,
    ),
    FramingCase(
        "last-chunk-extension",
        lambda s: te(s, b"f\r\n" + PAUSE + b"\r\n0;x=y\r\n\r\n"),
        RUN,
    ),
    # Header lines: folding, CR/LF/NUL, duplicate Host, odd names.
    FramingCase("obsolete-line-folding", lambda s: cl(s, b"X-Note: a", b" X-Roles: admin"), PARSER),
    FramingCase("folded-token", lambda s: cl(s, b"X-Auth-Token: alice:p1", b"\tadmin"), PARSER),
    FramingCase("two-host-headers", lambda s: cl(s, b"Host: nova.internal"), PARSER),
    FramingCase("cr-in-value", lambda s: cl(s, b"X-Note: a\rX-Roles: admin"), PARSER),
    FramingCase("lf-in-value", lambda s: cl(s, b"X-Note: a\nX-Roles: admin"), PARSER),
    FramingCase("nul-in-value", lambda s: cl(s, b"X-Note: a\x00b"), PARSER),
    FramingCase("nul-in-token", lambda s: cl(s, b"X-Auth-Token: admin:admin\x00"), PARSER),
    FramingCase(
        "bare-lf-line-ends",
        lambda s: (
            head(s, b"Content-Length: 15", b"Connection: close").replace(b"\r\n", b"\n") + PAUSE
        ),
        PARSER,
    ),
    FramingCase("space-before-colon", lambda s: cl(s, b"X-Auth-Token : admin:admin"), PARSER),
    FramingCase("slash-in-name", lambda s: cl(s, b"X/Roles: admin"), PARSER),
    FramingCase("empty-name", lambda s: cl(s, b": admin"), PARSER),
    FramingCase("oversized-header", lambda s: cl(s, b"X-Big: " + b"a" * 9000), PARSER),
    FramingCase(
        "too-many-headers", lambda s: cl(s, *[b"X-H%d: 1" % i for i in range(200)]), PARSER
    ),
    # Trailers (CVE-2026-22815): bounded, and never a way to add a header.
    FramingCase(
        "oversized-trailer",
        lambda s: te(s, chunked(PAUSE, trailers=[b"X-T: " + b"a" * 9000])),
        PARSER,
    ),
    FramingCase(
        "too-many-trailers",
        lambda s: te(s, chunked(PAUSE, trailers=[b"X-T%d: 1" % i for i in range(300)])),
        PARSER,
    ),
    FramingCase(
        "trailer-spoofs-identity",
        lambda s: te(
            s,
            chunked(PAUSE, trailers=[b"X-Roles: admin", b"X-Auth-Token: admin:admin"]),
            b"Trailer: X-Roles, X-Auth-Token",
        ),
        RUN,
    ),
    FramingCase(
        "trailer-spoofs-identity-for-a-reader",
        lambda s: (
            head(s, b"Transfer-Encoding: chunked", b"Connection: close", token=b"carol:p1:reader")
            + chunked(PAUSE, trailers=[b"X-Roles: admin", b"X-Auth-Token: admin:admin"])
        ),
        403,
    ),
    FramingCase(
        "trailer-content-length",
        lambda s: te(s, chunked(PAUSE, trailers=[b"Content-Length: 0"])),
        PARSER,
    ),
    # Expect.
    FramingCase("expect-100-continue", lambda s: cl(s, b"Expect: 100-continue"), RUN),
    FramingCase("expect-other", lambda s: cl(s, b"Expect: something-else"), RUN),
    # Versions, methods, upgrades.
    FramingCase(
        "http-1.2",
        lambda s: cl(s).replace(b"HTTP/1.1", b"HTTP/1.2", 1),
        PARSER,
    ),
    FramingCase("lower-case-method", lambda s: cl(s).replace(b"POST", b"post", 1), PARSER),
    FramingCase("unknown-method", lambda s: cl(s).replace(b"POST", b"PAUSE", 1), PARSER),
    FramingCase("tab-after-method", lambda s: cl(s).replace(b"POST ", b"POST\t", 1), PARSER),
    FramingCase(
        "upgrade-h2c",
        lambda s: (
            head(
                s,
                b"Content-Length: 15",
                b"Connection: Upgrade, HTTP2-Settings, close",
                b"Upgrade: h2c",
                b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
            )
            + PAUSE
        ),
        RUN,
    ),
    FramingCase(
        "upgrade-websocket",
        lambda s: (
            head(s, b"Content-Length: 15", b"Connection: Upgrade, close", b"Upgrade: websocket")
            + PAUSE
        ),
        RUN,
    ),
]


def _assert_ran_once(lab: Lab, mark: int, server: str) -> None:
    forwarded = lab.forwarded(mark)
    assert [(r.method, r.path, r.body) for r in forwarded] == [
        ("POST", ACTION_PATH.format(server), PAUSE)
    ]
    names = [name.lower() for name, _ in forwarded[0].headers]
    assert not set(names) & set(FRAMING_HEADERS), names
    assert forwarded[0].header("Content-Length") == str(len(PAUSE))
    assert forwarded[0].header("X-Auth-Token") == "alice:p1"
    assert forwarded[0].header("X-Roles") is None
    assert lab.actions_run(server) == ["pause"]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_framing_variant(lab: Lab, case: FramingCase) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    sent = await lab.send(case.build(server), replies=2)
    assert not sent.timed_out
    reply = next(r for r in sent.replies if r.status >= 200)
    if case.expect == RUN:
        assert reply.status == 202, reply.body
        _assert_ran_once(lab, mark, server)
        if b"Expect: 100" in case.build(server):
            assert sent.statuses == [100, 202]
        return
    if case.expect == PARSER:
        assert reply.from_gateway_parser, (reply.status, reply.body)
    else:
        assert reply.status == case.expect, reply.body
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"


def test_framing_requests_are_distinct() -> None:
    built = [case.build("00000000-0000-4000-8000-000000000000") for case in CASES]
    assert len(built) == len(set(built))


# -- pipelining: each request is decided on its own ----------------------------------------


def keep_alive(server: str, token: bytes, body: bytes = PAUSE) -> bytes:
    return head(server, b"Content-Length: %d" % len(body), token=token) + body


def allowed_then_foreign(server: str) -> bytes:
    return keep_alive(server, b"alice:p1") + cl(server).replace(b"alice:p1", b"eve:p2")


def refused_then_allowed(server: str) -> bytes:
    return keep_alive(server, b"carol:p1:reader") + cl(server)


PIPELINED_BODIES = (PAUSE, b'{"lock": null}', b'{"os-stop": null}')


def bodies_then_unpause(servers: Sequence[str]) -> bytes:
    """One action per server (PIPELINED_BODIES), then the first server's unpause."""
    pairs = zip(servers, PIPELINED_BODIES, strict=True)
    data = b"".join(keep_alive(s, b"alice:p1", b) for s, b in pairs)
    return data + cl(servers[0], body=b'{"unpause": null}')


def hidden_in_a_get_body(server: str) -> bytes:
    hidden = cl(server)
    return (
        b"GET /v2.1/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: alice:p1\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(hidden)
    ) + hidden


def framing_error_then_action(server: str) -> bytes:
    return head(server, b"Content-Length: 15", b"Content-Length: 15") + PAUSE + cl(server)


async def test_pipelined_allowed_then_foreign(lab: Lab) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    data = allowed_then_foreign(server)
    sent = await lab.send(data, replies=2)
    assert sent.statuses == [202, 404]
    _assert_ran_once(lab, mark, server)


async def test_pipelined_refused_then_allowed(lab: Lab) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    data = refused_then_allowed(server)
    sent = await lab.send(data, replies=2)
    assert sent.statuses == [403, 202]
    _assert_ran_once(lab, mark, server)


async def test_pipelined_bodies_stay_with_their_requests(lab: Lab) -> None:
    """Three requests, three servers: each body goes up with its own path only."""
    servers = [lab.server("p1") for _ in range(3)]
    bodies = list(PIPELINED_BODIES)
    mark = lab.mark()
    sent = await lab.send(bodies_then_unpause(servers), replies=4)
    assert sent.statuses == [202, 202, 202, 202]
    assert [(r.path, r.body) for r in lab.forwarded(mark)] == [
        *[(ACTION_PATH.format(s), b) for s, b in zip(servers, bodies, strict=True)],
        (ACTION_PATH.format(servers[0]), b'{"unpause": null}'),
    ]
    assert [lab.actions_run(s) for s in servers] == [["pause", "unpause"], ["lock"], ["stop"]]


async def test_request_hidden_in_a_get_body_is_refused(lab: Lab) -> None:
    """A GET whose Content-Length covers a whole second request: one request, refused
    for its body (a GET has none); neither it nor the hidden action goes up."""
    server = lab.server("p1")
    mark = lab.mark()
    sent = await lab.send(hidden_in_a_get_body(server), replies=2)
    assert sent.statuses == [400]
    assert sent.reply.fault == "badRequest"
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


async def test_nothing_is_read_after_a_framing_error(lab: Lab) -> None:
    """After the parser's 400 the connection is closed: a pipelined action never runs."""
    server = lab.server("p1")
    mark = lab.mark()
    sent = await lab.send(framing_error_then_action(server), replies=2, check_closed=True)
    assert [r.status for r in sent.replies] == [400]
    assert sent.closed
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


# -- Expect: 100-continue ------------------------------------------------------------------


def oversized_expect_100(server: str) -> bytes:
    return head(server, b"Content-Length: 200000", b"Expect: 100-continue", b"Connection: close")


async def test_expect_100_on_an_oversized_body_is_413_without_a_100(lab: Lab) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    sent = await lab.send(oversized_expect_100(server), replies=1)
    assert sent.statuses == [413]
    assert lab.forwarded(mark) == []


# -- slow loris: bounded by [limits] request_body_timeout ----------------------------------


@dataclass(frozen=True)
class SlowClient:
    """A pause request's head (with ``lines``), then its body one piece per ``interval``."""

    id: str
    lines: tuple[bytes, ...]
    pieces: tuple[bytes, ...]
    interval: float

    def start(self, server: str) -> bytes:
        return head(server, *self.lines)


SLOW_LORIS_BODY = SlowClient(
    "slow-loris-body",
    (b"Content-Length: 15",),
    tuple(PAUSE[i : i + 1] for i in range(len(PAUSE) - 1)),  # never the last byte
    0.1,
)
BODY_NEVER_COMES = SlowClient("body-never-comes", (b"Content-Length: 15",), (b"",) * 30, 0.1)
ENDLESS_CHUNKS = SlowClient(
    "endless-chunks", (b"Transfer-Encoding: chunked",), (b"1\r\n \r\n",) * 40, 0.05
)
BROKEN_CHUNKS: list[tuple[str, bytes]] = [
    ("size-bare-lf", b"f\n" + PAUSE + b"\r\n0\r\n\r\n"),  # bare LF after the size
    ("extension-bare-lf", b"f;a=b\n" + PAUSE + b"\r\n0\r\n\r\n"),  # bare LF after an extension
    ("bad-size", b"zz\r\n" + PAUSE + b"\r\n0\r\n\r\n"),  # not a size
    ("overlong-chunk", b"5\r\n" + PAUSE + b"\r\n0\r\n\r\n"),  # data longer than its size
]


def broken_chunk_client(name: str, broken: bytes) -> SlowClient:
    """A chunked head, then (after one interval) a body with a framing error."""
    return SlowClient(f"chunk-error/{name}", (b"Transfer-Encoding: chunked",), (b"", broken), 0.1)


# The connections stuck in their headers while a normal request is sent.
STUCK_HEAD = b"POST /v2.1/servers/x/action HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Au"
STUCK_CLIENTS = 50


async def trickle(
    port: int, head_bytes: bytes, pieces: Sequence[bytes], interval: float
) -> tuple[int | None, float]:
    """Send the head, then one piece per ``interval``; the status and when it came."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    started = time.monotonic()
    try:
        writer.write(head_bytes)
        await writer.drain()
        answer = asyncio.ensure_future(read_reply(reader))
        for piece in pieces:  # bounded: the pieces are given
            done, _ = await asyncio.wait({answer}, timeout=interval)
            if done:
                break
            try:
                writer.write(piece)
                await writer.drain()
            except ConnectionError:
                break
        reply = await asyncio.wait_for(answer, timeout=5.0)
        return (None if reply is None else reply.status), time.monotonic() - started
    finally:
        writer.close()


async def _trickle(lab: Lab, server: str, client: SlowClient) -> tuple[int | None, float]:
    return await trickle(lab.port, client.start(server), client.pieces, client.interval)


async def test_slow_loris_body_is_cut_off(impatient_lab: Lab) -> None:
    lab = impatient_lab
    server = lab.server("p1")
    mark = lab.mark()
    status, seconds = await _trickle(lab, server, SLOW_LORIS_BODY)
    assert status == 408
    assert IMPATIENT_BODY_TIMEOUT <= seconds < IMPATIENT_BODY_TIMEOUT + 2.0
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


async def test_body_that_never_comes_is_cut_off(impatient_lab: Lab) -> None:
    lab = impatient_lab
    server = lab.server("p1")
    mark = lab.mark()
    status, seconds = await _trickle(lab, server, BODY_NEVER_COMES)
    assert status == 408
    assert seconds < IMPATIENT_BODY_TIMEOUT + 2.0
    assert lab.forwarded(mark) == []


async def test_endless_chunks_are_cut_off(impatient_lab: Lab) -> None:
    lab = impatient_lab
    server = lab.server("p1")
    mark = lab.mark()
    status, seconds = await _trickle(lab, server, ENDLESS_CHUNKS)
    assert status == 408
    assert seconds < IMPATIENT_BODY_TIMEOUT + 2.0
    assert lab.forwarded(mark) == []


@pytest.mark.parametrize(
    "broken", [broken for _, broken in BROKEN_CHUNKS], ids=[name for name, _ in BROKEN_CHUNKS]
)
async def test_chunk_error_after_the_head_is_cut_off(impatient_lab: Lab, broken: bytes) -> None:
    """A framing error in a body that arrives after the head: aiohttp's C parser drops the
    body without ending it, so only the body deadline answers (408), and nothing is sent up."""
    lab = impatient_lab
    server = lab.server("p1")
    mark = lab.mark()
    status, seconds = await _trickle(lab, server, broken_chunk_client("", broken))
    assert status == 408
    assert seconds < IMPATIENT_BODY_TIMEOUT + 2.0
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


async def test_slow_clients_do_not_starve_others(impatient_lab: Lab) -> None:
    """Fifty connections stuck in their headers: a normal request is still answered."""
    lab = impatient_lab
    server = lab.server("p1")
    stuck = [await asyncio.open_connection(LOOPBACK, lab.port) for _ in range(STUCK_CLIENTS)]
    try:
        for _, writer in stuck:
            writer.write(STUCK_HEAD)
            await writer.drain()
        mark = lab.mark()
        sent = await lab.send(cl(server), timeout=3.0)
        assert sent.reply.status == 202
        _assert_ran_once(lab, mark, server)
        # The stuck ones were never answered nor forwarded.
        assert not await connection_closed(stuck[0][0], wait=0.1)
    finally:
        for _, writer in stuck:
            writer.close()


# -- parser errors never put a token in the logs -------------------------------------------

SECRET = "gAAAAAB-security-suite-secret-token"


PARSER_ERRORS_WITH_A_TOKEN: list[tuple[str, bytes]] = [
    # A bare-LF request line: aiohttp quotes the whole buffer, every header included.
    ("bare-lf", b"POST /v2.1/servers/x/action HTTP/1.1\nHost: 127.0.0.1\nX-Auth-Token: %s\n\n"),
    # A bad byte in the token's own line: aiohttp quotes that line.
    (
        "control-char-in-token",
        b"GET /v2.1/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: %s\x01\r\n\r\n",
    ),
    # A token folded onto a second line.
    (
        "folded-token",
        b"GET /v2.1/servers HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Note: a\r\n X-Auth-Token: %s\r\n\r\n",
    ),
    # A header name with a space after the token line.
    (
        "bad-name-after-token",
        b"GET /v2.1/servers HTTP/1.1\r\nX-Auth-Token: %s\r\nBad Name: 1\r\n\r\n",
    ),
]


@pytest.mark.parametrize(
    "request_bytes_with_secret",
    [template for _, template in PARSER_ERRORS_WITH_A_TOKEN],
    ids=[name for name, _ in PARSER_ERRORS_WITH_A_TOKEN],
)
async def test_parser_errors_do_not_log_the_token(
    lab: Lab, caplog: pytest.LogCaptureFixture, request_bytes_with_secret: bytes
) -> None:
    """aiohttp's parser errors quote raw request bytes; the gateway's logs must not."""
    caplog.set_level(logging.DEBUG)
    mark = lab.mark()
    sent = await lab.send(request_bytes_with_secret % SECRET.encode())
    assert sent.reply.from_gateway_parser
    assert lab.forwarded(mark) == []
    logged = [
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    ]
    assert any("malformed HTTP request refused" in line for line in logged), logged
    assert not [line for line in logged if SECRET in line]


# -- the corpus as data --------------------------------------------------------------------


def _variant(case: FramingCase, targets: Targets) -> bytes:
    return case.build(targets.server)


def _fixed(data: bytes, targets: Targets) -> bytes:
    return data


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends whole, as data (tests/e2e replays them before the real
    Nova). SLOW_CLIENTS are sent piece by piece, and STUCK_CLIENTS connections hang in their
    headers, beside these; the suite sends the last normal pause while they hang."""
    return [
        *(
            AttackRequest(
                f"variant/{case.id}", partial(_variant, case), acts=case.expect == RUN, replies=2
            )
            for case in CASES
        ),
        AttackRequest(
            "pipelined-allowed-then-foreign",
            lambda t: allowed_then_foreign(t.server),
            acts=True,
            replies=2,
        ),
        AttackRequest(
            "pipelined-refused-then-allowed",
            lambda t: refused_then_allowed(t.server),
            acts=True,
            replies=2,
        ),
        AttackRequest(
            "pipelined-bodies-stay-with-their-requests",
            lambda t: bodies_then_unpause((t.server, *t.others)),
            acts=True,
            replies=4,
        ),
        AttackRequest(
            "request-hidden-in-a-get-body", lambda t: hidden_in_a_get_body(t.server), replies=2
        ),
        AttackRequest(
            "nothing-read-after-a-framing-error",
            lambda t: framing_error_then_action(t.server),
            replies=2,
        ),
        AttackRequest("expect-100-on-an-oversized-body", lambda t: oversized_expect_100(t.server)),
        AttackRequest("slow-clients-do-not-starve-others", lambda t: cl(t.server), acts=True),
        *(
            AttackRequest(
                f"parser-error-does-not-log-the-token/{name}",
                partial(_fixed, template % SECRET.encode()),
            )
            for name, template in PARSER_ERRORS_WITH_A_TOKEN
        ),
    ]


SLOW_CLIENTS: list[SlowClient] = [
    SLOW_LORIS_BODY,
    BODY_NEVER_COMES,
    ENDLESS_CHUNKS,
    *(broken_chunk_client(name, broken) for name, broken in BROKEN_CHUNKS),
]
