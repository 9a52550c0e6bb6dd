"""The one strict JSON reader for request bodies, and Nova's action dispatch rule.

Owns turning body bytes into the value both the decision and Nova will see; it must
never accept bytes that Nova, or any other JSON reader on the way, could read differently
(duplicate keys, NaN, BOMs, and what I-JSON (RFC 7493) rules out: lone surrogates,
noncharacters, numbers a double cannot hold).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from gateway.nova.catalogue import ActionSpec
from gateway.nova.faults import UNSUPPORTED_MEDIA, Fault, malformed_body, not_found

MAX_DEPTH = 32
# I-JSON (RFC 7493 §2.2): integers beyond ±(2**53 - 1) are read exactly by Python and
# rounded by every reader that holds numbers as doubles (JavaScript, many proxies, SIEMs).
SAFE_INTEGER = 2**53 - 1
# int() of more digits than this is refused by Python itself (ValueError) and is no JSON
# any reader agrees on either; checking the length first keeps the conversion cheap.
_MAX_INTEGER_DIGITS = len(str(SAFE_INTEGER)) + 1
# I-JSON §2.1: surrogates (a lone one survives Python's json as an unpaired code point;
# other readers refuse it or turn it into U+FFFD) and noncharacters (U+FDD0..U+FDEF and
# the last two code points of every plane).
_NONCHARACTERS = "".join(chr(plane << 16 | low) for plane in range(17) for low in (0xFFFE, 0xFFFF))
_NOT_INTERCHANGEABLE = re.compile(f"[\\ud800-\\udfff\\ufdd0-\\ufdef{_NONCHARACTERS}]")
# U+FDD0..U+FDEF encode as EF B7 90..AF; U+xFFFE and U+xFFFF end in BF BE and BF BF.
_NONCHARACTER_BYTES = (b"\xef\xb7", b"\xbf\xbe", b"\xbf\xbf")

# Content types Nova treats as JSON; absent, empty and text/plain count as "no type".
ACCEPTED_CONTENT_TYPES = frozenset(
    {"", "text/plain", "application/json", "application/vnd.openstack.compute+json"}
)


class _Ambiguous(ValueError):
    """Input Nova would read one way and a careless proxy another."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Nova keeps the last value; refusing leaves no room for a differential.
            raise _Ambiguous(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise _Ambiguous(f"{name} is not JSON")


def _integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INTEGER_DIGITS or abs(number := int(text)) > SAFE_INTEGER:
        raise _Ambiguous(f"the integer {_abridged(text)} is beyond ±(2**53 - 1)")
    return number


def _decimal(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise _Ambiguous(f"the number {_abridged(text)} overflows a double")
    if abs(number) > SAFE_INTEGER:
        # Every double this large is an integer: a JSON Schema validator counts it as
        # one, and other readers hold it as an exact decimal or a rounded double.
        raise _Ambiguous(f"the number {_abridged(text)} is beyond ±(2**53 - 1)")
    mantissa = re.split("[eE]", text, maxsplit=1)[0]
    if number == 0 and mantissa.strip("-+.0"):
        # 1e-400 is 0.0 to a double and a tiny non-zero number to a decimal reader.
        raise _Ambiguous(f"the number {_abridged(text)} underflows a double")
    return number


def _abridged(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}..."


def _check_value(value: Any, limit: int) -> None:
    """Nesting no deeper than ``limit`` and every string (keys too) interchangeable;
    stops at the first fault found."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            raise _Ambiguous(f"nested deeper than {limit} levels")
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(key)
                stack.append((child, level + 1))
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)


def _check_string(text: str) -> None:
    # Fast paths at C speed (a 64 KiB user_data must not cost a regex scan): ASCII holds
    # neither; a lone surrogate cannot be encoded; every noncharacter's UTF-8 has one of
    # three byte pairs, which other characters seldom have.
    if text.isascii():
        return
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        pass  # a lone surrogate: the scan below names it
    else:
        if not any(pair in encoded for pair in _NONCHARACTER_BYTES):
            return
    found = _NOT_INTERCHANGEABLE.search(text)
    if found is not None:
        point = ord(found.group())
        kind = "a lone surrogate" if 0xD800 <= point <= 0xDFFF else "a noncharacter"
        raise _Ambiguous(f"a string holds {kind} (U+{point:04X})")


# Small bodies already found strict I-JSON: read again with json's plain reader, which
# gives the same value for them (no duplicate keys, ints and floats as the hooks return
# them) without a Python call per object and number. Forgotten all at once when full.
_STRICT_MAX_BODY = 512
_STRICT_REMEMBERED = 4096
_strict: set[bytes] = set()


def parse_json(raw: bytes) -> Any:
    """Decode a body as strict UTF-8 I-JSON; Nova's 400 for anything else."""
    if raw in _strict:
        return json.loads(raw.decode("utf-8"))
    value = _parse_strict(raw)
    if len(raw) <= _STRICT_MAX_BODY:
        if len(_strict) >= _STRICT_REMEMBERED:
            _strict.clear()
        _strict.add(raw)
    return value


def _parse_strict(raw: bytes) -> Any:
    try:
        # Nova decodes UTF-8 strictly before json.loads, so a BOM or UTF-16 is invalid.
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_constant=_no_constants,
            parse_int=_integer,
            parse_float=_decimal,
        )
        _check_value(value, MAX_DEPTH)
    except _Ambiguous as exc:
        raise Fault(400, f"Malformed request body: {exc}", reason="ambiguous_body") from None
    except (ValueError, RecursionError):
        raise malformed_body() from None
    return value


def check_content_type(content_type: str | None) -> None:
    """Nova's 415 for media types it does not read as JSON (compared case-sensitively,
    as webob hands Nova the media type: ``APPLICATION/JSON`` is refused)."""
    media = (content_type or "").split(";", 1)[0].strip()
    if media not in ACCEPTED_CONTENT_TYPES:
        raise Fault(415, UNSUPPORTED_MEDIA, reason="content_type")


def check_content_encoding(content_encoding: str | None) -> None:
    """Refuse compressed bodies: the gateway validates exactly the bytes Nova reads."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise Fault(415, "Unsupported Content-Encoding", reason="content_encoding")


def dispatch_action(value: Any, actions: Mapping[str, ActionSpec]) -> tuple[ActionSpec, str]:
    """Nova's ``action_peek``: exactly one key, and it must name an action."""
    try:
        count = len(value)
    except TypeError:
        raise not_found("action_body_not_object") from None
    if count != 1:
        raise malformed_body("action_key_count")
    if not isinstance(value, dict):
        # A one-element list or one-character string: Nova's AttributeError → 404.
        raise not_found("action_body_not_object")
    (key,) = value
    spec = actions.get(key)
    if spec is None:
        raise Fault(400, f"There is no such action: {key}", reason="unknown_action")
    return spec, key
