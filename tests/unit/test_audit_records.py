"""The audit records of each pipeline outcome: one deciding record per answered request
(a refusal or a read: its request record; a forwarded action: its write-ahead decision
and then its outcome), every field.

Drives the real gateway in-process in front of the simulator and reads the file trail back
after a graceful close (which flushes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.cadf import cadf_action, target_type_uri
from tests.support.audit import (
    KEY,
    Answer,
    audit_overrides,
    outcomes_of,
    read_records,
    requests_by_global_id,
    send,
    simulator,
    write_key,
)
from tests.support.gateway import base_url, running_gateway

PAUSE = "os_compute_api:os-pause-server:pause"
# pycadf warns about every non-UUID identifier (lab user ids); the gateway filters it,
# pytest's per-test warning capture puts it back.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


def only_record(records: list[dict[str, Any]], answer: Answer) -> dict[str, Any]:
    found = requests_by_global_id(records).get(answer.global_id, [])
    assert len(found) == 1, f"{len(found)} records for {answer.global_id}"
    return found[0]


async def run(tmp_path: Path, script: Any, **options: Any) -> list[dict[str, Any]]:
    """Start sim + gateway with a file trail, run ``script(base, sim)``, close, read back."""
    trail = tmp_path / "trail"
    overrides = audit_overrides(trail, write_key(tmp_path), **options.pop("audit", {}))
    overrides.update(options)
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        await script(base_url(listeners), sim)
    return read_records(trail)


def check_common(
    record: dict[str, Any], answer: Answer, records: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The fields every deciding record has; the outcome that follows a decision, if any."""
    assert record["schema"] == "nova-gateway.audit/1"
    assert record["global_request_id"] == answer.global_id
    assert record["request_id"].startswith("req-") and record["request_id"] != answer.global_id
    assert record["instance"]["pid"] > 0 and record["instance"]["host"]
    assert record["time"].endswith("+00:00")
    outcomes = outcomes_of(records, record["request_id"])
    if record["event"] == "request":
        assert outcomes == []
        assert record["decision"]["status"] == answer.status
        assert record["latency_us"]["total"] >= record["latency_us"]["decided"] >= 0
        outcome = None
    else:
        assert record["event"] == "decision"
        assert record["decision"]["status"] is None  # decided, not yet answered
        assert record["latency_us"]["decided"] >= 0 and "total" not in record["latency_us"]
        [outcome] = outcomes
        assert outcome["status"] == answer.status and outcome["forwarded"] is True
        assert outcome["global_request_id"] == answer.global_id
        assert outcome["latency_us"]["total"] >= outcome["latency_us"]["decided"] >= 0
        assert outcome["seq"] > record["seq"]  # the decision came first, in the same chain
        assert outcome["chain"] == record["chain"]
    assert record["initiator"]["address"] == "127.0.0.1"
    assert record["initiator"]["user_agent"] == "audit-tests/1.0"
    assert isinstance(record["seq"], int) and len(record["prev"]) == 64
    assert len(record["hmac"]) == 64
    return outcome


async def test_every_outcome_writes_exactly_one_deciding_record(tmp_path: Path) -> None:
    rules = tmp_path / "limits.yaml"
    rules.write_text("rules:\n  - name: reboots\n    limit: 1 per minute\n    actions: [reboot]\n")
    answers: dict[str, Answer] = {}

    async def script(base: str, sim: Any) -> None:
        server = sim.seeded("p1")
        action = f"/v2.1/servers/{server}/action"
        answers["allowed"] = await send(base, "POST", action, body={"pause": None})
        answers["denied"] = await send(
            base, "POST", action, body={"unpause": None}, token="carol:p1:reader"
        )
        answers["malformed"] = await send(base, "POST", action, raw=b'{"pause": ')
        answers["unauthenticated"] = await send(
            base, "POST", action, body={"pause": None}, token=None
        )
        answers["not_visible"] = await send(
            base, "POST", action, body={"unpause": None}, token="eve:p2"
        )
        answers["first_reboot"] = await send(
            base, "POST", action, body={"reboot": {"type": "HARD"}}
        )
        answers["rate_limited"] = await send(
            base, "POST", action, body={"reboot": {"type": "HARD"}}
        )
        answers["listed"] = await send(base, "GET", "/v2.1/servers?name=x&password=hunter22")
        await sim.server.close()  # the upstream goes away: the next forward fails
        answers["upstream_failed"] = await send(base, "GET", "/v2.1/flavors")

    records = await run(tmp_path, script, **{"rate_limit.rules_file": str(rules)})
    assert [a.status for a in answers.values()] == [202, 403, 400, 401, 404, 202, 429, 200, 502]
    deciding = [r for r in records if r["event"] in ("request", "decision")]
    assert len(deciding) == len(answers)  # nothing else, nothing twice
    outcomes = {
        name: check_common(only_record(records, a), a, records) for name, a in answers.items()
    }
    # Write-ahead for the forwarded actions only: refusals and reads are recorded after.
    written_ahead = {name for name, outcome in outcomes.items() if outcome is not None}
    assert written_ahead == {"allowed", "first_reboot"}
    assert len([r for r in records if r["event"] == "outcome"]) == 2

    allowed = only_record(records, answers["allowed"])
    assert allowed["decision"] | {"verdicts": None} == {
        "outcome": "allow", "status": None, "reason": None, "message": None, "rule": PAUSE,
        "verdicts": None, "would_deny": [],
    }  # fmt: skip
    assert allowed["decision"]["verdicts"] == [{"rule": PAUSE, "outcome": "allowed"}]
    assert allowed["action"] == {"key": "pause", "body": None}
    assert allowed["request"] | {"path": None} == {
        "method": "POST", "path": None, "route": "server_action", "microversion": "2.1",
    }  # fmt: skip
    assert allowed["request"]["path"].endswith("/action")
    initiator = allowed["initiator"]
    assert (initiator["user_id"], initiator["project_id"], initiator["roles"]) == (
        "alice", "p1", ["member", "reader"],
    )  # fmt: skip
    assert initiator["user_domain_id"] == "default" and initiator["authenticated"] is True
    target = allowed["target"]
    assert target["project_id"] == "p1" and target["server_id"] in allowed["request"]["path"]
    assert target["server"]["status"] == "ACTIVE"
    assert "upstream" not in allowed  # known only after the answer: in the outcome
    outcome = outcomes["allowed"]
    assert outcome is not None
    assert outcome["upstream"]["status"] == 202 and outcome["upstream"]["error"] is None
    assert outcome["upstream"]["latency_us"] > 0 and outcome["upstream"]["request_id"]
    assert (outcome["outcome"], outcome["reason"], outcome["message"]) == ("allow", None, None)

    denied = only_record(records, answers["denied"])["decision"]
    assert (denied["outcome"], denied["reason"], denied["rule"]) == (
        "deny", "policy", "os_compute_api:os-pause-server:unpause",
    )  # fmt: skip
    assert only_record(records, answers["denied"])["upstream"] is None

    malformed = only_record(records, answers["malformed"])
    assert malformed["decision"]["reason"] == "malformed_body" and malformed["action"] is None

    anonymous = only_record(records, answers["unauthenticated"])
    assert anonymous["initiator"]["authenticated"] is False
    assert "user_id" not in anonymous["initiator"]

    hidden = only_record(records, answers["not_visible"])
    assert hidden["decision"]["status"] == 404 and hidden["initiator"]["project_id"] == "p2"

    limited = only_record(records, answers["rate_limited"])["decision"]
    assert (limited["outcome"], limited["status"]) == ("deny", 429)
    assert limited["reason"] and "rate" in limited["reason"]

    listed = only_record(records, answers["listed"])
    assert listed["request"]["path"] == "/v2.1/servers?name=x&password=***"
    assert listed["request"]["route"] == "api"

    failed = only_record(records, answers["upstream_failed"])
    assert failed["decision"]["outcome"] == "error"
    assert failed["upstream"]["error"] is not None and failed["upstream"]["status"] is None


async def test_dry_run_rules_are_recorded_as_would_deny(tmp_path: Path) -> None:
    answers: list[Answer] = []

    async def script(base: str, sim: Any) -> None:
        action = f"/v2.1/servers/{sim.seeded('p1')}/action"
        answers.append(
            await send(base, "POST", action, body={"pause": None}, token="carol:p1:reader")
        )

    records = await run(tmp_path, script, **{"policy.dry_run_rules": [PAUSE]})
    record = only_record(records, answers[0])
    decision = record["decision"]
    # The gateway let it through (dry run); Nova itself then refused it.
    [outcome] = outcomes_of(records, record["request_id"])
    assert answers[0].status == 403 and outcome["upstream"]["status"] == 403
    assert decision["outcome"] == "allow" and decision["reason"] is None
    assert decision["would_deny"] == [PAUSE] and decision["rule"] == PAUSE


async def test_secret_fields_are_redacted_on_an_allowed_action(tmp_path: Path) -> None:
    answers: list[Answer] = []

    async def script(base: str, sim: Any) -> None:
        action = f"/v2.1/servers/{sim.seeded('p1')}/action"
        body = {"changePassword": {"adminPass": "Tr0ub4dor&3-secret"}}
        answers.append(await send(base, "POST", action, body=body))

    trail_text_records = await run(tmp_path, script)
    record = only_record(trail_text_records, answers[0])
    assert answers[0].status == 202
    assert record["action"] == {"key": "changePassword", "body": {"adminPass": "***"}}
    text = "".join(p.read_text() for p in (tmp_path / "trail").glob("*"))
    assert "Tr0ub4dor" not in text and "alice:p1" not in text  # nor the noauth token


async def test_cadf_records_look_like_keystonemiddleware_events(tmp_path: Path) -> None:
    answers: list[Answer] = []

    async def script(base: str, sim: Any) -> None:
        action = f"/v2.1/servers/{sim.seeded('p1')}/action"
        answers.append(await send(base, "POST", action, body={"pause": None}))
        answers.append(
            await send(base, "POST", action, body={"lock": None}, token="carol:p1:reader")
        )

    records = await run(tmp_path, script, audit={"file_format": "cadf"})
    events = [
        r for r in records if r.get("typeURI") == "http://schemas.dmtf.org/cloud/audit/1.0/event"
    ]
    # The allowed call: its request event (pending) before forwarding, then the same
    # event answered, as keystonemiddleware sends audit.http.request then .response.
    assert len(events) == 3
    pending, allowed, denied = events
    assert pending["id"] == allowed["id"] and pending["outcome"] == "pending"
    assert "reporterchain" not in pending
    assert pending["reason"] == {"policyType": "oslo.policy", "policyId": PAUSE}
    assert pending["attachments"][0]["content"]["event"] == "decision"
    assert allowed["attachments"][0]["content"]["event"] == "outcome"
    assert allowed["eventType"] == "activity"
    assert allowed["action"] == "update/pause" and denied["action"] == "update/lock"
    assert allowed["outcome"] == "success" and denied["outcome"] == "failure"
    assert allowed["reason"] == {
        "reasonType": "HTTP", "reasonCode": "202", "policyType": "oslo.policy", "policyId": PAUSE,
    }  # fmt: skip
    assert denied["reason"]["reasonCode"] == "403"
    initiator = allowed["initiator"]
    assert initiator["typeURI"] == "service/security/account/user"
    assert (initiator["id"], initiator["project_id"]) == ("alice", "p1")
    assert initiator["host"] == {"address": "127.0.0.1", "agent": "audit-tests/1.0"}
    assert initiator["credential"] == {"token": "***", "identity_status": "Confirmed"}
    assert initiator["global_request_id"] == answers[0].global_id
    target = allowed["target"]
    assert target["typeURI"] == "service/compute/servers/server/action"
    assert target["project_id"] == "p1" and target["id"] in allowed["requestPath"]
    assert allowed["observer"] == {"id": "target"}
    assert allowed["reporterchain"][0]["role"] == "modifier"
    [attachment] = allowed["attachments"]
    assert attachment["name"] == "nova_gateway"
    assert attachment["content"]["global_request_id"] == answers[0].global_id
    assert denied["attachments"][0]["content"]["event"] == "request"
    # The chain seals CADF lines exactly as it seals JSON ones.
    key_file = tmp_path / "k"
    key_file.write_bytes(KEY)
    assert audit_cli.main(["verify", "--key-file", str(key_file), str(tmp_path / "trail")]) == 0


@pytest.mark.parametrize(
    ("method", "path", "key", "action"),
    [
        ("POST", "/v2.1/servers/abc/action", "reboot", "update/reboot"),
        ("POST", "/v2.1/servers/abc/action", None, "update"),
        ("POST", "/v2.1/servers", None, "create"),
        ("GET", "/v2.1/servers/detail", None, "read/list"),
        ("GET", "/v2.1/servers/abc", None, "read"),
        ("DELETE", "/v2.1/servers/abc", "delete", "delete"),
        ("PUT", "/v2.1/servers/abc", "update", "update"),
        ("GET", "/v2.1/os-migrations", None, "read"),
        ("POST", "/v2.1/os-hosts/h1/reboot", None, "start/reboot"),
    ],
)
def test_cadf_action_taxonomy_follows_nova_api_audit_map(
    method: str, path: str, key: str | None, action: str
) -> None:
    assert cadf_action(method, path, key) == action


def test_cadf_target_type_uri_follows_nova_api_audit_map() -> None:
    assert target_type_uri("/v2.1/servers/abc/action") == "service/compute/servers/server/action"
    assert target_type_uri("/v2.1/servers/detail") == "service/compute/servers/detail"
    assert target_type_uri("/v2.1/flavors/1?x=1") == "service/compute/flavors/flavor"
