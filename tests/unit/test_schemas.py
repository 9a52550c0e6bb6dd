"""The schema table itself: well-formed, contiguous per action, and as nova_actions.json says.

Exact equality with Nova's own schema dicts (values and key order) is checked by
tests/property/test_nova_oracle.py, which asks Nova's code.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway.nova import schemas as S
from gateway.nova import validation
from gateway.nova.catalogue import ACTIONS, BY_KEY, MAX_VERSION, ActionSpec
from gateway.nova.faults import Fault
from gateway.nova.types import Version, v

NOVA_FORMATS = {"name", "uuid", "base64", "ipv4", "ipv6"}
SECURITY_GROUP_ACTIONS = {"addSecurityGroup", "removeSecurityGroup"}
REMOVED_ACTIONS = {"resetNetwork", "os-getRDPConsole"}


def all_schemas() -> Iterator[tuple[str, Mapping[str, Any]]]:
    for spec in ACTIONS:
        for schema_range in spec.schemas:
            if schema_range.schema is not None:
                yield f"{spec.key}@{schema_range.min_version}", schema_range.schema


def walk(schema: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(schema, Mapping):
        yield schema
        for value in schema.values():
            yield from walk(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from walk(item)


@pytest.mark.parametrize(("name", "schema"), list(all_schemas()))
def test_schema_is_valid_draft_2020_12(name: str, schema: Mapping[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("spec", ACTIONS, ids=[spec.key for spec in ACTIONS])
def test_whole_body_schema_shape(spec: ActionSpec) -> None:
    for schema_range in spec.schemas:
        schema = schema_range.schema
        assert schema is not None
        if spec.key in REMOVED_ACTIONS:
            assert schema == {}  # Nova validates removed actions against an empty schema
            continue
        assert schema["type"] == "object"
        assert list(schema["properties"]) == [spec.key]
        assert schema["required"] == [spec.key]
        assert schema["additionalProperties"] is (spec.key in SECURITY_GROUP_ACTIONS)


@pytest.mark.parametrize("spec", ACTIONS, ids=[spec.key for spec in ACTIONS])
def test_ranges_are_contiguous_and_inside_the_action(spec: ActionSpec) -> None:
    """Nova's Schemas.validate_schemas: sorted, no overlap, no gap between ranges."""
    previous: Version | None = None
    for schema_range in spec.schemas:
        assert spec.supports(schema_range.min_version)
        if schema_range.max_version is not None:
            assert schema_range.min_version <= schema_range.max_version
            assert spec.supports(schema_range.max_version)
        else:
            assert spec.max_version is None
        if previous is not None:
            assert schema_range.min_version == Version(2, previous.minor + 1)
        previous = schema_range.max_version


def _segments(spec: ActionSpec) -> list[tuple[Version, Version | None]]:
    """The action's versions cut where Nova's schema changes, gaps (no schema) included."""
    cuts: list[tuple[Version, Version | None]] = []
    cursor = spec.min_version
    for schema_range in spec.schemas:
        if schema_range.min_version > cursor:
            cuts.append((cursor, Version(2, schema_range.min_version.minor - 1)))
        cuts.append((schema_range.min_version, schema_range.max_version))
        if schema_range.max_version is None:
            return cuts
        cursor = Version(2, schema_range.max_version.minor + 1)
    if spec.max_version is None or cursor <= spec.max_version:
        cuts.append((cursor, spec.max_version))
    return cuts


def _reference_range(text: str, spec: ActionSpec) -> tuple[Version, Version | None]:
    if text == "all":
        return spec.min_version, spec.max_version
    if text.endswith("+"):
        return v(text[:-1]), None
    low, high = text.split("-")
    return v(low), v(high)


@pytest.fixture(scope="module")
def reference_actions(shared_dir: Path) -> Mapping[str, Any]:
    document = json.loads((shared_dir / "nova" / "nova_actions.json").read_text("utf-8"))
    return {action["key"]: action for action in document["actions"]}


def test_reference_lists_the_catalogue_actions(reference_actions: Mapping[str, Any]) -> None:
    assert set(reference_actions) == set(BY_KEY)


@pytest.mark.parametrize("spec", ACTIONS, ids=[spec.key for spec in ACTIONS])
def test_schema_ranges_match_the_reference(
    spec: ActionSpec, reference_actions: Mapping[str, Any]
) -> None:
    reference = reference_actions[spec.key]
    expected = [_reference_range(row["range"], spec) for row in reference["schemas"]]
    assert _segments(spec) == expected
    assert str(spec.min_version) == reference["min_version"]
    assert (str(spec.max_version) if spec.max_version else None) == reference["max_version"]


def test_only_nova_formats_are_used_and_all_have_nova_checkers() -> None:
    nodes = [node for _, schema in all_schemas() for node in walk(schema)]
    used = {node["format"] for node in nodes if "format" in node}
    assert used == NOVA_FORMATS
    checkers = validation._FORMAT_CHECKER.checkers
    assert all(fmt in checkers for fmt in used)
    # Nova overrides jsonschema's own uuid check and adds name and base64.
    assert checkers["uuid"][0] is validation._validate_uuid_format
    assert checkers["name"][0] is validation._validate_name


def test_derived_schemas_never_changed_shared_parameter_types() -> None:
    assert len(S.BOOLEAN["enum"]) == 22 and "auto" not in S.BOOLEAN["enum"]
    assert S.FQDN["type"] == "string"
    assert "user_data" not in S.REBUILD_V254["properties"]["rebuild"]["properties"]
    assert "personality" in S.REBUILD_V254["properties"]["rebuild"]["properties"]
    assert S.HOSTNAME["maxLength"] == 63


def test_rebuild_ranges_as_nova_actions_md_describes() -> None:
    def props(schema: Mapping[str, Any]) -> Mapping[str, Any]:
        properties: Mapping[str, Any] = schema["properties"]["rebuild"]["properties"]
        return properties

    assert "description" not in props(S.REBUILD) and "description" in props(S.REBUILD_V219)
    assert props(S.REBUILD_V254)["key_name"] == S.NAME_OR_NONE
    assert props(S.REBUILD_V257)["user_data"]["maxLength"] == 65535
    assert props(S.REBUILD_V263)["trusted_image_certificates"]["maxItems"] == 50
    assert props(S.REBUILD_V290)["hostname"]["maxLength"] == 63
    assert props(S.REBUILD_V294)["hostname"] == S.FQDN
    # 2.94 replaces hostname in place: same key position, so the same first error.
    assert list(props(S.REBUILD_V290)) == list(props(S.REBUILD_V294))


def test_validation_never_mutates_schemas() -> None:
    before = json.dumps([schema for _, schema in all_schemas()])
    for spec in ACTIONS:
        for version in (spec.min_version, spec.max_version or MAX_VERSION):
            for value in (None, {}, {"x": 1}, "x", [1]):
                with contextlib.suppress(Fault):
                    validation.validate_action(spec, version, {spec.key: value, "y": 2})
    assert json.dumps([schema for _, schema in all_schemas()]) == before


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("a", True),
        ("a b", True),
        ("a\u3000b", True),  # ideographic space (Zs) inside is printable
        ("é ü", True),
        ("", True),  # the regex allows empty; minLength is what refuses it
        ("x\n", True),  # "$" matches before a final newline
        (" a", False),
        ("a ", False),
        ("a\u00a0", False),
        ("a\tb", False),
        ("a\u2028b", False),
        ("\U0001f600", False),  # outside the BMP Nova scans
        ("\uffff", False),
    ],
)
def test_name_regex(text: str, valid: bool) -> None:
    assert (validation._NAME_PATTERN.search(text) is not None) is valid


def test_description_regex_is_printable_with_spaces() -> None:
    pattern = S.VALID_DESCRIPTION_REGEX
    assert pattern.startswith("^[") and pattern.endswith("]*$")
    validator = Draft202012Validator({"pattern": pattern})
    assert validator.is_valid(" leading and trailing ")
    assert not validator.is_valid("tab\there")
