"""Property tests: for every action and schema range, valid bodies pass and single mutations
are refused exactly when the mutation makes refusal certain, with Nova's message shape.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.nova.catalogue import ACTIONS, ActionSpec, SchemaRange
from gateway.nova.faults import Fault
from gateway.nova.types import Version
from gateway.nova.validation import validate_action
from tests.oracle.bodies import (
    Mutation,
    allowed_types,
    mutations,
    neighbours,
    valid_body,
    value_schema,
    versions_in,
)

PAIRS: list[tuple[ActionSpec, int]] = [
    (spec, index)
    for spec in ACTIONS
    for index, schema_range in enumerate(spec.schemas)
    if schema_range.schema is not None
]
PAIR_IDS = [
    f"{spec.key}@{spec.schemas[index].min_version}-{spec.schemas[index].max_version or ''}"
    for spec, index in PAIRS
]

PROPERTY_SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def refusal(spec: ActionSpec, version: Version, body: Any) -> Fault | None:
    try:
        validate_action(spec, version, body)
    except Fault as fault:
        return fault
    return None


def check_message(mutation: Mutation, fault: Fault) -> None:
    assert fault.status == 400
    if mutation.leaf is None:
        assert fault.message == mutation.expected_fragment
        return
    prefix = f"Invalid input for field/attribute {mutation.leaf}. Value: {mutation.value}. "
    assert fault.message.startswith(prefix), (fault.message, prefix)
    assert mutation.expected_fragment in fault.message


def test_every_action_with_a_schema_is_covered() -> None:
    covered = {spec.key for spec, _ in PAIRS}
    assert covered == {spec.key for spec in ACTIONS if spec.schemas}
    assert len(PAIRS) >= 50


@pytest.mark.parametrize(("spec", "index"), PAIRS, ids=PAIR_IDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_valid_body_passes_and_each_mutation_is_judged(
    spec: ActionSpec, index: int, data: st.DataObject
) -> None:
    schema_range = spec.schemas[index]
    assert schema_range.schema is not None
    body = data.draw(valid_body(spec, schema_range.schema, full=data.draw(st.booleans())))
    version = data.draw(versions_in(schema_range))
    assert spec.schema_for(version) is schema_range
    assert refusal(spec, version, body) is None, body
    for mutation in mutations(body, schema_range.schema):
        fault = refusal(spec, version, mutation.body)
        assert (fault is not None) == mutation.refused, (mutation.kind, mutation.body)
        if fault is not None:
            check_message(mutation, fault)


def expected_at(spec: ActionSpec, version: Version, body: dict[str, Any]) -> bool | None:
    """Whether Nova must refuse ``body`` at ``version``; None when only the oracle knows."""
    schema_range = spec.schema_for(version)
    if schema_range is None or schema_range.schema is None:
        return False  # Nova registers no schema there: nothing is validated
    inner = value_schema(spec, schema_range.schema)
    if not inner:
        return False  # {"<key>": {}}: any value
    value = body[spec.key]
    types = allowed_types(inner) or frozenset()
    if not isinstance(value, dict) or "object" not in types:
        return None
    if set(inner.get("required", ())) - set(value):
        return True
    unknown = set(value) - set(inner.get("properties", {}))
    if unknown and inner.get("additionalProperties") is False:
        return True
    return None


@pytest.mark.parametrize(("spec", "index"), PAIRS, ids=PAIR_IDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_one_version_outside_the_range(spec: ActionSpec, index: int, data: st.DataObject) -> None:
    schema_range: SchemaRange = spec.schemas[index]
    assert schema_range.schema is not None
    body = data.draw(valid_body(spec, schema_range.schema, full=True))
    for version in neighbours(schema_range):
        if not spec.supports(version):
            # The action itself ends here: Nova's 404 comes before any schema.
            assert version < spec.min_version or version > (spec.max_version or version)
            continue
        assert spec.schema_for(version) is not schema_range
        expected = expected_at(spec, version, body)
        if expected is not None:
            assert (refusal(spec, version, body) is not None) == expected, (version, body)


@pytest.mark.parametrize("spec", ACTIONS, ids=[spec.key for spec in ACTIONS])
def test_action_edges(spec: ActionSpec) -> None:
    assert spec.supports(spec.min_version)
    if spec.min_version > Version(2, 1):
        assert not spec.supports(Version(2, spec.min_version.minor - 1))
    if spec.max_version is not None:
        assert spec.supports(spec.max_version)
        assert not spec.supports(Version(2, spec.max_version.minor + 1))
