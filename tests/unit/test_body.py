"""The strict body reader and Nova's action dispatch table (nova-actions.md §A.3)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.nova.body import (
    MAX_DEPTH,
    check_content_encoding,
    check_content_type,
    dispatch_action,
    parse_json,
)
from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import Fault


def refusal(raw: bytes) -> Fault:
    with pytest.raises(Fault) as caught:
        dispatch_action(parse_json(raw), BY_KEY)
    return caught.value


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"", 400, "Malformed request body"),
        (b"{", 400, "Malformed request body"),
        (b"\xff\xfe{}", 400, "Malformed request body"),
        (b"{}", 400, "Malformed request body"),
        (b'{"lock": null, "unlock": null}', 400, "Malformed request body"),
        (b'{"foo": null}', 400, "There is no such action: foo"),
        (b'{"Reboot": {"type": "HARD"}}', 400, "There is no such action: Reboot"),
        (b"[1]", 404, "The resource could not be found."),
        (b'"a"', 404, "The resource could not be found."),
        (b"1", 404, "The resource could not be found."),
        (b"true", 404, "The resource could not be found."),
        (b"null", 404, "The resource could not be found."),
        (b"[1, 2]", 400, "Malformed request body"),
        (b'"ab"', 400, "Malformed request body"),
        (b'""', 400, "Malformed request body"),
        (b"[]", 400, "Malformed request body"),
    ],
)
def test_dispatch_matches_nova(raw: bytes, status: int, message: str) -> None:
    fault = refusal(raw)
    assert (fault.status, fault.message) == (status, message)


def test_one_known_key_dispatches() -> None:
    spec, key = dispatch_action(parse_json(b' \n{"pause": null}'), BY_KEY)
    assert key == "pause" and spec.key == "pause"


def test_unicode_escaped_key_is_the_decoded_key() -> None:
    spec, _ = dispatch_action(parse_json(b'{"\\u0070ause": null}'), BY_KEY)
    assert spec.key == "pause"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"lock": null, "lock": {"locked_reason": "x"}}',
        b'{"pause": null, "\\u0070ause": {}}',
        b'{"rebuild": {"imageRef": "a", "metadata": {"k": "1", "k": "2"}}}',
        b'{"x": [{"a": 1, "a": 2}]}',
    ],
)
def test_duplicate_keys_at_any_depth_are_refused(raw: bytes) -> None:
    with pytest.raises(Fault) as caught:
        parse_json(raw)
    assert caught.value.status == 400 and caught.value.reason == "ambiguous_body"


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_non_json_constants_are_refused(raw: bytes) -> None:
    with pytest.raises(Fault) as caught:
        parse_json(raw)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        b"\xef\xbb\xbf{}",  # UTF-8 BOM: Nova decodes strictly and json refuses the BOM
        '{"pause": null}'.encode("utf-16"),
        '{"pause": null}'.encode("utf-32"),
        b'{"a": "\xc3"}',
        b"1" * 5000,  # beyond Python's integer digit limit
    ],
)
def test_encodings_nova_cannot_read_are_400(raw: bytes) -> None:
    with pytest.raises(Fault) as caught:
        parse_json(raw)
    assert caught.value.status == 400


def test_nesting_is_bounded() -> None:
    parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
    for depth in (MAX_DEPTH + 1, 50_000):
        with pytest.raises(Fault):
            parse_json(b"[" * depth + b"]" * depth)


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        # I-JSON (RFC 7493): numbers a double holds, integers within ±(2**53 - 1).
        (b'{"a": 9007199254740992}', "the integer 9007199254740992"),
        (b'{"a": -9007199254740993}', "the integer -9007199254740993"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "the integer 10000000000000000000..."),
        (b'{"a": 1e400}', "the number 1e400 overflows a double"),
        (b'{"a": -1.5E309}', "the number -1.5E309 overflows a double"),
        (b'{"a": 1e300}', "the number 1e300 is beyond"),
        (b'{"a": 1e-400}', "the number 1e-400 underflows a double"),
        # Strings: no surrogate survives alone, no noncharacter.
        (b'{"a": "\\ud800"}', "a lone surrogate (U+D800)"),
        (b'{"a": "x\\udfffy"}', "a lone surrogate (U+DFFF)"),
        (b'{"\\ud800": 1}', "a lone surrogate (U+D800)"),
        (b'{"a": "\\ude00\\ud83d"}', "a lone surrogate"),  # a pair in the wrong order
        (b'{"a": ["\\uffff"]}', "a noncharacter (U+FFFF)"),
        (b'{"a": "\\ufdd0"}', "a noncharacter (U+FDD0)"),
        ('{"a": "\U0010fffe"}'.encode(), "a noncharacter (U+10FFFE)"),
    ],
)
def test_values_other_readers_read_differently_are_refused(raw: bytes, names: str) -> None:
    with pytest.raises(Fault) as caught:
        parse_json(raw)
    fault = caught.value
    assert (fault.status, fault.reason, fault.name) == (400, "ambiguous_body", "badRequest")
    assert fault.message.startswith("Malformed request body: ") and names in fault.message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 9007199254740991}',
        b'{"a": -9007199254740991}',
        b'{"a": 1.5e10}',
        b'{"a": 0.0e-400}',
        b'{"a": -0}',
        b'{"a": "\\ud83d\\ude00"}',  # a surrogate pair is one character
        '{"a": "\ud7ff\ue000\ufffd"}'.encode(),  # the neighbours of what is refused
    ],
)
def test_interchangeable_values_pass(raw: bytes) -> None:
    parse_json(raw)


def test_values_round_trip() -> None:
    value: Any = parse_json(b'{"a": [1, 2.5, "\\u00e9", true, null, {"b": {}}]}')
    assert value == {"a": [1, 2.5, "é", True, None, {"b": {}}]}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "application/json",
        "application/json; charset=UTF-8",
        "application/vnd.openstack.compute+json",
    ],
)
def test_content_types_nova_accepts(content_type: str | None) -> None:
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type", ["application/xml", "text/html", "multipart/form-data", "APPLICATION/JSON"]
)
def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(Fault) as caught:
        check_content_type(content_type)
    assert caught.value.status == 415 and caught.value.name == "badMediaType"
    assert caught.value.message == "Unsupported Content-Type"


def test_compressed_bodies_are_refused() -> None:
    check_content_encoding(None)
    check_content_encoding("identity")
    for encoding in ("gzip", "deflate", "br", "gzip, identity"):
        with pytest.raises(Fault) as caught:
            check_content_encoding(encoding)
        assert caught.value.status == 415
