"""Property tests: for every action and schema range of the gateway's catalogue, bodies
valid by its schema and single mutations of them get the verdict and the message that
novasim (an independent implementation, sharing no code with the gateway) gives.

The bodies come from the gateway's schemas, so a schema made too loose in the catalogue
yields mutations novasim refuses; tests/property/test_gateway_vs_novasim.py draws them
from novasim's schemas instead, for a schema made too strict or a range moved.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.nova.catalogue import ACTIONS, ActionSpec, SchemaRange
from gateway.nova.faults import NOT_FOUND, Fault
from gateway.nova.types import Version
from gateway.nova.validation import validate_action
from novasim import faults as sim_faults
from novasim import microversion as sim_microversion
from novasim.actions import admit
from tests.oracle.bodies import Mutation, mutations, neighbours, valid_body, versions_in

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

Verdict = tuple[int | None, str]


def refusal(spec: ActionSpec, version: Version, body: Any) -> Fault | None:
    try:
        validate_action(spec, version, body)
    except Fault as fault:
        return fault
    return None


def gateway_verdict(spec: ActionSpec, version: Version, body: Any) -> Verdict:
    if not spec.supports(version):
        return 404, NOT_FOUND  # the pipeline's version gate, before any schema
    fault = refusal(spec, version, body)
    return (None, "") if fault is None else (fault.status, fault.message)


def novasim_verdict(key: str, version: Version, body: Any) -> Verdict:
    """The independent judge: novasim's own action table, schemas and validator."""
    parsed = sim_microversion.parse(str(version))
    assert parsed is not None
    try:
        admit(key, parsed, body)
    except sim_faults.Fault as fault:
        return fault.status, fault.message
    return None, ""


def check_message(mutation: Mutation, fault: Fault) -> None:
    """The message names what the mutation broke, as Nova's validator words it."""
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
def test_valid_body_passes_and_each_mutation_is_judged_as_novasim_judges_it(
    spec: ActionSpec, index: int, data: st.DataObject
) -> None:
    schema_range = spec.schemas[index]
    assert schema_range.schema is not None
    body = data.draw(valid_body(spec, schema_range.schema, full=data.draw(st.booleans())))
    version = data.draw(versions_in(schema_range))
    assert spec.schema_for(version) is schema_range
    assert novasim_verdict(spec.key, version, body) == (None, ""), body
    assert gateway_verdict(spec, version, body) == (None, ""), body
    for mutation in mutations(body, schema_range.schema):
        theirs = novasim_verdict(spec.key, version, mutation.body)
        assert gateway_verdict(spec, version, mutation.body) == theirs, (
            mutation.kind,
            mutation.body,
        )
        if theirs[0] is not None and mutation.refused:
            fault = refusal(spec, version, mutation.body)
            assert fault is not None
            check_message(mutation, fault)


@pytest.mark.parametrize(("spec", "index"), PAIRS, ids=PAIR_IDS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_body_at_the_versions_next_to_the_range(
    spec: ActionSpec, index: int, data: st.DataObject
) -> None:
    schema_range: SchemaRange = spec.schemas[index]
    assert schema_range.schema is not None
    body = data.draw(valid_body(spec, schema_range.schema, full=True))
    for version in neighbours(schema_range):
        assert spec.schema_for(version) is not schema_range
        assert gateway_verdict(spec, version, body) == novasim_verdict(spec.key, version, body), (
            version,
            body,
        )
