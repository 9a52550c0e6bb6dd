"""Execution evidence: Nova's real ``instance.*`` notifications (captured from the real Nova, in
../shared) become execution records that follow the decision they belong to, with the phase
Nova's table of each action's events gives; notifications about nothing this gateway forwarded
are only counted. The table is checked against the captures and Nova's own NotificationAction.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.chain import Entry, Where
from gateway.audit.execution import DecisionIndex, DecisionRef, Execution, Phase, phase_for
from gateway.audit.ledger import Ledger, tally_executions
from gateway.notifications.events import parse_instance_event
from gateway.nova.action_events import EVENTS, is_action_event
from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS
from tests.conftest import skip_or_fail
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
from tests.support.labs import lab_home

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

# The calls ../shared/nova/notifications captured, in order (its INDEX.md).
CAPTURED_CALLS = ("pause", "unpause", "lock", "unlock", "os-stop", "os-start", "reboot")
SUFFIX_PHASE = {"start": Phase.STARTED, "end": Phase.ENDED, "error": Phase.FAILED}


def captured(shared_dir: Path) -> list[dict[str, Any]]:
    paths = sorted((shared_dir / "nova" / "notifications").glob("*.json"))
    return [json.loads(path.read_text()) for path in paths]


def notification(shared_dir: Path, name: str) -> dict[str, Any]:
    path = sorted((shared_dir / "nova" / "notifications").glob(f"*-{name}.json"))[0]
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def execution_of(message: dict[str, Any]) -> Execution:
    """As the feed hands it to the trail: the feed's parser, then the trail's reduction."""
    event = parse_instance_event(message)
    assert event is not None
    return Execution.from_event(event)


# -- the table of each action's events ------------------------------------------------------


def test_every_action_has_a_row_and_every_row_without_events_says_why() -> None:
    keys = set(BY_KEY) | {spec.key for spec in SERVER_RESOURCE_ACTIONS.values()}
    assert set(EVENTS) == keys
    silent = {key for key, row in EVENTS.items() if not row.publishes}
    assert all(EVENTS[key].why_none for key in silent)
    # Nova 34 publishes no instance event of their own for these (the e2e test shows it
    # for changePassword, injectNetworkInfo and os-resetState against the real Nova).
    assert silent == {
        "resetNetwork", "injectNetworkInfo", "os-resetState", "changePassword",
        "os-getConsoleOutput", "addFloatingIp", "removeFloatingIp", "addFixedIp",
        "removeFixedIp", "os-getVNCConsole", "os-getSPICEConsole", "os-getSerialConsole",
        "os-getRDPConsole", "addSecurityGroup", "removeSecurityGroup", "update",
    }  # fmt: skip


def test_the_captured_notifications_say_what_their_name_says(shared_dir: Path) -> None:
    """Each captured action event, read against the row of the call that caused it."""
    calls = iter(CAPTURED_CALLS)
    seen = []
    for message in captured(shared_dir):
        event_type = message["event_type"]
        if event_type == "instance.update":
            assert not is_action_event(event_type)
            continue
        if event_type.endswith(".start") or event_type in ("instance.lock", "instance.unlock"):
            action = next(calls)
        suffix = event_type.rsplit(".", 1)[1]
        expected = SUFFIX_PHASE.get(suffix, Phase.ENDED)  # lock, unlock: done in nova-api
        assert phase_for(action, event_type) is expected, (action, event_type)
        seen.append(action)
    assert sorted(set(seen)) == sorted(CAPTURED_CALLS)
    assert phase_for("pause", "instance.unpause.end") is None  # another action's event


def nova_notification_actions() -> set[str]:
    """NotificationAction's values in the real Nova's source (its lab virtualenv)."""
    found = sorted((lab_home("realnova") / "venv").glob("lib/python*/site-packages/nova"))
    if not found:
        skip_or_fail("the real Nova's source is not installed: run ../shared/realnova/setup.sh")
    text = (found[0] / "objects" / "fields.py").read_text()
    body = text.split("class NotificationAction(", 1)[1].split("\nclass ", 1)[0]
    return set(re.findall(r"^    [A-Z_]+ = '([a-z_]+)'$", body, re.MULTILINE))


def test_every_event_name_is_one_of_novas_notification_actions() -> None:
    names = {n for row in EVENTS.values() for n in (*row.names, *row.undone_by, *row.ends)}
    assert names <= nova_notification_actions()


@pytest.mark.parametrize(
    ("action", "sequence", "recorded"),
    [
        # As the real Nova publishes them (tests/e2e/test_audit_execution_realnova.py).
        (
            "migrate",
            ["resize_prep.start", "resize_prep.end", "resize.start", "resize.end",
             "resize_finish.start", "resize_finish.end"],
            ["started", "ended"],
        ),
        (
            "shelve",  # offloaded at once: shelve_offload follows the shelve's end
            ["shelve.start", "shelve.end", "shelve_offload.start", "shelve_offload.end"],
            ["started", "ended"],
        ),
        ("shelve", ["shelve_offload.start", "shelve_offload.end"], ["started", "ended"]),
        ("rebuild", ["rebuild_scheduled", "rebuild.start", "rebuild.error"], ["started", "failed"]),
        # "Reboot failed but instance is running": .error, then .end all the same.
        ("reboot", ["reboot.start", "reboot.error", "reboot.end"], ["started", "failed"]),
        ("evacuate", ["evacuate", "rebuild_scheduled", "rebuild.start", "rebuild.end"],
         ["started", "ended"]),
        (
            "os-migrateLive",
            ["live_migration_pre.start", "live_migration_pre.end",
             "live_migration_rollback.start", "live_migration_rollback.end"],
            ["started", "failed"],
        ),
        ("lock", ["lock"], ["ended"]),
        ("os-stop", ["power_on.start", "power_on.end"], []),  # not its events
        ("delete", ["shutdown.start", "shutdown.end", "delete.start", "delete.end"],
         ["started", "ended"]),
        ("createImage", ["snapshot.start", "snapshot.end"], ["started", "ended"]),
    ],
)  # fmt: skip
def test_a_phase_is_recorded_once_and_never_after_a_later_one(
    action: str, sequence: list[str], recorded: list[str]
) -> None:
    index = DecisionIndex(size=10, seconds=60.0)
    ref = DecisionRef("req-gw", "req-global", "srv", action)
    phases = []
    for name in sequence:
        phase = phase_for(action, f"instance.{name}")
        if phase is not None and index.advance(ref, phase):
            phases.append(phase.value)
    assert phases == recorded


# -- the notification itself ---------------------------------------------------------------


def test_a_notification_keeps_its_ids_and_never_its_token(shared_dir: Path) -> None:
    message = notification(shared_dir, "instance.pause.end")
    execution = execution_of(message)
    data = message["payload"]["nova_object.data"]
    assert execution.server_id == data["uuid"]
    assert execution.nova_request_id == data["request_id"] == message["_context_request_id"]
    assert execution.global_request_id == message["_context_global_request_id"]
    assert execution.occurred_at is not None
    assert execution.occurred_at.startswith(message["timestamp"].replace(" ", "T"))
    assert execution.message_id == message["message_id"]
    assert execution.fault is None
    message["_context_auth_token"] = "a-secret-token"
    assert "a-secret-token" not in repr(execution_of(message))


def test_an_error_notification_keeps_the_exception_bounded(shared_dir: Path) -> None:
    message = notification(shared_dir, "instance.reboot.end")
    message["event_type"] = "instance.reboot.error"
    message["payload"]["nova_object.data"]["fault"] = {
        "nova_object.data": {"exception": "InstanceNotFound", "exception_message": "x" * 5000}
    }
    execution = execution_of(message)
    assert execution.fault is not None
    assert execution.fault.startswith("InstanceNotFound: xxx") and len(execution.fault) == 512


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


# -- the trail ----------------------------------------------------------------------------


async def test_execution_records_follow_the_decision_they_belong_to(
    tmp_path: Path, shared_dir: Path
) -> None:
    trail_dir = tmp_path / "trail"
    overrides = audit_overrides(trail_dir, write_key(tmp_path))
    started = execution_of(notification(shared_dir, "instance.pause.start"))
    ended = execution_of(notification(shared_dir, "instance.pause.end"))
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        audit = listeners.gate.audit
        assert audit is not None and not audit.execution_evidence  # no bus configured
        server = sim.seeded("p1")
        pause = await send(
            base_url(listeners), "POST", f"/v2.1/servers/{server}/action", body={"pause": None}
        )
        assert pause.status == 202
        # Nova's notifications for this call carry the id the gateway forwarded (the
        # client's global id here) and this server; their own ids come from the capture.
        mine = {"server_id": server, "global_request_id": pause.global_id}
        assert audit.record_execution(dataclasses.replace(started, **mine)) is True
        assert audit.record_execution(dataclasses.replace(started, **mine)) is False  # again
        assert audit.record_execution(dataclasses.replace(ended, **mine)) is True
        # The same events for another server, or for a call nobody forwarded here: not ours.
        assert audit.record_execution(dataclasses.replace(ended, server_id="x" * 36)) is False
        assert audit.record_execution(ended) is False
        update = execution_of(notification(shared_dir, "instance.update"))
        assert audit.record_execution(dataclasses.replace(update, **mine)) is False
        assert (audit.executions, audit.executions_unmatched) == (2, 2)
        assert audit.executions_by_phase == {Phase.STARTED: 1, Phase.ENDED: 1, Phase.FAILED: 0}
        await audit.close()  # what the feed still hands over while the trail closes: refused
        failed = dataclasses.replace(ended, event_type="instance.pause.error", **mine)
        assert audit.record_execution(failed) is False
    records = read_records(trail_dir)
    assert records[0]["event"] == "chain_opened" and records[0]["execution_evidence"] is False
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
    text = out.getvalue()
    assert "1 written ahead, 1 with their outcome, 0 unfinished; 2 execution record(s)" in text
    # This trail's worker had no bus: verify says its executions could not be recorded.
    assert "executions: not recorded by 1 chain(s): their worker had no notification bus" in text
    out = io.StringIO()
    argv = ["query", "--key-file", str(key_file), "--format", "jsonl", "--action", "pause"]
    assert audit_cli.main([*argv, str(trail_dir)], out=out) == 0
    [row] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (row["execution"], row["status"], row["verified"]) == ("ended", 202, "ok")
    assert [e["phase"] for e in row["executions"]] == ["started", "ended"]
    assert row["execution_evidence"] is False


def test_verify_counts_a_call_only_where_its_chain_says_executions_were_recorded() -> None:
    def entry(line: int, event: str) -> Entry:
        return Entry(Where("audit.jsonl", line), "chain-1", line + 40, None, "h", True, event)

    ledger = Ledger(slim=True)
    decision = {"event": "decision", "request_id": "r1", "action": {"key": "pause"}}
    outcome = {"event": "outcome", "request_id": "r1", "forwarded": True, "status": 202}
    ledger.add(entry(1, "decision"), decision)
    ledger.add(entry(2, "outcome"), outcome)
    # Read with --partial, the chain's chain_opened not among the files: unknown.
    tally = tally_executions(ledger)
    assert (tally.unknown, tally.awaited, tally.without_bus) == (1, 0, 0)
    ledger.add(entry(0, "chain_opened"), {"event": "chain_opened", "execution_evidence": False})
    tally = tally_executions(ledger)
    assert (tally.unknown, tally.awaited, tally.without_bus) == (0, 0, 1)
    ledger.evidence["chain-1"] = True
    tally = tally_executions(ledger)
    assert (tally.awaited, [call.request_id for call in tally.missing]) == (1, ["r1"])
