"""novasim's notifications have the shape of the real Nova's: every message in
../shared/nova/notifications (captured from Nova 34 on RabbitMQ) is compared with the one the
simulator builds for the same event, key by key, nested objects included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.notifications.events import parse_instance_event, unwrap
from novasim.config import SimConfig
from novasim.identity import Caller
from novasim.notify import Context, Notifier, envelope, message
from novasim.sim import Sim


def shape(value: Any) -> Any:
    """The keys of every nested object (values left out); lists by their first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def real_messages(shared_dir: Path) -> list[dict[str, Any]]:
    folder = shared_dir / "nova" / "notifications"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


@pytest.fixture
def simulated() -> Any:
    sim = Sim(SimConfig(seed=1))
    server = next(iter(sim.store.servers.values()))
    context = Context("alice", "p1", ("member", "reader"), "req-0000")

    def build(event_type: str, payload_name: str) -> dict[str, Any]:
        old = ("active", None, False, None)
        return message(event_type, server, payload_name, context, "lab", old)

    return build


def test_every_real_message_has_the_simulators_shape(shared_dir: Path, simulated: Any) -> None:
    for real in real_messages(shared_dir):
        payload = real["payload"]
        ours = simulated(real["event_type"], payload["nova_object.name"])
        assert set(ours) == set(real), real["event_type"]
        assert ours["payload"]["nova_object.version"] == payload["nova_object.version"]
        assert ours["payload"]["nova_object.namespace"] == payload["nova_object.namespace"]
        real_data, our_data = payload["nova_object.data"], ours["payload"]["nova_object.data"]
        assert set(our_data) == set(real_data), real["event_type"]
        for key in ("flavor", "state_update", "audit_period"):
            if key in real_data:
                assert shape(our_data[key]) == shape(real_data[key]), key
        assert ours["priority"] == real["priority"]
        assert ours["publisher_id"].split(":")[0] == real["publisher_id"].split(":")[0]


def test_the_gateway_reads_the_same_facts_from_both(shared_dir: Path, simulated: Any) -> None:
    for real in real_messages(shared_dir):
        ours = simulated(real["event_type"], real["payload"]["nova_object.name"])
        theirs_event = parse_instance_event(real)
        our_event = parse_instance_event(unwrap(envelope(ours).encode()) or {})
        assert theirs_event is not None and our_event is not None
        for field in ("server_id", "project_id", "request_id", "flavor", "image", "published"):
            assert (getattr(our_event, field) is None) == (getattr(theirs_event, field) is None)


def test_a_sequence_sends_what_nova_sends() -> None:
    sent: list[dict[str, Any]] = []

    class Capture:
        def send(self, item: dict[str, Any]) -> None:
            sent.append(item)

    sim = Sim(SimConfig(seed=1))
    server = next(iter(sim.store.servers.values()))
    notifier = Notifier(Capture())  # type: ignore[arg-type]
    alice = Caller("alice", "p1", frozenset({"member"}))
    notifier.acting(server, alice, "req-pause", "pause")
    server.task_state = "pausing"
    notifier.changed(server)
    server.vm_state, server.task_state = "paused", None
    notifier.changed(server)
    notifier.acting(server, alice, "req-lock", "lock")
    server.locked_by = "owner"
    notifier.changed(server)
    # The real Nova's order for pause then lock (../shared/nova/notifications, 00-09).
    assert [item["event_type"] for item in sent] == [
        "instance.update",
        "instance.pause.start",
        "instance.update",
        "instance.pause.end",
        "instance.update",
        "instance.lock",
    ]
    assert {item["payload"]["nova_object.data"]["request_id"] for item in sent[:4]} == {"req-pause"}


def capture() -> tuple[Notifier, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    class Capture:
        def send(self, item: dict[str, Any]) -> None:
            sent.append(item)

    return Notifier(Capture()), sent  # type: ignore[arg-type]


def test_a_migration_publishes_novas_three_steps_with_the_callers_global_id() -> None:
    sim = Sim(SimConfig(seed=1))
    server = next(iter(sim.store.servers.values()))
    notifier, sent = capture()
    alice = Caller("alice", "p1", frozenset({"member"}))
    global_id = "req-11111111-2222-4333-8444-555555555555"
    notifier.acting(server, alice, "req-migrate", "migrate", global_id)
    server.task_state = "resize_prep"
    notifier.changed(server)
    server.vm_state, server.task_state = "resized", None
    notifier.changed(server)
    # The real Nova's order for a cold migration (nova/compute/manager.py: prep_resize,
    # resize_instance, finish_resize), instance.update and scheduler events left out.
    assert [item["event_type"] for item in sent if item["event_type"] != "instance.update"] == [
        "instance.resize_prep.start",
        "instance.resize_prep.end",
        "instance.resize.start",
        "instance.resize.end",
        "instance.resize_finish.start",
        "instance.resize_finish.end",
    ]
    assert {item["_context_global_request_id"] for item in sent} == {global_id}


def test_a_failing_rebuild_ends_in_an_error_event_like_novas() -> None:
    sim = Sim(SimConfig(seed=1))
    server = next(iter(sim.store.servers.values()))
    notifier, sent = capture()
    notifier.acting(server, Caller("alice", "p1", frozenset({"member"})), "req-r", "rebuild")
    notifier.failing(server, "PreserveEphemeralNotSupported", "no", "_rebuild_default_impl")
    server.task_state = "rebuilding"
    notifier.changed(server)
    server.vm_state, server.task_state = "error", None
    notifier.changed(server)
    *_, error = sent
    assert error["event_type"] == "instance.rebuild.error" and error["priority"] == "ERROR"
    fault = error["payload"]["nova_object.data"]["fault"]
    # The shape of the ExceptionPayload 1.1 Nova sends (nova/notifications/objects/exception.py).
    assert fault["nova_object.name"] == "ExceptionPayload"
    assert fault["nova_object.version"] == "1.1"
    assert set(fault["nova_object.data"]) == {
        "module_name", "function_name", "exception", "exception_message", "traceback"
    }  # fmt: skip
    event = parse_instance_event(unwrap(envelope(error).encode()) or {})
    assert event is not None and event.fault == "PreserveEphemeralNotSupported: no"
