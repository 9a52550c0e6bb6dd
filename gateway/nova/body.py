"""The one strict JSON reader for request bodies, and Nova's action dispatch rule.

Owns turning body bytes into the value both the decision and Nova will see; it must
never accept bytes that Nova could read differently (duplicate keys, NaN, BOMs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from gateway.nova.catalogue import ActionSpec
from gateway.nova.faults import UNSUPPORTED_MEDIA, Fault, malformed_body, not_found

MAX_DEPTH = 32

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


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early once ``limit`` is passed."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def parse_json(raw: bytes) -> Any:
    """Decode a body as strict UTF-8 JSON; Nova's 400 for anything else."""
    try:
        # Nova decodes UTF-8 strictly before json.loads, so a BOM or UTF-16 is invalid.
        text = raw.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constants)
    except _Ambiguous as exc:
        raise Fault(400, f"Malformed request body: {exc}", reason="ambiguous_body") from None
    except (ValueError, RecursionError):
        raise malformed_body() from None
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise Fault(
            400,
            f"Malformed request body: nested deeper than {MAX_DEPTH} levels",
            reason="ambiguous_body",
        )
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
