"""Hand-picked request bodies with the exact verdict and message Nova 34 gives them.

Every expectation here was checked against Nova's own code (tests/oracle/nova_validate.py);
the differential test re-checks them whenever Nova's virtualenv is present.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import Fault
from gateway.nova.types import v
from gateway.nova.validation import first_error, validate_action, validate_action_bytes

UUID = "4f8a1a34-8d4e-4d4b-9d3c-0b2f0c3b5e6a"
NAME_MESSAGE = (
    "An invalid 'name' value was provided. The name must be: "
    "printable characters. Can not start or end with whitespace."
)
BOOLEAN_ENUM = (
    "[True, 'True', 'TRUE', 'true', '1', 'ON', 'On', 'on', 'YES', 'Yes', 'yes', "
    "False, 'False', 'FALSE', 'false', '0', 'OFF', 'Off', 'off', 'NO', 'No', 'no']"
)
UNEXPECTED_500 = "Unexpected API Error. Please contact the administrator\n<class '{}'>"

# (action, version, value of the action key, Nova's message or None when accepted)
CASES: list[tuple[str, str, Any, str | None]] = [
    # reboot: enum, required, type, additionalProperties, and the FIRST error wins.
    (
        "reboot",
        "2.1",
        {"type": "foo"},
        "Invalid input for field/attribute type. Value: foo. "
        "'foo' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
    ),
    ("reboot", "2.104", {"type": "soft"}, None),
    (
        "reboot",
        "2.1",
        {},
        "Invalid input for field/attribute reboot. Value: {}. 'type' is a required property",
    ),
    (
        "reboot",
        "2.1",
        None,
        "Invalid input for field/attribute reboot. Value: None. None is not of type 'object'",
    ),
    (
        "reboot",
        "2.1",
        {"type": "HARD", "x": 1},
        "Invalid input for field/attribute reboot. Value: {'type': 'HARD', 'x': 1}. "
        "Additional properties are not allowed ('x' was unexpected)",
    ),
    (
        "reboot",
        "2.1",
        {"x": 1, "type": 5},
        "Invalid input for field/attribute type. Value: 5. 5 is not of type 'string'",
    ),
    # rebuild: personality until 2.56, user_data from 2.57, hostname 2.90 vs 2.94.
    ("rebuild", "2.56", {"imageRef": UUID, "personality": []}, None),
    (
        "rebuild",
        "2.57",
        {"imageRef": UUID, "personality": []},
        f"Invalid input for field/attribute rebuild. Value: {{'imageRef': '{UUID}', "
        "'personality': []}. Additional properties are not allowed "
        "('personality' was unexpected)",
    ),
    ("rebuild", "2.1", {"imageRef": UUID, "name": " x"}, NAME_MESSAGE),
    ("rebuild", "2.1", {"imageRef": UUID, "name": "x "}, NAME_MESSAGE),
    # Python's "$" also matches before a final newline, so Nova accepts this name.
    ("rebuild", "2.1", {"imageRef": UUID, "name": "x\n"}, None),
    ("rebuild", "2.1", {"imageRef": UUID, "name": "\U0001f600"}, NAME_MESSAGE),
    (
        "rebuild",
        "2.1",
        {"imageRef": UUID, "name": ""},
        "Invalid input for field/attribute name. Value: . '' should be non-empty",
    ),
    (
        "rebuild",
        "2.1",
        {"imageRef": "abc", "name": 5},
        "Invalid input for field/attribute name. Value: 5. 5 is not of type 'string'",
    ),
    (
        "rebuild",
        "2.1",
        {"imageRef": "abc"},
        "Invalid input for field/attribute imageRef. Value: abc. 'abc' is not a 'uuid'",
    ),
    ("rebuild", "2.1", {"imageRef": "{" + UUID.upper() + "}"}, None),
    (
        "rebuild",
        "2.57",
        {"imageRef": UUID, "user_data": "QUJ"},
        "Invalid input for field/attribute user_data. Value: QUJ. 'QUJ' is not a 'base64'",
    ),
    ("rebuild", "2.57", {"imageRef": UUID, "user_data": None}, None),
    (
        "rebuild",
        "2.18",
        {"imageRef": UUID, "description": "d"},
        f"Invalid input for field/attribute rebuild. Value: {{'imageRef': '{UUID}', "
        "'description': 'd'}. Additional properties are not allowed "
        "('description' was unexpected)",
    ),
    ("rebuild", "2.19", {"imageRef": UUID, "description": None}, None),
    (
        "rebuild",
        "2.54",
        {"imageRef": UUID, "key_name": 5},
        "Invalid input for field/attribute key_name. Value: 5. "
        "5 is not valid under any of the given schemas",
    ),
    (
        "rebuild",
        "2.63",
        {"imageRef": UUID, "trusted_image_certificates": ["a", "a"]},
        "Invalid input for field/attribute trusted_image_certificates. Value: ['a', 'a']. "
        "['a', 'a'] has non-unique elements",
    ),
    (
        "rebuild",
        "2.93",
        {"imageRef": UUID, "hostname": "a.b"},
        "Invalid input for field/attribute hostname. Value: a.b. "
        "'a.b' does not match '^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$'",
    ),
    ("rebuild", "2.94", {"imageRef": UUID, "hostname": "a.b"}, None),
    # evacuate: onSharedStorage required until 2.13, refused from 2.14; force 2.29-2.67.
    ("evacuate", "2.13", {"onSharedStorage": "False"}, None),
    (
        "evacuate",
        "2.13",
        {},
        "Invalid input for field/attribute evacuate. Value: {}. "
        "'onSharedStorage' is a required property",
    ),
    (
        "evacuate",
        "2.14",
        {"onSharedStorage": True},
        "Invalid input for field/attribute evacuate. Value: {'onSharedStorage': True}. "
        "Additional properties are not allowed ('onSharedStorage' was unexpected)",
    ),
    ("evacuate", "2.67", {"force": "yes"}, None),
    (
        "evacuate",
        "2.68",
        {"force": True},
        "Invalid input for field/attribute evacuate. Value: {'force': True}. "
        "Additional properties are not allowed ('force' was unexpected)",
    ),
    # lock: anything until 2.72; from 2.73 null or {locked_reason: 1-255 chars}.
    ("lock", "2.72", {"locked_reason": ""}, None),
    (
        "lock",
        "2.73",
        {"locked_reason": ""},
        "Invalid input for field/attribute locked_reason. Value: . '' should be non-empty",
    ),
    ("lock", "2.73", None, None),
    (
        "lock",
        "2.73",
        "x",
        "Invalid input for field/attribute lock. Value: x. 'x' is not of type 'object', 'null'",
    ),
    ("unlock", "2.72", [1], None),
    ("unlock", "2.73", "anything", None),  # Nova registers no unlock schema from 2.73
    # trigger_crash_dump: the value must be JSON null.
    ("trigger_crash_dump", "2.17", None, None),
    (
        "trigger_crash_dump",
        "2.17",
        {},
        "Invalid input for field/attribute trigger_crash_dump. Value: {}. {} is not of type 'null'",
    ),
    # Numeric strings: Nova's minimum override compares them as numbers.
    ("os-getConsoleOutput", "2.1", {"length": "5"}, None),
    ("os-getConsoleOutput", "2.1", {"length": None}, None),
    (
        "os-getConsoleOutput",
        "2.1",
        {"length": "-5"},
        "Invalid input for field/attribute length. Value: -5. -5 is less than the minimum of -1",
    ),
    (
        "os-getConsoleOutput",
        "2.1",
        {"length": " 5"},
        "Invalid input for field/attribute length. Value:  5. ' 5' does not match '^-?[0-9]+$'",
    ),
    (
        "os-getConsoleOutput",
        "2.1",
        None,
        "Invalid input for field/attribute os-getConsoleOutput. Value: None. "
        "None is not of type 'object'",
    ),
    # Draft 2020-12 (Nova's draft): 1.0 is an integer.
    ("createBackup", "2.1", {"name": "b", "backup_type": "daily", "rotation": 1.0}, None),
    (
        "createBackup",
        "2.1",
        {"name": "b", "backup_type": "daily", "rotation": ""},
        "Invalid input for field/attribute rotation. Value: . '' should be non-empty",
    ),
    (
        "createBackup",
        "2.1",
        {"name": "b", "backup_type": "daily", "rotation": -1},
        "Invalid input for field/attribute rotation. Value: -1. -1 is less than the minimum of 0",
    ),
    (
        "createImage",
        "2.1",
        {"name": "i", "metadata": {"a/b": "x"}},
        "Invalid input for field/attribute metadata. Value: {'a/b': 'x'}. "
        "'a/b' does not match any of the regexes: '^[a-zA-Z0-9-_:. ]{1,255}$'",
    ),
    # migrate: no schema before 2.56.
    ("migrate", "2.55", "garbage", None),
    (
        "migrate",
        "2.56",
        "garbage",
        "Invalid input for field/attribute migrate. Value: garbage. "
        "'garbage' is not of type 'object', 'null'",
    ),
    ("migrate", "2.56", {"host": None}, None),
    # os-migrateLive: 'auto' from 2.25; disk_over_commit gone from 2.25.
    (
        "os-migrateLive",
        "2.24",
        {"block_migration": "auto", "disk_over_commit": False, "host": None},
        f"Invalid input for field/attribute block_migration. Value: auto. "
        f"'auto' is not one of {BOOLEAN_ENUM}",
    ),
    ("os-migrateLive", "2.25", {"block_migration": "auto", "host": None}, None),
    (
        "os-migrateLive",
        "2.25",
        {"block_migration": True, "host": None, "disk_over_commit": False},
        "Invalid input for field/attribute os-migrateLive. Value: "
        "{'block_migration': True, 'host': None, 'disk_over_commit': False}. "
        "Additional properties are not allowed ('disk_over_commit' was unexpected)",
    ),
    # unshelve: {} refused 2.77-2.90 only.
    ("unshelve", "2.76", {}, None),
    (
        "unshelve",
        "2.77",
        {},
        "Invalid input for field/attribute unshelve. Value: {}. "
        "'availability_zone' is a required property",
    ),
    ("unshelve", "2.77", {"availability_zone": " az"}, NAME_MESSAGE),
    ("unshelve", "2.91", {}, None),
    # ip_address is a oneOf of ipv4/ipv6 formats.
    ("addFloatingIp", "2.43", {"address": "::1"}, None),
    (
        "addFloatingIp",
        "2.1",
        {"address": "foo"},
        "Invalid input for field/attribute address. Value: foo. "
        "'foo' is not valid under any of the given schemas",
    ),
    (
        "resize",
        "2.1",
        {"flavorRef": 1.5},
        "Invalid input for field/attribute flavorRef. Value: 1.5. "
        "1.5 is not of type 'string', 'integer'",
    ),
    (
        "changePassword",
        "2.1",
        {"adminPass": 1},
        "Invalid input for field/attribute adminPass. Value: 1. 1 is not of type 'string'",
    ),
    (
        "os-resetState",
        "2.1",
        {"state": "deleted"},
        "Invalid input for field/attribute state. Value: deleted. "
        "'deleted' is not one of ['active', 'error']",
    ),
    ("os-getVNCConsole", "2.5", {"type": "xvpvnc"}, None),
    ("rescue", "2.1", None, None),
    ("confirmResize", "2.1", {"any": ["thing"]}, None),
]


@pytest.mark.parametrize(
    ("action", "version", "value", "message"),
    CASES,
    ids=[f"{case[0]}@{case[1]}#{index}" for index, case in enumerate(CASES)],
)
def test_nova_verdict_and_message(
    action: str, version: str, value: Any, message: str | None
) -> None:
    spec = BY_KEY[action]
    assert spec.supports(v(version))
    if message is None:
        validate_action(spec, v(version), {action: value})
        return
    with pytest.raises(Fault) as refused:
        validate_action(spec, v(version), {action: value})
    assert (refused.value.status, refused.value.message) == (400, message)
    assert refused.value.reason == "schema"


def test_top_level_extra_key_gives_the_bare_message() -> None:
    body = {"reboot": {"type": "HARD"}, "x": 1}
    with pytest.raises(Fault) as refused:
        validate_action(BY_KEY["reboot"], v("2.1"), body)
    assert refused.value.message == "Additional properties are not allowed ('x' was unexpected)"


def test_security_group_actions_allow_extra_top_level_keys() -> None:
    body = {"addSecurityGroup": {"name": "default"}, "x": 1}
    validate_action(BY_KEY["addSecurityGroup"], v("2.1"), body)


@pytest.mark.parametrize(
    ("text", "exception"),
    [("é", "UnicodeDecodeError"), ("\ud800", "UnicodeEncodeError")],
)
def test_non_ascii_base64_is_nova_500(text: str, exception: str) -> None:
    """oslo's base64 decode raises outside Nova's try: the API answers 500."""
    body = {"rebuild": {"imageRef": UUID, "user_data": text}}
    with pytest.raises(Fault) as refused:
        validate_action(BY_KEY["rebuild"], v("2.57"), body)
    assert refused.value.status == 500
    assert refused.value.message == UNEXPECTED_500.format(exception)


def test_no_schema_outside_the_action_range_is_a_no_op() -> None:
    """The version gate (404) is the pipeline's job; validation has nothing to apply."""
    validate_action(BY_KEY["addFloatingIp"], v("2.44"), {"addFloatingIp": "junk"})
    validate_action(BY_KEY["trigger_crash_dump"], v("2.16"), {"trigger_crash_dump": 1})


def test_first_error_is_none_for_a_valid_body() -> None:
    schema = BY_KEY["reboot"].schemas[0].schema
    assert schema is not None
    assert first_error(schema, {"reboot": {"type": "HARD"}}) is None


def test_validation_never_mutates_the_body() -> None:
    body = {"createImage": {"name": "i", "metadata": {"a/b": "x"}}}
    snapshot = repr(body)
    with pytest.raises(Fault):
        validate_action(BY_KEY["createImage"], v("2.1"), body)
    assert repr(body) == snapshot


def test_a_body_valid_at_one_version_is_still_judged_at_another() -> None:
    # validate_action_bytes remembers valid bodies by action, version and bytes.
    # Before 2.73 lock takes anything; from 2.73 a locked_reason must not be empty.
    raw = b'{"lock": {"locked_reason": ""}}'
    value: dict[str, Any] = {"lock": {"locked_reason": ""}}
    for _ in range(2):
        validate_action_bytes(BY_KEY["lock"], v("2.72"), raw, value)
    for _ in range(2):
        with pytest.raises(Fault) as refused:
            validate_action_bytes(BY_KEY["lock"], v("2.73"), raw, value)
        assert refused.value.status == 400
