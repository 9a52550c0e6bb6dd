"""Execution evidence, the entry point a notification feed calls: Nova's real ``instance.*``
notifications (captured from the real Nova, in ../shared) become execution records that follow
the decision they belong to; notifications about nothing this gateway forwarded are ignored.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.execution import DecisionIndex, DecisionRef, Execution, Phase, phase_of
from tests.support.audit import (
    audit_overrides,
    outcomes_of,
    read_records,
    requests_by_global_id,
    send,
    simulator,
    write_key,
)
from tests.support.gateway import base_url, running_gateway

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


def notification(shared_dir: Path, name: str) -> dict[str, Any]:
    path = sorted((shared_dir / "nova" / "notifications").glob(f"*-{name}.json"))[0]
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def execution_of(message: dict[str, Any]) -> Execution:
    """As a feed would: (event_type, payload, context, metadata) of the delivered message."""
    context = {key: value for key, value in message.items() if key.startswith("_context_")}
    metadata = {"message_id": message["message_id"], "timestamp": message["timestamp"]}
    found = Execution.from_notification(
        message["event_type"], message["payload"], context, metadata
    )
    assert found is not None
    return found


def test_every_captured_nova_event_has_the_phase_its_name_says(shared_dir: Path) -> None:
    phases = {}
    for path in sorted((shared_dir / "nova" / "notifications").glob("*.json")):
        event_type = json.loads(path.read_text())["event_type"]
        phases[event_type] = phase_of(event_type)
    assert phases == {
        "instance.update": None,  # a state change, not an action
        "instance.pause.start": Phase.STARTED,
        "instance.pause.end": Phase.ENDED,
        "instance.unpause.start": Phase.STARTED,
        "instance.unpause.end": Phase.ENDED,
        "instance.lock": Phase.ENDED,  # done inside the API, one event without a phase
        "instance.unlock": Phase.ENDED,
        "instance.power_off.start": Phase.STARTED,
        "instance.power_off.end": Phase.ENDED,
        "instance.power_on.start": Phase.STARTED,
        "instance.power_on.end": Phase.ENDED,
        "instance.reboot.start": Phase.STARTED,
        "instance.reboot.end": Phase.ENDED,
    }
    assert phase_of("instance.rebuild.error") is Phase.FAILED
    assert phase_of("instance.exists") is None and phase_of("compute.exception") is None
    assert phase_of("instance.evacuate") is Phase.STARTED  # the compute's rebuild follows


def test_a_notification_keeps_its_ids_and_never_its_token(shared_dir: Path) -> None:
    message = notification(shared_dir, "instance.pause.end")
    execution = execution_of(message)
    data = message["payload"]["nova_object.data"]
    assert execution.server_id == data["uuid"]
    assert execution.nova_request_id == data["request_id"] == message["_context_request_id"]
    assert execution.global_request_id == message["_context_global_request_id"]
    assert execution.occurred_at == message["timestamp"]
    assert execution.fault is None
    # oslo.messaging hands endpoints the context without the _context_ prefix: same result.
    plain = {"global_request_id": "req-00000000-0000-4000-8000-000000000001"}
    assert Execution.from_notification(
        message["event_type"], message["payload"], plain
    ) == dataclasses.replace(
        execution, global_request_id=plain["global_request_id"], occurred_at=None,
        message_id=None,
    )  # fmt: skip
    assert Execution.from_notification("instance.pause.end", {"other": 1}, {}) is None


def test_an_error_notification_keeps_the_exception_bounded() -> None:
    payload = {
        "nova_object.data": {
            "uuid": "srv",
            "request_id": "req-1",
            "fault": {
                "nova_object.data": {"exception": "RebuildFailed", "exception_message": "x" * 5000}
            },
        }
    }
    execution = Execution.from_notification("instance.rebuild.error", payload, {})
    assert execution is not None and execution.fault is not None
    assert execution.fault.startswith("RebuildFailed: xxx") and len(execution.fault) == 512


def test_the_index_finds_by_nova_id_or_forwarded_id_and_server_and_forgets() -> None:
    now = [0.0]
    index = DecisionIndex(size=100, seconds=60.0, timer=lambda: now[0])
    ref = DecisionRef("req-gw", "req-global", "srv-1", "pause")
    index.add(ref)
    by_forwarded = Execution("instance.pause.start", "srv-1", None, "req-global")
    assert index.find(by_forwarded) == ref
    assert index.find(dataclasses.replace(by_forwarded, server_id="srv-2")) is None
    index.answered(ref, "req-nova")
    assert index.find(Execution("instance.pause.end", "srv-1", "req-nova", None)) == ref
    now[0] = 61.0
    assert index.find(by_forwarded) is None  # too old: not ours to claim any more


async def test_execution_records_follow_the_decision_they_belong_to(
    tmp_path: Path, shared_dir: Path
) -> None:
    trail_dir = tmp_path / "trail"
    overrides = audit_overrides(trail_dir, write_key(tmp_path))
    started = execution_of(notification(shared_dir, "instance.pause.start"))
    ended = execution_of(notification(shared_dir, "instance.pause.end"))
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        audit = listeners.gate.audit
        assert audit is not None
        server = sim.seeded("p1")
        pause = await send(
            base_url(listeners), "POST", f"/v2.1/servers/{server}/action", body={"pause": None}
        )
        assert pause.status == 202
        # Nova's notifications for this call carry the id the gateway forwarded (the
        # client's global id here) and this server; their own ids come from the capture.
        mine = {"server_id": server, "global_request_id": pause.global_id}
        assert audit.record_execution(dataclasses.replace(started, **mine)) is True
        assert audit.record_execution(dataclasses.replace(ended, **mine)) is True
        # The same events for another server, or for a call nobody forwarded here: not ours.
        assert audit.record_execution(dataclasses.replace(ended, server_id="x" * 36)) is False
        assert audit.record_execution(ended) is False
        update = execution_of(notification(shared_dir, "instance.update"))
        assert audit.record_execution(dataclasses.replace(update, **mine)) is False
        assert (audit.executions, audit.executions_unmatched) == (2, 2)
    records = read_records(trail_dir)
    [decision] = requests_by_global_id(records)[pause.global_id]
    [outcome] = outcomes_of(records, decision["request_id"])
    executions = [r for r in records if r.get("event") == "execution"]
    assert [e["phase"] for e in executions] == ["started", "ended"]
    for execution in executions:
        assert execution["request_id"] == decision["request_id"]
        assert execution["server_id"] == server and execution["action"] == "pause"
        assert execution["seq"] > decision["seq"]
        assert "_context_auth_token" not in json.dumps(execution)
    assert executions[1]["nova"]["event_type"] == "instance.pause.end"
    assert executions[1]["nova"]["request_id"] == ended.nova_request_id
    assert outcome["seq"] > decision["seq"]

    out = io.StringIO()
    key_file = tmp_path / "audit.key"
    assert audit_cli.main(["verify", "--key-file", str(key_file), str(trail_dir)], out=out) == 0
    assert "1 written ahead, 1 with their outcome, 0 unfinished; 2 execution record(s)" in (
        out.getvalue()
    )
    out = io.StringIO()
    argv = ["query", "--key-file", str(key_file), "--format", "jsonl", "--action", "pause"]
    assert audit_cli.main([*argv, str(trail_dir)], out=out) == 0
    [row] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (row["execution"], row["status"], row["verified"]) == ("ended", 202, "ok")
    assert [e["phase"] for e in row["executions"]] == ["started", "ended"]
