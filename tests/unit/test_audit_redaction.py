"""Redaction, as a property: for every action in the catalogue and any body shape, secrets
planted at any depth never reach a sink (JSON or CADF), nor do tokens or secret query values.

Every secret carries the marker ``S3CR3T`` (upper case and digits); the random keys and
values around them are lower case, so any trace of the marker in an output is a leak.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.audit.chain import Chain
from gateway.audit.records import REDACTED, Instance, Redactor, build_record, scrub_message
from gateway.audit.worker import render
from gateway.call import Call
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import ACTIONS, ActionSpec
from gateway.nova.faults import Fault
from gateway.nova.routing import Route, RouteKind
from gateway.nova.types import Version
from gateway.nova.validation import validate_action
from tests.support.audit import KEY

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

MARKER = "S3CR3T"
SERVER = "9d7a1c34-5b2e-4f10-8e6d-3c2b1a0f9e8d"
OPERATOR_FIELDS = ["ssn", "Private_Notes"]
VERSIONS = [Version(2, minor) for minor in range(1, 105)]
LOWER = "abcdefghijklmnopqrstuvwxyz_"
WORDS = ["password", "Password", "PASSWORD", "passwd", "secret", "Secret", "token", "TOKEN"]

secret_keys = st.one_of(
    st.sampled_from(
        ["adminPass", "ADMINPASS", "user_data", "password", "admin_password", "client_secret",
         "auth_token", "ssn", "PRIVATE_NOTES", "private_notes"]
    ),
    st.builds(
        lambda before, word, after: before + word + after,
        st.text(LOWER, max_size=4),
        st.sampled_from(WORDS),
        st.text(LOWER, max_size=4),
    ),
)  # fmt: skip
plain_text = st.text(alphabet=LOWER + "0123456789 .-/", max_size=12)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | plain_text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(LOWER, min_size=1, max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def known_keys(spec: ActionSpec, version: Version) -> list[str]:
    """The keys the action's schema names, so bodies look like the action's own."""
    schema_range = spec.schema_for(version)
    if schema_range is None or schema_range.schema is None:
        return []
    value = schema_range.schema.get("properties", {}).get(spec.key, {})
    return sorted(value.get("properties", {})) if isinstance(value, dict) else []


def plant(draw: Any, value: Any, key: str, payload: Any) -> Any:
    """``value`` with ``{key: payload}`` put into a dict at a random depth."""
    if isinstance(value, dict) and value:
        child_key = draw(st.sampled_from(sorted(value)))
        child = value[child_key]
        if isinstance(child, dict | list) and draw(st.booleans()):
            return {**value, child_key: plant(draw, child, key, payload)}
        return {**value, key: payload}
    if isinstance(value, list) and value:
        index = draw(st.integers(0, len(value) - 1))
        if isinstance(value[index], dict | list) and draw(st.booleans()):
            copy = list(value)
            copy[index] = plant(draw, value[index], key, payload)
            return copy
        return [*value, {key: payload}]
    return {key: payload}


@st.composite
def planted(draw: Any) -> tuple[ActionSpec, Version, Any, list[str]]:
    spec = draw(st.sampled_from(ACTIONS))
    version = draw(st.sampled_from([v for v in VERSIONS if spec.supports(v)]))
    keys = known_keys(spec, version)
    key_names = st.sampled_from(keys) if keys else st.text(LOWER, min_size=1, max_size=8)
    shaped = st.dictionaries(key_names, plain_values, max_size=4)
    value = draw(st.one_of(shaped, plain_values))
    secrets: list[str] = []
    for number in range(draw(st.integers(1, 4))):
        secret = f"{MARKER}{number}" + draw(st.text(max_size=10))  # any characters at all
        secrets.append(secret)
        form = draw(st.sampled_from(["plain", "nested", "listed", "personality"]))
        if form == "personality":
            payload: Any = [{"path": "/etc/motd", "contents": secret}]
            value = plant(draw, value, "personality", payload)
            continue
        payload = {"plain": secret, "nested": {"inner": [secret]}, "listed": [1, secret]}[form]
        value = plant(draw, value, draw(secret_keys), payload)
    return spec, version, value, secrets


def make_call(spec: ActionSpec, version: Version, value: Any, query: str) -> Call:
    body = {spec.key: value}
    target = f"/v2.1/servers/{SERVER}/action{query}"
    call = Call(
        request_id="req-00000000-0000-4000-8000-000000000000",
        method="POST",
        target=target,
        headers=[("X-Auth-Token", f"{MARKER}-token"), ("User-Agent", "agent")],
        peer="192.0.2.1",
        scheme="http",
        host="gateway",
        body=json.dumps(body).encode(),  # the raw body is never recorded
    )
    call.route = Route(RouteKind.SERVER_ACTION, target.partition("?")[0], query, SERVER)
    call.version = version
    call.action = spec
    call.action_body = body
    call.credentials = Credentials("alice", "p1", frozenset({"member"}), mode="keystone")
    try:
        # The pipeline's own validation: its messages may quote the secret values.
        validate_action(spec, version, body)
        call.decision, call.status = "allow", spec.normal_status
    except Fault as fault:
        call.decision, call.fault, call.status = "deny", fault, fault.status
    return call


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(planted(), st.sampled_from(["", f"?admin_password={MARKER}q", f"?x=1&Token={MARKER}2"]))
def test_no_secret_reaches_any_sink(
    case: tuple[ActionSpec, Version, Any, list[str]], query: str
) -> None:
    spec, version, value, _secrets = case  # each secret carries MARKER
    call = make_call(spec, version, value, query)
    record = build_record(call, Instance("host", 1), Redactor(OPERATOR_FIELDS))
    outputs = []
    for record_format in ("json", "cadf"):
        document, _ = render(record, record_format)
        sealed, line = Chain(KEY, "chain").seal(document)
        outputs.append(line)
        # The messaging sink publishes the sealed dict; oslo.messaging serialises it.
        outputs.append(json.dumps(sealed, ensure_ascii=False))
    for output in outputs:
        assert MARKER not in output, (spec.key, value, output)
    assert record["action"]["key"] == spec.key
    if call.fault is not None:
        assert record["decision"]["reason"] == call.fault.reason


def test_redactor_keeps_structure_and_collects_removed_values() -> None:
    found: list[Any] = []
    body = {
        "adminPass": "a",
        "metadata": {"db_password": 5, "name": "web"},
        "personality": [{"path": "/x", "contents": "b"}],
        "list": [{"X-Token": ["c", {"d": "e"}]}],
        "ssn": "f",
    }
    redacted = Redactor(["SSN"]).redact(body, found)
    assert redacted == {
        "adminPass": REDACTED,
        "metadata": {"db_password": REDACTED, "name": "web"},
        "personality": [{"path": "/x", "contents": REDACTED}],
        "list": [{"X-Token": REDACTED}],
        "ssn": REDACTED,
    }
    assert sorted(map(str, found)) == ["5", "a", "b", "c", "e", "f"]


def test_scrub_message_removes_every_spelling_or_withholds() -> None:
    secret = "it's\x07\u00e9"
    message = f"Invalid input. Value: {{'adminPass': {secret!r}}}. {json.dumps(secret)} {secret}"
    scrubbed = scrub_message(message, [secret])
    assert scrubbed is not None
    assert secret not in scrubbed and repr(secret)[1:-1] not in scrubbed
    assert scrub_message("nothing to hide", []) == "nothing to hide"


def test_query_values_of_secret_names_are_redacted() -> None:
    redactor = Redactor()
    assert redactor.redact_target("/v2.1/servers?name=a&pass%77ord=b&token") == (
        "/v2.1/servers?name=a&password=***&token".replace("password", "pass%77ord")
    )
    assert redactor.redact_target("/v2.1/servers") == "/v2.1/servers"
