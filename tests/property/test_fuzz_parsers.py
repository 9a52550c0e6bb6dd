"""Fuzzing the gateway's three readers: action bodies, request targets, microversion headers.

Owns the properties every input must keep (only a Fault, never a 5xx one; what is
accepted reads the same to Nova; what is forwarded decides the same again); it must never
need a socket, and stays bounded (NOVA_GATEWAY_FUZZ_EXAMPLES raises the example count).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway import forwardable
from gateway.nova import body, microversion, routing
from gateway.nova.catalogue import BY_KEY, MAX_VERSION, MIN_VERSION
from gateway.nova.faults import Fault

EXAMPLES = int(os.environ.get("NOVA_GATEWAY_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(
    max_examples=EXAMPLES or 400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
SERVER_ID = "9b0c8d2e-1111-4222-8333-444455556666"
MAX_PATH = 2048

# -- action bodies -------------------------------------------------------------------------

_ACTION_KEYS = sorted(BY_KEY)
_keys = st.sampled_from([*_ACTION_KEYS, "Pause", "x", "", "pause\u0000", "p\u00e1use"]) | st.text(
    max_size=6
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    # Lone surrogates (json.dumps escapes them as \udXXX), a pair, a noncharacter.
    | st.sampled_from(["\ud800", "a\udfff", "\ud83d\ude00", "\uffff"])
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


def _escape_key(key: str, escape: bool) -> str:
    """A JSON string for ``key``, with its first character as a \\u escape when asked."""
    if not escape or not key:
        return json.dumps(key)
    return '"' + f"\\u{ord(key[0]):04x}" + json.dumps(key)[2:]


@st.composite
def _object_texts(draw: st.DrawFn) -> bytes:
    """JSON object text built member by member: duplicate keys and escapes allowed."""
    members: list[tuple[str, Any, bool]] = draw(
        st.lists(st.tuples(_keys, _values, st.booleans()), min_size=0, max_size=3)
    )
    duplicate: bool = draw(st.booleans())
    if members and duplicate:
        members.append(draw(st.sampled_from(members)))  # a duplicate key, maybe escaped
    text = "{" + ", ".join(f"{_escape_key(k, e)}: {json.dumps(v)}" for k, v, e in members) + "}"
    prefix = draw(st.sampled_from(["", " ", "\ufeff", "\r\n"]))
    suffix = draw(st.sampled_from(["", " ", "x", "}", "\x00", '{"pause": null}']))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16", "latin-1"]))
    try:
        return (prefix + text + suffix).encode(encoding)
    except UnicodeEncodeError:
        return (prefix + text + suffix).encode("utf-8", "surrogatepass")


_bodies = (
    _object_texts()
    | st.builds(
        lambda key, value: json.dumps({key: value}).encode(), st.sampled_from(_ACTION_KEYS), _values
    )
    | _values.map(lambda value: json.dumps(value).encode())
    | st.binary(max_size=64)
    | st.sampled_from(
        [
            b"",
            b"[" * 5000,
            b'{"a":' * 2000,
            b"1e400",
            b"1e-400",
            b"-9007199254740993",
            b"9007199254740991",
            b"NaN",
            b'{"pause": NaN}',
            b"\xef\xbb\xbf{}",
        ]
    )
)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


@FUZZ
@given(raw=_bodies)
def test_body_reader_and_dispatch(raw: bytes) -> None:
    """Only 4xx Faults; an accepted body reads the same first-wins, last-wins and to Nova,
    and Nova's action_peek picks the key the gateway dispatched on."""
    try:
        value = body.parse_json(raw)
    except Fault as fault:
        assert 400 <= fault.status < 500
        return
    text = raw.decode("utf-8")  # strict, as Nova: accepted bytes are UTF-8
    nova_reads = json.loads(text)  # Python json, last value wins, as oslo jsonutils
    assert nova_reads == value
    assert json.loads(text, object_pairs_hook=_first_wins) == value
    # Readers that hold every number as a double (JavaScript's reading) read the same
    # numbers (Python compares int and float exactly) ...
    assert json.loads(text, parse_int=float) == value
    # ... and readers that keep strings as strict UTF-8 (Go's, Rust's) the same strings.
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    try:
        spec, key = body.dispatch_action(value, BY_KEY)
    except Fault as fault:
        assert fault.status in (400, 404)
        return
    assert isinstance(nova_reads, dict) and list(nova_reads) == [key] and spec.key == key


def _typed(value: Any) -> Any:
    """A value with each scalar's type beside it (1 == 1.0 == True to ==)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value), value)


@FUZZ
@given(raw=_bodies)
def test_a_body_read_again_reads_the_same(raw: bytes) -> None:
    """The reader remembers small bodies it accepted and reads them again with json's
    plain reader: the same value, type for type, and the same refusal for the rest."""
    try:
        first = body.parse_json(raw)
    except Fault as fault:
        with pytest.raises(Fault) as again:
            body.parse_json(raw)
        assert (again.value.status, again.value.message) == (fault.status, fault.message)
        return
    assert _typed(body.parse_json(raw)) == _typed(first)


# -- request targets -----------------------------------------------------------------------

_FRAGMENTS = [
    "/",
    "//",
    "v2.1",
    "V2.1",
    "v2",
    "servers",
    "Servers",
    "action",
    "Action",
    ".json",
    SERVER_ID,
    "detail",
    "0abc",
    "p1",
    ".",
    "..",
    "%2F",
    "%2f",
    "%2E",
    "%2e",
    "%61",
    "%41",
    "%00",
    "%25",
    "%20",
    "%C1%A1",
    "%3B",
    ";",
    ";x=1",
    "\\",
    "#",
    "?",
    "?x=1",
    "%",
    "%zz",
    "a",
    "~",
    "%7E",
    "-",
    "\u00e1",
    " ",
]
_canonical_parts = ["/v2.1", "/servers/", SERVER_ID, "/action"]


@st.composite
def _targets(draw: st.DrawFn) -> str:
    """Mostly near-misses of the canonical action path, sometimes anything printable."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E)))
    parts = list(_canonical_parts)
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(parts)))
        parts.insert(index, draw(st.sampled_from(_FRAGMENTS)))
    if draw(st.booleans()) and len(parts) > 1:
        del parts[draw(st.integers(0, len(parts) - 1))]
    return "".join(parts)


# Nova's view of a path, normalised as hard as any WSGI stack might: percent-decoded,
# empty segments merged, dot segments resolved. An action to Nova is this shape.
_NOVA_ACTION = re.compile(r"^/v2\.1(?:/[0-9a-f-]+)?/servers/([^/]+)/action$")


def _nova_normalised(path: str) -> str:
    decoded = unquote(path, encoding="latin-1")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


@FUZZ
@given(method=st.sampled_from(["POST", "GET", "PUT", "DELETE", "HEAD", "PATCH"]), target=_targets())
@example(method="POST", target=f"/v2.1/servers/{SERVER_ID}/action/")  # found by the fuzzer
def test_target_canonicaliser(method: str, target: str) -> None:
    """Only 4xx Faults; the forwarded target classifies the same again; and no path Nova
    would route to the action handler passes as anything but that very action: decided
    as it, or refused before anything goes up."""
    try:
        path, query = routing.split_target(target, MAX_PATH)
        route = routing.classify(method, path, query)
    except Fault as fault:
        assert 400 <= fault.status < 500
        return
    # The proxy forwards call.target unchanged: deciding it again gives the same route.
    assert routing.classify(method, *routing.split_target(target, MAX_PATH)) == route
    assert route.path + (f"?{route.query}" if "?" in target else "") == target
    nova = _NOVA_ACTION.match(_nova_normalised(path))
    if method == "POST" and nova is not None:
        if route.kind is routing.RouteKind.SERVER_ACTION:
            assert route.server_id is not None
            assert unquote(route.server_id, encoding="latin-1") == nova.group(1)
        else:
            # Another spelling of the action path (e.g. a trailing slash): the gate answers
            # Nova's router's 404 for it after authentication, and nothing goes up.
            with pytest.raises(Fault) as refused:
                forwardable.check_method(method, route)
            assert refused.value.status == 404, (target, route)
    if route.kind is routing.RouteKind.SERVER_ACTION:
        assert method == "POST" and path.endswith("/action")


# -- microversion headers --------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        microversion.STANDARD_HEADER,
        microversion.LEGACY_HEADER,
        "openstack-api-version",
        "X-OPENSTACK-NOVA-API-VERSION",
        "X-Other",
    ]
)
_VERSIONS = st.sampled_from(
    ["2.1", "2.43", "2.44", "2.104", "2.105", "latest", "LATEST", "2.043", "3.0", "2.0", "", " "]
) | st.text(max_size=6)
_SERVICES = st.sampled_from(["compute", "COMPUTE", "volume", "", "compute2"])


@st.composite
def _version_values(draw: st.DrawFn) -> str:
    entries = draw(
        st.lists(st.tuples(_SERVICES, _VERSIONS, st.sampled_from([" ", "  ", "\t"])), max_size=3)
    )
    if draw(st.booleans()):
        return ", ".join(f"{service}{gap}{version}" for service, version, gap in entries)
    return draw(_VERSIONS)


@FUZZ
@given(headers=st.lists(st.tuples(_NAMES, _version_values()), max_size=4))
def test_microversion_negotiation(headers: list[tuple[str, str]]) -> None:
    """Only 400/406; the result is in range and never 'latest'; the headers forwarded for
    it make Nova (reading them the same way) decide exactly that version again."""
    try:
        version = microversion.negotiate(headers, MIN_VERSION, MAX_VERSION)
    except Fault as fault:
        assert fault.status in (400, 406)
        return
    assert MIN_VERSION <= version <= MAX_VERSION
    forwarded = list(microversion.forwarded_headers(version).items())
    assert microversion.negotiate(forwarded, MIN_VERSION, MAX_VERSION) == version
    assert all("latest" not in value for _, value in forwarded)
    # The two forwarded headers agree with each other whichever one Nova reads.
    legacy_only = [(k, v) for k, v in forwarded if k == microversion.LEGACY_HEADER]
    assert microversion.negotiate(legacy_only, MIN_VERSION, MAX_VERSION) == version
