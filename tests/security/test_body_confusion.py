"""Body confusion: a body any reader could read differently is refused; others go up unchanged.

Owns the JSON differential corpus (duplicate keys at any depth, two actions, escapes,
encodings, values I-JSON rules out, nesting, syntax, content types, compression, size), for
action and create bodies; it must never pass a case on the answer alone: each asserts the
bytes novasim received and what it ran.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import partial

import pytest

from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import AttackRequest, Header, Targets, request_bytes

JSON = "application/json"
LIMIT = 114688  # [limits] max_request_body_size, Nova's default


@dataclass(frozen=True)
class Ran:
    """Forwarded byte for byte; novasim answered ``status`` and logged ``actions``."""

    status: int
    actions: tuple[str, ...] = ()


PAUSED = Ran(202, ("pause",))
SNAPSHOT = Ran(202, ("createImage",))


@dataclass(frozen=True)
class BodyCase:
    id: str
    body: bytes
    expect: int | Ran
    content_type: str | None = JSON
    headers: tuple[Header, ...] = ()
    version: str | None = None


def _padded(size: int) -> bytes:
    """``{"pause": null}`` padded with insignificant spaces to exactly ``size`` bytes."""
    core = b'{"pause": null'
    return core + b" " * (size - len(core) - 1) + b"}"


def _nested_list(depth: int) -> bytes:
    return b'{"createImage": {"name": "a", "metadata": ' + b"[" * depth + b"]" * depth + b"}}"


PLAIN_PAUSE = b'{"pause": null}'

CASES: list[BodyCase] = [
    # Duplicate keys at any depth, two action keys (Bishop Fox; Nova keeps the last).
    BodyCase("dup-action-key", b'{"pause": null, "pause": null}', 400),
    BodyCase(
        "dup-action-key-other-values",
        b'{"lock": null, "lock": {"locked_reason": "x"}}',
        400,
        version="2.73",
    ),
    BodyCase("two-actions", b'{"pause": null, "unpause": null}', 400),
    BodyCase("two-actions-reversed", b'{"unpause": null, "pause": null}', 400),
    BodyCase("two-actions-one-unknown", b'{"pause": null, "x": 1}', 400),
    BodyCase("dup-nested", b'{"createImage": {"name": "a", "name": "b"}}', 400),
    BodyCase("dup-deep", b'{"createImage": {"name": "a", "metadata": {"k": "1", "k": "2"}}}', 400),
    BodyCase("dup-number-field", b'{"os-getConsoleOutput": {"length": 1, "length": 2}}', 400),
    BodyCase("dup-via-escape", b'{"pause": null, "\\u0070ause": null}', 400),
    BodyCase("dup-nested-via-escape", b'{"createImage": {"name": "a", "n\\u0061me": "b"}}', 400),
    BodyCase("dup-case-differs-is-two-keys", b'{"pause": null, "Pause": null}', 400),
    # Escaped keys are the same key to every parser: allowed, forwarded byte-identical.
    BodyCase("escaped-key", b'{"\\u0070ause": null}', PAUSED),
    BodyCase("escaped-whole-key", b'{"\\u0070\\u0061\\u0075\\u0073\\u0065": null}', PAUSED),
    BodyCase("escaped-upper-hex-key", b'{"\\u0050ause": null}', 400),  # "Pause"
    BodyCase("escaped-nested-key", b'{"createImage": {"n\\u0061me": "snap"}}', SNAPSHOT),
    BodyCase("escaped-solidus", b'{"createImage": {"name": "a\\/b"}}', SNAPSHOT),
    # Encodings: Nova decodes UTF-8 strictly.
    BodyCase("bom-utf8", b"\xef\xbb\xbf" + PLAIN_PAUSE, 400),
    BodyCase("utf16-le", '{"pause": null}'.encode("utf-16-le"), 400),
    BodyCase("utf16-be", '{"pause": null}'.encode("utf-16-be"), 400),
    BodyCase("utf16-with-bom", '{"pause": null}'.encode("utf-16"), 400),
    BodyCase("utf32", '{"pause": null}'.encode("utf-32"), 400),
    BodyCase(
        "utf16-with-charset",
        '{"pause": null}'.encode("utf-16"),
        415,  # a UTF-16 reader would read it: only application/json (UTF-8) goes up
        content_type="application/json; charset=utf-16",
    ),
    BodyCase("invalid-utf8", b'{"createImage": {"name": "\xff"}}', 400),
    BodyCase("overlong-utf8-a-in-key", b'{"p\xc1\xa1use": null}', 400),
    BodyCase("utf8-encoded-surrogate", b'{"createImage": {"name": "\xed\xa0\x80"}}', 400),
    BodyCase("latin1-key", b'{"p\xe4use": null}', 400),
    BodyCase("lone-surrogate-escape-in-key", b'{"pause\\ud800": null}', 400),
    # Strings I-JSON rules out: Python keeps a lone surrogate, other readers refuse it
    # or make it U+FFFD; noncharacters. A well-formed pair is one character to all.
    BodyCase("lone-surrogate-in-value", b'{"createImage": {"name": "a\\ud800"}}', 400),
    BodyCase("lone-low-surrogate", b'{"createImage": {"name": "\\udc00a"}}', 400),
    BodyCase("reversed-pair", b'{"createImage": {"name": "\\ude00\\ud83d"}}', 400),
    BodyCase(
        "lone-surrogate-in-metadata-key",
        b'{"createImage": {"name": "a", "metadata": {"k\\udbff": "v"}}}',
        400,
    ),
    BodyCase("noncharacter", b'{"createImage": {"name": "a\\uffff"}}', 400),
    BodyCase("raw-noncharacter", b'{"createImage": {"name": "a\xef\xb7\x90"}}', 400),
    BodyCase(
        "surrogate-pair",
        b'{"createImage": {"name": "a", "metadata": {"k": "\\ud83d\\ude00"}}}',
        SNAPSHOT,
    ),
    BodyCase("raw-control-char-in-string", b'{"createImage": {"name": "a\x01b"}}', 400),
    # Numbers.
    BodyCase("huge-exponent", b'{"os-getConsoleOutput": {"length": 1e400}}', 400),
    BodyCase("huge-integer", b'{"os-getConsoleOutput": {"length": 1' + b"0" * 5000 + b"}}", 400),
    BodyCase("nan", b'{"os-getConsoleOutput": {"length": NaN}}', 400),
    BodyCase("infinity", b'{"os-getConsoleOutput": {"length": Infinity}}', 400),
    BodyCase("minus-infinity", b'{"os-getConsoleOutput": {"length": -Infinity}}', 400),
    # I-JSON: integers beyond ±(2**53 - 1) (a double reader rounds them), numbers a double
    # cannot hold (1e308 is an integer to the schema, 1e-400 is 0.0 to Python).
    BodyCase("beyond-2-pow-53", b'{"os-getConsoleOutput": {"length": 9007199254740993}}', 400),
    BodyCase("at-2-pow-53", b'{"os-getConsoleOutput": {"length": 9007199254740992}}', 400),
    BodyCase(
        "safe-integer-max", b'{"os-getConsoleOutput": {"length": 9007199254740991}}', Ran(200)
    ),
    BodyCase("negative-beyond", b'{"os-getConsoleOutput": {"length": -9007199254740993}}', 400),
    BodyCase("integral-float-1e308", b'{"os-getConsoleOutput": {"length": 1e308}}', 400),
    BodyCase("underflow", b'{"os-getConsoleOutput": {"length": 1e-400}}', 400),
    BodyCase("float-integer", b'{"os-getConsoleOutput": {"length": 5.0}}', Ran(200)),
    BodyCase("numeric-string", b'{"os-getConsoleOutput": {"length": "5"}}', Ran(200)),
    # Nesting: bounded, never a 500 (RecursionError).
    BodyCase("nested-33", _nested_list(33), 400),
    BodyCase("nested-lists-100000", b"[" * 100000 + b"]" * 100000, 413),
    BodyCase("nested-lists-50000", b"[" * 50000 + b"]" * 50000, 400),
    BodyCase("nested-objects-15000", b'{"a":' * 15000 + b"null" + b"}" * 15000, 400),
    # Shapes action_peek refuses.
    BodyCase("empty", b"", 400),
    BodyCase("whitespace-only", b"   ", 400),
    BodyCase("empty-object", b"{}", 400),
    BodyCase("null", b"null", 404),
    BodyCase("one-element-list", b'[{"pause": null}]', 404),
    BodyCase("one-char-string", b'"a"', 404),
    BodyCase("string", b'"pause"', 400),
    BodyCase("number", b"1", 404),
    BodyCase("true", b"true", 404),
    BodyCase("empty-list", b"[]", 400),
    BodyCase("capitalised-action", b'{"Pause": null}', 400),
    BodyCase("key-with-space", b'{" pause": null}', 400),
    BodyCase("key-with-nul", b'{"pause\\u0000": null}', 400),
    # Syntax.
    BodyCase("whitespace-before", b"\r\n\t " + PLAIN_PAUSE, PAUSED),
    BodyCase("whitespace-after", PLAIN_PAUSE + b"\r\n ", PAUSED),
    BodyCase("trailing-garbage", PLAIN_PAUSE + b" x", 400),
    BodyCase("two-documents", PLAIN_PAUSE + b'{"unpause": null}', 400),
    BodyCase("trailing-comma", b'{"pause": null,}', 400),
    BodyCase("block-comment", b'{"pause": null /* x */}', 400),
    BodyCase("line-comment", b'// x\n{"pause": null}', 400),
    BodyCase("single-quotes", b"{'pause': null}", 400),
    BodyCase("unquoted-key", b"{pause: null}", 400),
    BodyCase("nul-after-document", PLAIN_PAUSE + b"\x00", 400),
    BodyCase("yaml", b"pause: null", 400),
    # Content types: a body goes up as application/json only. Nova reads JSON from no
    # type, text/plain, its vendor type and any charset too; a WAF, a proxy or an audit
    # pipeline may not (or decode another charset): the gateway refuses them with 415.
    BodyCase("text-plain", PLAIN_PAUSE, 415, content_type="text/plain"),
    BodyCase("no-content-type", PLAIN_PAUSE, 415, content_type=None),
    BodyCase("empty-content-type", PLAIN_PAUSE, 415, content_type=""),
    BodyCase("json-charset", PLAIN_PAUSE, PAUSED, content_type="application/json; charset=UTF-8"),
    BodyCase(
        "json-charset-no-space", PLAIN_PAUSE, PAUSED, content_type="application/json;charset=utf-8"
    ),
    BodyCase(
        "json-other-charset", PLAIN_PAUSE, 415, content_type="application/json; charset=utf-16"
    ),
    BodyCase("json-latin1", PLAIN_PAUSE, 415, content_type="application/json; charset=latin-1"),
    BodyCase("json-other-parameter", PLAIN_PAUSE, 415, content_type="application/json; v=1"),
    BodyCase(
        "vnd-openstack", PLAIN_PAUSE, 415, content_type="application/vnd.openstack.compute+json"
    ),
    BodyCase("text-plain-charset", PLAIN_PAUSE, 415, content_type="text/plain; charset=utf-8"),
    BodyCase("form-urlencoded", PLAIN_PAUSE, 415, content_type="application/x-www-form-urlencoded"),
    BodyCase("xml", PLAIN_PAUSE, 415, content_type="application/xml"),
    BodyCase("multipart", PLAIN_PAUSE, 415, content_type="multipart/form-data; boundary=x"),
    BodyCase("json-patch", PLAIN_PAUSE, 415, content_type="application/json-patch+json"),
    BodyCase("content-type-list", PLAIN_PAUSE, 415, content_type="application/json, text/xml"),
    # aiohttp's parser refuses a second Content-Type (a singleton) before the gate.
    BodyCase(
        "two-content-types",
        PLAIN_PAUSE,
        400,
        content_type=JSON,
        headers=(("Content-Type", "application/xml"),),
    ),
    # Compression: the gateway validates exactly the bytes Nova reads, so none is accepted.
    BodyCase("gzip", gzip.compress(PLAIN_PAUSE), 415, headers=(("Content-Encoding", "gzip"),)),
    BodyCase(
        "deflate", zlib.compress(PLAIN_PAUSE), 415, headers=(("Content-Encoding", "deflate"),)
    ),
    BodyCase("gzip-label-plain-body", PLAIN_PAUSE, 415, headers=(("Content-Encoding", "gzip"),)),
    # aiohttp decodes no body on the API listener: brotli reaches the gate like the rest.
    BodyCase("br", PLAIN_PAUSE, 415, headers=(("Content-Encoding", "br"),)),
    BodyCase(
        "gzip-upper-case", gzip.compress(PLAIN_PAUSE), 415, headers=(("Content-Encoding", "GZIP"),)
    ),
    BodyCase(
        "identity-then-gzip", PLAIN_PAUSE, 415, headers=(("Content-Encoding", "identity, gzip"),)
    ),
    BodyCase("identity", PLAIN_PAUSE, PAUSED, headers=(("Content-Encoding", "identity"),)),
    # Two lines: aiohttp's parser inflates by the last one, so every line is checked.
    BodyCase(
        "identity-line-then-gzip-line",
        gzip.compress(PLAIN_PAUSE),
        415,
        headers=(("Content-Encoding", "identity"), ("Content-Encoding", "gzip")),
    ),
    BodyCase(
        "identity-line-then-gzip-line-plain-body",
        PLAIN_PAUSE,
        415,
        headers=(("Content-Encoding", "identity"), ("Content-Encoding", "gzip")),
    ),
    BodyCase(
        "gzip-line-then-identity-line",
        gzip.compress(PLAIN_PAUSE),
        415,
        headers=(("Content-Encoding", "gzip"), ("Content-Encoding", "identity")),
    ),
    BodyCase(
        "identity-twice",
        PLAIN_PAUSE,
        PAUSED,
        headers=(("Content-Encoding", "identity"), ("Content-Encoding", "identity")),
    ),
    # Size: Nova's sizelimit (114688), before authentication.
    BodyCase("over-the-limit", _padded(LIMIT + 1), 413),
    BodyCase("at-the-limit", _padded(LIMIT), PAUSED),
]


def variant_request(case: BodyCase, server: str) -> bytes:
    """The member's action request on ``server`` with the case's body and headers."""
    headers: list[Header] = [("X-Auth-Token", "alice:p1")]
    if case.content_type is not None:
        headers.append(("Content-Type", case.content_type))
    if case.version is not None:
        headers.append(("OpenStack-API-Version", f"compute {case.version}"))
    headers.extend(case.headers)
    return request_bytes("POST", ACTION_PATH.format(server), headers, case.body)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_body_variant(lab: Lab, case: BodyCase) -> None:
    server = lab.server("p1")
    target = ACTION_PATH.format(server)
    mark = lab.mark()
    reply = (await lab.send(variant_request(case, server))).reply
    forwarded = lab.forwarded(mark)
    if isinstance(case.expect, int):
        assert reply.status == case.expect, reply.body
        # A refusal as Nova's stack writes it, or the HTTP parser's own 400; never a 500.
        assert reply.nova_shaped or reply.from_gateway_parser, reply.body
        assert forwarded == []
        assert lab.actions_run(server) == []
        assert lab.vm_state(server) == "active"
        return
    assert reply.status == case.expect.status, reply.body
    assert [(r.method, r.path, r.body) for r in forwarded] == [("POST", target, case.body)]
    sent_type = forwarded[0].header("Content-Type")
    assert sent_type == case.content_type
    assert lab.actions_run(server) == list(case.expect.actions)


# -- create bodies: the same reader and the same media type -----------------------------

SERVERS = "/v2.1/servers"
IMAGE = "c0ffee00-0000-4000-8000-000000000001"


def _create(name: str = '"web"', extra: str = "") -> bytes:
    return (
        f'{{"server": {{"name": {name}, "flavorRef": "1", "imageRef": "{IMAGE}"{extra}}}}}'
    ).encode()


@dataclass(frozen=True)
class CreateCase:
    id: str
    body: bytes
    expect: int  # 202: forwarded byte for byte and created; otherwise refused, not forwarded
    content_type: str | None = JSON


CREATE_CASES: list[CreateCase] = [
    CreateCase("json", _create(), 202),
    CreateCase("text-plain", _create(), 415, content_type="text/plain"),
    CreateCase("no-content-type", _create(), 415, content_type=None),
    CreateCase(
        "vnd-openstack", _create(), 415, content_type="application/vnd.openstack.compute+json"
    ),
    CreateCase("xml", _create(), 415, content_type="application/xml"),
    CreateCase("duplicate-name", _create(extra=', "name": "other"'), 400),
    CreateCase("lone-surrogate-name", _create('"web\\ud800"'), 400),
    CreateCase("noncharacter-metadata", _create(extra=', "metadata": {"k": "\\ufffe"}'), 400),
    CreateCase("huge-min-count", _create(extra=', "min_count": 18014398509481984'), 400),
    CreateCase("overflowing-max-count", _create(extra=', "max_count": 1e999'), 400),
    CreateCase("nan-min-count", _create(extra=', "min_count": NaN'), 400),
    CreateCase("trailing-document", _create() + b'{"server": {}}', 400),
]


def create_request(case: CreateCase) -> bytes:
    headers: list[Header] = [("X-Auth-Token", "alice:p1")]
    if case.content_type is not None:
        headers.append(("Content-Type", case.content_type))
    return request_bytes("POST", SERVERS, headers, case.body)


@pytest.mark.parametrize("case", CREATE_CASES, ids=[case.id for case in CREATE_CASES])
async def test_create_body(lab: Lab, case: CreateCase) -> None:
    mark = lab.mark()
    before = len(lab.upstream.sim.store.servers)
    reply = (await lab.send(create_request(case))).reply
    forwarded = lab.forwarded(mark)
    assert reply.status == case.expect, reply.body
    if case.expect == 202:
        assert [(r.method, r.path, r.body) for r in forwarded] == [("POST", SERVERS, case.body)]
        assert forwarded[0].header("Content-Type") == case.content_type
        assert len(lab.upstream.sim.store.servers) == before + 1
        return
    assert reply.fault is not None, reply.body
    assert forwarded == []
    assert len(lab.upstream.sim.store.servers) == before


def test_bodies_are_distinct() -> None:
    """Data only: every case is a different request."""
    keys = [(c.body, c.content_type, c.headers, c.version) for c in CASES]
    assert len(keys) == len(set(keys))


def _variant(case: BodyCase, targets: Targets) -> bytes:
    return variant_request(case, targets.server)


def _create_variant(case: CreateCase, targets: Targets) -> bytes:
    return create_request(case)


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends, as data (tests/e2e replays them before the real Nova).

    Create bodies the gateway refuses only: a replay must not boot servers.
    """
    return [
        *(
            AttackRequest(
                f"variant/{case.id}",
                partial(_variant, case),
                acts=isinstance(case.expect, Ran) and bool(case.expect.actions),
            )
            for case in CASES
        ),
        *(
            AttackRequest(f"create/{case.id}", partial(_create_variant, case))
            for case in CREATE_CASES
            if case.expect != 202
        ),
    ]


@pytest.mark.parametrize("label", ["gzip", "deflate"])
async def test_a_refused_compressed_body_is_drained_never_inflated(lab: Lab, label: str) -> None:
    """The gate refuses a compressed body without reading it; aiohttp must not inflate it
    either. It once did while draining the refused body: a body labelled gzip that was not
    made its parser fail, the connection was reset, and under load the 415 was lost with
    it. Now the refused body is drained as bytes and the connection serves the next
    request."""
    server = lab.server("p1")
    headers: list[Header] = [
        ("X-Auth-Token", "alice:p1"),
        ("Content-Type", JSON),
        ("Content-Encoding", label),
    ]
    refused = request_bytes(
        "POST", ACTION_PATH.format(server), headers, PLAIN_PAUSE * 2000, close=False
    )
    then = request_bytes("GET", f"/v2.1/servers/{server}", [("X-Auth-Token", "alice:p1")])
    mark = lab.mark()
    sent = await lab.send(refused + then, replies=2)
    assert sent.statuses == [415, 200]
    assert [(r.method, r.path) for r in lab.forwarded(mark)] == [("GET", f"/v2.1/servers/{server}")]
    assert lab.actions_run(server) == []
