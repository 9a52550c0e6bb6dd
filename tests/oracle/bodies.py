"""Hypothesis strategies for server-action bodies: valid ones drawn from a Nova schema, and
single mutations whose verdict is certain by construction.

Owns generating bodies for the schema-mutation and Nova-differential tests; it must never
judge validity with the gateway's validator (that is what the tests check).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateway.nova import schemas
from gateway.nova.catalogue import MAX_VERSION, MIN_VERSION, ActionSpec, SchemaRange
from gateway.nova.types import Version

Schema = Mapping[str, Any]
Path = tuple[str | int, ...]
EXTRA_KEY = "!extra"  # matches no property and not metadata's key pattern
NOT_IN_ENUM = "not-in-enum"

# Nova's printable set (parameter_types._is_printable), restricted to the BMP it scans.
_PRINTABLE_NO_SPACE = st.characters(max_codepoint=0xFFFE, categories=("L", "M", "N", "P", "S"))
_PRINTABLE = st.characters(max_codepoint=0xFFFE, categories=("L", "M", "N", "P", "S", "Zs"))

_ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


T = TypeVar("T")


def examples(strategy: st.SearchStrategy[T], count: int) -> list[T]:
    """``count`` deterministic examples of ``strategy`` (derandomized, generate phase only):
    a fixed corpus that is the same on every run."""
    found: list[T] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(example: T) -> None:
        found.append(example)

    gather()
    return found


# --- valid values -----------------------------------------------------------------------


def valid(schema: Schema, *, full: bool = False) -> st.SearchStrategy[Any]:
    """Values ``schema`` accepts (for the JSON-Schema subset Nova's action schemas use).

    ``full`` puts every declared property into objects, so that a body uses as many
    version-specific fields as its range allows.
    """
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "oneOf" in schema:
        outer = {key: value for key, value in schema.items() if key != "oneOf"}
        return st.one_of([valid({**outer, **sub}, full=full) for sub in schema["oneOf"]])
    types = schema.get("type")
    if types is None:
        return _ANY_JSON
    if isinstance(types, list):
        return st.one_of([valid({**schema, "type": one}, full=full) for one in types])
    return _BY_TYPE[types](schema, full)


def _string(schema: Schema, full: bool) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 40)
    text = _string_shape(schema, low, min(high, 40))  # long strings: the mutations' job
    text = text.filter(lambda value: low <= len(value) <= high)
    if "minimum" in schema:  # numeric strings compared numerically, as in Nova
        text = text.filter(lambda value: int(value) >= schema["minimum"])
    return text


def _string_shape(schema: Schema, low: int, high: int) -> st.SearchStrategy[str]:
    fmt: str | None = schema.get("format")
    pattern: str | None = schema.get("pattern")
    if fmt is not None and fmt in _FORMATS:
        return _FORMATS[fmt](low, high)
    if pattern == schemas.VALID_DESCRIPTION_REGEX:
        return st.text(_PRINTABLE, min_size=low, max_size=high)
    if pattern is not None:
        return st.from_regex(pattern, fullmatch=True)
    return st.text(min_size=low, max_size=high)


def _name(low: int, high: int) -> st.SearchStrategy[str]:
    edge = _PRINTABLE_NO_SPACE
    middle = st.text(_PRINTABLE, max_size=max(high - 2, 0))
    return st.one_of(
        edge,
        st.tuples(edge, middle, edge).map("".join),
    ).filter(lambda value: low <= len(value) <= high)


def _base64(low: int, high: int) -> st.SearchStrategy[str]:
    return st.binary(max_size=max(high * 3 // 4 - 3, 0)).map(
        lambda raw: base64.b64encode(raw).decode("ascii")
    )


_FORMATS: Mapping[str, Callable[[int, int], st.SearchStrategy[str]]] = {
    "name": _name,
    "uuid": lambda low, high: st.uuids().map(str),
    "base64": _base64,
    "ipv4": lambda low, high: st.ip_addresses(v=4).map(str),
    "ipv6": lambda low, high: st.ip_addresses(v=6).map(str),
}


def _integer(schema: Schema, full: bool) -> st.SearchStrategy[int]:
    return st.integers(min_value=schema.get("minimum", -(2**40)), max_value=2**40)


def _number(schema: Schema, full: bool) -> st.SearchStrategy[float | int]:
    return st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)


def _object(schema: Schema, full: bool) -> st.SearchStrategy[dict[str, Any]]:
    properties: Mapping[str, Schema] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    chosen = {key: valid(sub, full=full) for key, sub in properties.items()}
    fixed = {key: chosen.get(key, _ANY_JSON) for key in required}
    optional = {key: value for key, value in chosen.items() if key not in required}
    if full:
        fixed, optional = {**fixed, **optional}, {}
    objects = st.fixed_dictionaries(fixed, optional=optional)
    patterns: Mapping[str, Schema] = schema.get("patternProperties", {})
    for pattern, sub in patterns.items():
        extra = st.dictionaries(st.from_regex(pattern, fullmatch=True), valid(sub), max_size=3)
        objects = st.tuples(objects, extra).map(lambda pair: {**pair[1], **pair[0]})
    return objects


def _array(schema: Schema, full: bool) -> st.SearchStrategy[list[Any]]:
    return st.lists(
        valid(schema.get("items", {}), full=full),
        min_size=schema.get("minItems", 0),
        max_size=min(schema.get("maxItems", 4), 4),
        unique=bool(schema.get("uniqueItems")),
    )


_BY_TYPE: Mapping[str, Callable[[Schema, bool], st.SearchStrategy[Any]]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "boolean": lambda schema, full: st.booleans(),
    "null": lambda schema, full: st.none(),
    "object": _object,
    "array": _array,
}


def value_schema(spec: ActionSpec, schema: Schema) -> Schema:
    """The schema of the action key's value inside a whole-body schema ({} if none)."""
    sub: Schema = schema.get("properties", {}).get(spec.key, {})
    return sub


_BODY_STRATEGIES: dict[tuple[str, int, bool], tuple[Schema, st.SearchStrategy[Any]]] = {}


def valid_body(spec: ActionSpec, schema: Schema, *, full: bool = False) -> st.SearchStrategy[Any]:
    """``{key: <valid value>}``; built once per schema (building strategies is the slow part)."""
    cache_key = (spec.key, id(schema), full)
    cached = _BODY_STRATEGIES.get(cache_key)
    if cached is None or cached[0] is not schema:
        strategy = valid(value_schema(spec, schema), full=full).map(lambda value: {spec.key: value})
        cached = _BODY_STRATEGIES[cache_key] = (schema, strategy)
    return cached[1]


# --- walking a body alongside its schema -------------------------------------------------


@dataclass(frozen=True)
class Node:
    path: Path
    schema: Schema
    value: Any


def nodes(schema: Schema, value: Any, path: Path = ()) -> Iterator[Node]:
    """Every (path, schema, value) of a body that ``schema`` accepts, parents first."""
    yield Node(path, schema, value)
    if "oneOf" in schema or "enum" in schema:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            sub = _property_schema(schema, key)
            if sub is not None:
                yield from nodes(sub, item, (*path, key))
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from nodes(schema["items"], item, (*path, index))


def _property_schema(schema: Schema, key: str) -> Schema | None:
    properties: Mapping[str, Schema] = schema.get("properties", {})
    if key in properties:
        return properties[key]
    patterns: Mapping[str, Schema] = schema.get("patternProperties", {})
    for sub in patterns.values():
        return sub  # bodies are generated from the pattern, so the key matches it
    return None


def replaced(body: Any, path: Path, value: Any) -> Any:
    out = copy.deepcopy(body)
    if not path:
        return value
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def removed(body: Any, path: Path) -> Any:
    out = copy.deepcopy(body)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


# --- mutations whose verdict is certain ------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    kind: str
    body: Any
    refused: bool
    # Leaf Nova names in "Invalid input for field/attribute <leaf>"; None: bare message.
    leaf: str | int | None
    # The instance Nova quotes after "Value:".
    value: Any
    expected_fragment: str


_WRONG_TYPE_CANDIDATES: tuple[tuple[Any, frozenset[str]], ...] = (
    (None, frozenset({"null"})),
    (True, frozenset({"boolean"})),
    (7, frozenset({"integer", "number"})),
    (1.5, frozenset({"number"})),
    ("x", frozenset({"string"})),
    ([], frozenset({"array"})),
    ({}, frozenset({"object"})),
)


def allowed_types(schema: Schema) -> frozenset[str] | None:
    if "oneOf" in schema and "type" not in schema:
        found: set[str] = set()
        for sub in schema["oneOf"]:
            sub_types = allowed_types(sub)
            if sub_types is None:
                return None
            found |= sub_types
        return frozenset(found)
    types = schema.get("type")
    if types is None:
        return None
    return frozenset([types] if isinstance(types, str) else types)


def mutations(body: Any, whole_schema: Schema) -> Iterator[Mutation]:
    """Every single-point mutation of a valid ``body`` with a certain verdict."""
    for node in nodes(whole_schema, body):
        yield from _remove_required(body, node)
        yield from _wrong_type(body, node)
        yield from _extra_property(body, node)
        yield from _enum_outside(body, node)
        yield from _length(body, node)


def _leaf(path: Path) -> str | int | None:
    return path[-1] if path else None


def _remove_required(body: Any, node: Node) -> Iterator[Mutation]:
    if not node.path or not isinstance(node.value, dict):
        return
    for key in node.schema.get("required", ()):
        if key in node.value:
            mutated = removed(body, (*node.path, key))
            parent = {k: v for k, v in node.value.items() if k != key}
            fragment = f"{key!r} is a required property"
            yield Mutation("remove_required", mutated, True, _leaf(node.path), parent, fragment)


def _wrong_type(body: Any, node: Node) -> Iterator[Mutation]:
    types = allowed_types(node.schema)
    if not node.path or types is None:
        return
    for value, value_types in _WRONG_TYPE_CANDIDATES:
        if not value_types & types:
            mutated = replaced(body, node.path, value)
            fragment = "is not of type" if "type" in node.schema else "is not valid under any"
            yield Mutation("wrong_type", mutated, True, _leaf(node.path), value, fragment)


def _extra_property(body: Any, node: Node) -> Iterator[Mutation]:
    if not isinstance(node.value, dict) or "additionalProperties" not in node.schema:
        return
    value = {**node.value, EXTRA_KEY: 1}
    mutated = replaced(body, node.path, value)
    refused = node.schema["additionalProperties"] is False
    if "patternProperties" in node.schema:
        fragment = f"{EXTRA_KEY!r} does not match any of the regexes"
    else:
        fragment = f"Additional properties are not allowed ({EXTRA_KEY!r} was unexpected)"
    yield Mutation("extra_property", mutated, refused, _leaf(node.path), value, fragment)


def _enum_outside(body: Any, node: Node) -> Iterator[Mutation]:
    if not node.path or "enum" not in node.schema:
        return
    mutated = replaced(body, node.path, NOT_IN_ENUM)
    fragment = f"{NOT_IN_ENUM!r} is not one of"
    yield Mutation("enum_outside", mutated, True, _leaf(node.path), NOT_IN_ENUM, fragment)


def _length(body: Any, node: Node) -> Iterator[Mutation]:
    types = allowed_types(node.schema)
    if not node.path or types is None or "string" not in types:
        return
    if "maxLength" in node.schema:
        value = "a" * (node.schema["maxLength"] + 1)
        mutated = replaced(body, node.path, value)
        yield Mutation("too_long", mutated, True, _leaf(node.path), value, "is too long")
    if node.schema.get("minLength", 0) >= 1:
        mutated = replaced(body, node.path, "")
        yield Mutation("too_short", mutated, True, _leaf(node.path), "", "")


# --- versions around a schema range -----------------------------------------------------


def step_down(version: Version) -> Version | None:
    return Version(version.major, version.minor - 1) if version > MIN_VERSION else None


def step_up(version: Version) -> Version | None:
    return Version(version.major, version.minor + 1) if version < MAX_VERSION else None


def range_versions(schema_range: SchemaRange) -> tuple[Version, Version]:
    """First and last version of a range (open ranges end at Nova's maximum)."""
    return schema_range.min_version, schema_range.max_version or MAX_VERSION


def neighbours(schema_range: SchemaRange) -> list[Version]:
    """The versions one step outside the range, within Nova's [2.1, 2.104]."""
    low, high = range_versions(schema_range)
    return [version for version in (step_down(low), step_up(high)) if version is not None]


def versions_in(schema_range: SchemaRange) -> st.SearchStrategy[Version]:
    low, high = range_versions(schema_range)
    return st.sampled_from([low, high]) | st.integers(low.minor, high.minor).map(
        lambda minor: Version(low.major, minor)
    )


# --- values Nova's code treats in surprising ways (verdict left to the oracle) -----------

_UUID = "4f8a1a34-8d4e-4d4b-9d3c-0b2f0c3b5e6a"
_ODD_ANYWHERE: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 1.0, 1.5, -0.0, 2**63, "", " ", "x", "x\n", [], {}, [1, 1],
    {"a": 1}, "a" * 256,
)  # fmt: skip
_ODD_BY_FORMAT: Mapping[str, tuple[Any, ...]] = {
    "name": (
        " x", "x ", "\nx", "x\t", "a\u00a0", "\u3000a", "a\u3000b", "a\u2028b", "\U0001f600",
        "é", "\x00", "\uffff", "\ufffe", "a" * 255,
    ),
    "uuid": (
        _UUID, _UUID.upper(), "{" + _UUID + "}", "urn:uuid:" + _UUID, _UUID.replace("-", ""),
        _UUID[:-1], _UUID + "0", "{" + _UUID, " " + _UUID, _UUID + "\n",
    ),
    "base64": (
        "QUJD", "QUJD=", "QUJ", "QU JD", "QUJD\n", "====", "Q!JD", "é", "\ud800", "A" * 65536,
        "A" * 65540,
    ),
    "ipv4": ("1.2.3.4", "1.2.3.04", "01.2.3.4", "256.1.1.1", "1.2.3", " 1.2.3.4", "::1"),
    "ipv6": ("::1", "fe80::1%eth0", "::ffff:1.2.3.4", "1::2::3", "1.2.3.4", "::1\n"),
}  # fmt: skip
_ODD_NUMBERS: tuple[Any, ...] = (
    "5", "-2", "-1", "0", "00", " 5", "5 ", "5\n", "1e3", "0x10", "+1", "\u0663", "1.5",
    "-1.5", -1.0, -2, 2.0, 10**30, "1" * 5000, "-" + "9" * 30,
)  # fmt: skip
_ODD_PATTERNED: tuple[Any, ...] = (
    "a", "a.b", "a_b", "-a", "a-", "a..b", "a" * 63, "a" * 64, "a" * 255, "é", "a b", "ab\n",
    "\x01", "\t", "tab\there",
)  # fmt: skip
_ODD_ENUM: tuple[Any, ...] = ("hard", "hArD", "HARD ", "auto", "Auto", "yes", "YES ", "1", "t")


def odd_values(schema: Schema) -> tuple[Any, ...]:
    """Values worth asking Nova about at a node with ``schema`` (and some for any node)."""
    odd = list(_ODD_ANYWHERE)
    odd += _ODD_BY_FORMAT.get(schema.get("format", ""), ())
    for sub in schema.get("oneOf", ()):
        odd += _ODD_BY_FORMAT.get(sub.get("format", ""), ())
    if "minimum" in schema:
        odd += _ODD_NUMBERS
    if "pattern" in schema or "maxLength" in schema:
        odd += _ODD_PATTERNED
    if "enum" in schema:
        odd += _ODD_ENUM
    return tuple(odd)
