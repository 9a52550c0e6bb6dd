"""The value types Nova's request schemas are built from (nova/api/validation/
parameter_types.py), with the printable-character classes Nova derives from Unicode.

Owns these fragments as plain data in Nova's key order (which decides the first error
Nova reports); it must never hold a whole request schema nor validate anything.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]

# --- character classes --------------------------------------------------------------------
# Nova scans U+0000..U+FFFE (range(0xFFFF)) and writes each run of accepted characters as
# "a-z" (a lone character alone); the run still open at U+FFFE is always written "x-y".


def _printable(char: str) -> bool:
    """Not a control/format/unassigned character, and no separator but a plain space (Zs)."""
    category = unicodedata.category(char)
    return category[0] != "C" and (category[0] != "Z" or category == "Zs")


def _runs(accepted: Iterator[bool]) -> Iterator[tuple[int, int]]:
    start: int | None = None
    code = -1
    for code, taken in enumerate(accepted):
        if taken and start is None:
            start = code
        elif not taken and start is not None:
            yield start, code - 1
            start = None
    if start is not None:
        yield start, code


def character_class(with_spaces: bool = True, inverted: bool = False) -> str:
    """The body of a ``[...]`` class, written exactly as Nova's _build_regex_range writes it."""
    chars = (chr(code) for code in range(0xFFFF))
    accepted = (
        (_printable(c) and (with_spaces or unicodedata.category(c) != "Zs")) != inverted
        for c in chars
    )
    parts = []
    for start, end in _runs(accepted):
        single = start == end and end != 0xFFFE
        first, last = re.escape(chr(start)), re.escape(chr(end))
        parts.append(first if single else f"{first}-{last}")
    return "".join(parts)


_PRINTABLE = character_class()
_EDGE = character_class(with_spaces=False, inverted=True)
NAME_REGEX = f"^(?![{_EDGE}])[{_PRINTABLE}]*(?<![{_EDGE}])$"
NAME_REASON = "printable characters. Can not start or end with whitespace."
DESCRIPTION_REGEX = f"^[{_PRINTABLE}]*$"

# --- value types ----------------------------------------------------------------------------

_TRUE_WORDS = ["True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"]
_FALSE_WORDS = ["False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"]


def boolean() -> Schema:
    return {"type": ["boolean", "string"], "enum": [True, *_TRUE_WORDS, False, *_FALSE_WORDS]}


def string(min_length: int | None = None, max_length: int | None = None, **more: Any) -> Schema:
    """``{"type": "string", ...}`` with the extra keywords in the order given."""
    schema: Schema = {"type": "string", **more}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def name() -> Schema:
    return {"type": "string", "format": "name", "minLength": 1, "maxLength": 255}


def name_or_none() -> Schema:
    return {"oneOf": [string(1, 255), {"type": "null"}]}


def description() -> Schema:
    return {
        "type": ["string", "null"],
        "pattern": DESCRIPTION_REGEX,
        "minLength": 0,
        "maxLength": 255,
    }


def hostname() -> Schema:
    return string(2, 63, pattern="^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$")


def fqdn() -> Schema:
    return string(1, 255, pattern="^[a-zA-Z0-9-._]*$")


def nullable_fqdn() -> Schema:
    """migrate_server.host: the fqdn type, null allowed."""
    return {**fqdn(), "type": ["string", "null"]}


def uuid() -> Schema:
    return string(format="uuid")


def ip_address() -> Schema:
    return {"type": "string", "oneOf": [{"format": "ipv4"}, {"format": "ipv6"}]}


def non_negative_integer() -> Schema:
    return {"type": ["integer", "string"], "pattern": "^[0-9]*$", "minimum": 0, "minLength": 1}


def metadata() -> Schema:
    return {
        "type": "object",
        "patternProperties": {"^[a-zA-Z0-9-_:. ]{1,255}$": string(max_length=255)},
        "additionalProperties": False,
    }


def disk_config() -> Schema:
    return {"type": "string", "enum": ["AUTO", "MANUAL"]}


def flavor_ref() -> Schema:
    return {"type": ["string", "integer"], "minLength": 1}


def personality() -> Schema:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "contents": string(format="base64")},
            "additionalProperties": False,
        },
    }


def trusted_certs() -> Schema:
    return {
        "type": ["array", "null"],
        "minItems": 1,
        "maxItems": 50,
        "uniqueItems": True,
        "items": string(1),
    }
