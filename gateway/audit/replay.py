"""``audit replay``'s logic: a recorded decision re-decided under another policy.

Owns rebuilding the caller, target and rules a record describes and asking the policy
engine again; it must never decide by itself, nor read anything but the record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.records import DECIDING_EVENTS, gateway_record
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS, ActionSpec, PolicyRule, Target
from gateway.nova.microversion import DEFAULT_VERSION
from gateway.nova.types import Version
from gateway.policy.engine import Outcome, PolicyEngine, build_target, rules_for

ACTIONS_BY_KEY: Mapping[str, ActionSpec] = {
    **BY_KEY,
    **{spec.key: spec for spec in SERVER_RESOURCE_ACTIONS.values()},
}


@dataclass(frozen=True)
class Replayed:
    record: Mapping[str, Any]
    before: str  # allow | deny | would_deny
    after: str
    rule: str


def _recorded_outcome(verdicts: Sequence[Mapping[str, Any]]) -> str:
    outcomes = [str(verdict.get("outcome")) for verdict in verdicts]
    if Outcome.DENIED.value in outcomes:
        return "deny"
    return "would_deny" if Outcome.WOULD_DENY.value in outcomes else "allow"


def _credentials(initiator: Mapping[str, Any]) -> Credentials:
    return Credentials(
        user_id=str(initiator.get("user_id")),
        project_id=initiator.get("project_id"),
        roles=frozenset(str(role).lower() for role in initiator.get("roles") or ()),
        domain_id=initiator.get("domain_id"),
        system_scope=initiator.get("system_scope"),
        user_domain_id=initiator.get("user_domain_id"),
        project_domain_id=initiator.get("project_domain_id"),
        is_admin_project=bool(initiator.get("is_admin_project", True)),
        mode="replay",
    )


def _stages(spec: ActionSpec, rules: list[PolicyRule], reached: set[str]) -> list[list[PolicyRule]]:
    """The rules in the pipeline's policy stages; after-state ones only if they ran before."""
    caller = [r for r in rules if not r.after_state and r.target is Target.CALLER]
    server = [r for r in rules if not r.after_state and r.target is not Target.CALLER]
    after = [r for r in rules if r.after_state and r.name in reached]
    return [stage for stage in (caller, server, after) if stage]


def redecide(record: Mapping[str, Any], engine: PolicyEngine) -> Replayed | None:
    """The record re-decided under ``engine``; None if policy was never reached for it."""
    action = record.get("action") or {}
    decision = record.get("decision") or {}
    initiator = record.get("initiator") or {}
    verdicts = decision.get("verdicts") or []
    spec = ACTIONS_BY_KEY.get(str(action.get("key")))
    if spec is None or not verdicts or not initiator.get("user_id"):
        return None
    microversion = (record.get("request") or {}).get("microversion")
    version = Version.parse(microversion) if microversion else DEFAULT_VERSION
    credentials = _credentials(initiator)
    facts = record.get("target") or {}
    server = facts.get("server")
    body = action.get("body")
    server_project = facts.get("project_id") if server is not None else None
    rules = rules_for(
        spec,
        body,
        version,
        server.get("image") if server is not None else None,
        facts.get("locked_by"),
        credentials.project_id,
        server_project,
    )
    target = build_target(
        spec,
        body,
        version,
        project_id=server_project if server is not None else credentials.project_id,
        user_id=facts.get("user_id") if server is not None else credentials.user_id,
        server=server,
    )
    caller_target = build_target(
        spec, body, version, project_id=credentials.project_id, user_id=credentials.user_id
    )
    reached = {str(verdict.get("rule")) for verdict in verdicts}
    after = "allow"
    rule = ""
    for stage in _stages(spec, rules, reached):
        verdict = engine.decide_all(stage, target, credentials, caller_target=caller_target).verdict
        rule = verdict.rule
        if verdict.outcome is Outcome.DENIED:
            after = "deny"
            break
        if verdict.outcome is Outcome.WOULD_DENY and after == "allow":
            after = "would_deny"
    return Replayed(record, _recorded_outcome(verdicts), after, rule)


def read_records(files: Iterable[Path]) -> Iterator[Mapping[str, Any]]:
    """Deciding records (request, decision) from JSON or CADF audit files; others skipped."""
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    document = json.loads(line)
                except ValueError:
                    print(f"{path}:{number}: not a JSON record, skipped", file=sys.stderr)
                    continue
                if isinstance(document, dict):
                    record = gateway_record(document)
                    if record.get("event") in DECIDING_EVENTS:
                        yield record


def describe(change: Replayed) -> str:
    record = change.record
    initiator = record.get("initiator") or {}
    request = record.get("request") or {}
    target = record.get("target") or {}
    action = (record.get("action") or {}).get("key")
    who = f"user={initiator.get('user_id')} project={initiator.get('project_id')}"
    roles = ",".join(initiator.get("roles") or []) or "-"
    return (
        f"{record.get('time')} {record.get('request_id')} {who} roles={roles} "
        f"{action}@{request.get('microversion') or DEFAULT_VERSION} "
        f"server={target.get('server_id')}: {change.before} -> {change.after}"
        + (f" ({change.rule})" if change.rule else "")
    )
