"""Parsing Nova's instance notifications: the real ones in ../shared/nova/notifications
(checked against that folder's INDEX.md table, an independent record of each message),
the envelope, and that no secret of the context survives parsing."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.notifications.events import (
    InstanceEvent,
    parse_instance_event,
    unwrap,
)
from gateway.servers.facts import ServerFacts


def samples(shared_dir: Path) -> dict[str, dict[str, Any]]:
    folder = shared_dir / "nova" / "notifications"
    return {path.name: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def index_rows(shared_dir: Path) -> dict[str, list[str]]:
    """INDEX.md's table: file -> [event, state, task_state, locked, user, initiator]."""
    rows = {}
    text = (shared_dir / "nova" / "notifications" / "INDEX.md").read_text()
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].startswith("`") and cells[0].endswith(".json`"):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_every_shared_notification_parses_as_the_index_describes(shared_dir: Path) -> None:
    rows = index_rows(shared_dir)
    messages = samples(shared_dir)
    assert rows and set(rows) == set(messages)
    for name, message in messages.items():
        event = parse_instance_event(message)
        assert event is not None, name
        described, state, task, locked, _user, initiator = rows[name]
        assert described.split()[0].strip("`") == event.event_type
        assert event.vm_state == state
        assert str(event.task_state) == task
        assert str(event.locked) == locked
        assert f"{event.initiator_user}/{event.initiator_project}" == initiator
        assert event.request_id == message["_context_request_id"]
        assert event.published is not None


def test_the_lock_notification_names_who_locked(shared_dir: Path) -> None:
    messages = samples(shared_dir)
    lock = parse_instance_event(messages["09-instance.lock.json"])
    assert lock is not None and lock.lock_holder == "owner"  # alice of p1 locked p1's server
    admin_side = dict(messages["09-instance.lock.json"])
    data = dict(admin_side["payload"]["nova_object.data"])
    data["action_initiator_project"] = "admin"
    admin_side["payload"] = {**admin_side["payload"], "nova_object.data": data}
    admin = parse_instance_event(admin_side)
    assert admin is not None and admin.lock_holder == "admin"
    update = parse_instance_event(messages["08-instance.update.json"])
    assert update is not None and update.locked and update.lock_holder is None


def test_facts_from_a_notification_match_facts_from_a_read(shared_dir: Path) -> None:
    event = parse_instance_event(samples(shared_dir)["14-instance.update.json"])
    assert event is not None
    facts = ServerFacts.from_event(event)
    # What GET /servers/{id} at 2.73 shows for the same server (Nova's view fields).
    view = {
        "id": event.server_id,
        "tenant_id": "p1",
        "user_id": "seed",
        "status": "SHUTOFF",
        "OS-EXT-STS:vm_state": "stopped",
        "OS-EXT-STS:task_state": None,
        "OS-SRV-USG:launched_at": event.launched_at,
        "locked": False,
        "locked_reason": None,
        "flavor": {"original_name": "m1.tiny"},
        "image": {"id": "c0ffee00-0000-4000-8000-000000000001"},
    }
    assert facts == ServerFacts.from_view(view)


def test_no_context_secret_survives_parsing(shared_dir: Path) -> None:
    message = dict(samples(shared_dir)["09-instance.lock.json"])
    message["_context_auth_token"] = "gAAAAA-secret-token"
    message["_context_service_catalog"] = [{"endpoints": [{"url": "http://secret"}]}]
    event = parse_instance_event(unwrap(json.dumps(message).encode()) or {})
    assert event is not None
    kept = json.dumps(dataclasses.asdict(event), default=str)
    assert "secret" not in kept


def test_the_oslo_envelope_is_unwrapped(shared_dir: Path) -> None:
    message = samples(shared_dir)["03-instance.pause.end.json"]
    wrapped = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})
    assert unwrap(wrapped.encode()) == message
    assert unwrap(wrapped) == message
    assert unwrap(message) == message


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1]", b'{"oslo.version": "2.0", "oslo.message": 5}', b'"x"'],
)
def test_what_is_not_a_message_is_none(body: bytes) -> None:
    assert unwrap(body) is None or parse_instance_event(unwrap(body) or {}) is None


def test_other_notifications_are_not_instance_events(shared_dir: Path) -> None:
    message = dict(samples(shared_dir)["00-instance.update.json"])
    assert parse_instance_event({**message, "event_type": "compute.exception"}) is None
    assert parse_instance_event({**message, "payload": {"nova_object.data": {}}}) is None
    assert parse_instance_event({**message, "payload": "text"}) is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    event_type=st.one_of(st.just("instance.update"), st.text(max_size=30)),
    data=st.dictionaries(
        st.sampled_from(
            ["uuid", "tenant_id", "state", "task_state", "locked", "flavor", "request_id"]
        ),
        _json,
    ),
    extra=st.dictionaries(st.text(max_size=20), _json, max_size=4),
)
def test_any_message_parses_or_is_refused_without_raising(
    event_type: str, data: dict[str, Any], extra: dict[str, Any]
) -> None:
    message = {**extra, "event_type": event_type, "payload": {"nova_object.data": data}}
    event = parse_instance_event(message)
    if event is None:
        return
    assert isinstance(event, InstanceEvent)
    assert event.event_type.startswith("instance.")
    assert isinstance(event.server_id, str) and event.server_id
    assert event.locked is (data.get("locked") is True)
    assert re.fullmatch(r"[A-Z_]+", ServerFacts.from_event(event).status)
