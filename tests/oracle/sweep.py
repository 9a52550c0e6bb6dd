"""The sweep that compares the gateway with novasim, action by action: every key, the
boundary microversions of BOTH implementations' ranges, and bodies drawn from novasim's
own schemas (valid ones, mutations refused for certain, values Nova treats oddly).

Owns building those cases, deterministically; it must never judge one (the tests require
the gateway's answer to be novasim's). The versions come from both tables, so a range one
of them narrows or widens is asked at the version where they now disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.nova.catalogue import BY_KEY
from novasim.action_schemas import SCHEMAS, Registered
from novasim.action_table import ACTIONS
from novasim.microversion import NEWEST, OLDEST
from tests.oracle.bodies import Mutation, examples, mutations, nodes, odd_values, replaced, valid

MINORS = range(OLDEST.minor, NEWEST.minor + 1)


@dataclass(frozen=True)
class SweepCase:
    key: str
    version: str  # "2.x": each side parses it with its own code
    body: Any  # the whole action body, {key: value}
    what: str  # where the body comes from, for a reader of a failure

    def describe(self) -> str:
        return f"[{self.key} at {self.version}: {self.what}] {self.body!r:.300}"


def _ends(since: int, until: int | None) -> set[int]:
    """A range's first and last minor version and the ones just outside it."""
    last = until if until is not None else NEWEST.minor
    return {since - 1, since, last, last + 1}


def boundary_minors(key: str) -> list[int]:
    """Every minor version where either table says something begins or ends for ``key``."""
    spec, gates = BY_KEY[key], ACTIONS[key]
    minors = _ends(spec.min_version.minor, spec.max_version.minor if spec.max_version else None)
    minors |= _ends(gates.since.minor, gates.until.minor)
    for schema_range in spec.schemas:
        high = schema_range.max_version
        minors |= _ends(schema_range.min_version.minor, high.minor if high else None)
    for registered in SCHEMAS[key]:
        minors |= _ends(
            registered.since.minor, registered.until.minor if registered.until else None
        )
    return sorted(minor for minor in minors if minor in MINORS)


def value_schema(key: str, registered: Registered) -> dict[str, Any]:
    schema: dict[str, Any] = registered.checker.schema.get("properties", {}).get(key, {})
    return schema


def valid_bodies(key: str, registered: Registered, count: int) -> list[Any]:
    """``count`` bodies drawn to pass this registration, the first using every field."""
    inner = value_schema(key, registered)
    full = examples(valid(inner, full=True), 1)
    some = examples(valid(inner), max(count - 1, 0)) if count > 1 else []
    return [{key: value} for value in (*full, *some)]


def refused_mutations(key: str, registered: Registered, body: Any) -> list[Mutation]:
    """Single changes of a valid body's value that Nova's validator refuses for certain
    (a second top-level key would be the dispatcher's refusal, not the schema's)."""
    return [
        m
        for m in mutations(body, registered.checker.schema)
        if m.refused and isinstance(m.body, dict) and list(m.body) == [key]
    ]


def odd_bodies(key: str, registered: Registered, body: Any) -> Iterator[tuple[str, Any]]:
    """Each odd value at each place of a valid body: the verdict is whatever Nova's is."""
    for node in nodes(registered.checker.schema, body):
        if len(node.path) < 2:  # the whole body or the key itself: dispatch's business
            continue
        for odd in odd_values(node.schema):
            yield f"odd value at {'/'.join(map(str, node.path))}", replaced(body, node.path, odd)


def http_cases() -> list[SweepCase]:
    """For the sweep over HTTP: at every boundary version of a key, one valid body of each
    registration and, where they exist, bodies that registration refuses (each required
    field left out, one wrong type, one unknown field, ...)."""
    cases = []
    for key in ACTIONS:
        bodies: list[tuple[str, Any]] = []
        for registered in SCHEMAS[key]:
            label = f"{registered.since}-{registered.until or ''}"
            [body] = valid_bodies(key, registered, 1)
            bodies.append((f"valid for {label}", body))
            kinds: set[str] = set()
            for mutation in refused_mutations(key, registered, body):
                # Each required field left out, and one change of every other kind.
                if mutation.kind == "remove_required" or mutation.kind not in kinds:
                    kinds.add(mutation.kind)
                    bodies.append((f"{mutation.kind} for {label}", mutation.body))
        for minor in boundary_minors(key):
            cases += [SweepCase(key, f"2.{minor}", body, what) for what, body in bodies]
    return cases


def thorough_cases(valid_count: int) -> list[SweepCase]:
    """For the in-process sweep: per registration, ``valid_count`` valid bodies and every
    certain mutation at each boundary version (of either table) within or next to it, and
    odd values at the registration's own first and last version."""
    cases = []
    for key in ACTIONS:
        minors = boundary_minors(key)
        for registered in SCHEMAS[key]:
            label = f"{registered.since}-{registered.until or ''}"
            first, last = registered.since.minor, (registered.until or NEWEST).minor
            near = [minor for minor in minors if first - 1 <= minor <= last + 1]
            for body in valid_bodies(key, registered, valid_count):
                judged = [(f"valid for {label}", body)]
                judged += [
                    (f"{m.kind} for {label}", m.body)
                    for m in mutations(body, registered.checker.schema)
                ]
                cases += [SweepCase(key, f"2.{m}", b, w) for m in near for w, b in judged]
                odd = list(odd_bodies(key, registered, body))
                cases += [SweepCase(key, f"2.{m}", b, w) for m in {first, last} for w, b in odd]
    return cases
