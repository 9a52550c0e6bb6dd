"""Audit records: what one answered request leaves behind, as a plain dict, secrets removed.

Owns the record's fields and the redaction of bodies, query strings and fault messages;
it must never put a token, password or other secret field value in a record, nor do I/O.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from gateway.call import Call

SCHEMA = "nova-gateway.audit/1"
# What a record is about (its ``event``). A call the gateway answers itself, or forwards
# without write-ahead, leaves one REQUEST record. A call forwarded with write-ahead
# leaves a DECISION record (durable before the call leaves) and then an OUTCOME record
# with the same request_id; EXECUTION records (Nova's notifications) follow it.
REQUEST = "request"
DECISION = "decision"
OUTCOME = "outcome"
EXECUTION = "execution"
DECIDING_EVENTS = frozenset({REQUEST, DECISION})  # records that hold the whole decision
CALL_EVENTS = frozenset({REQUEST, DECISION, OUTCOME, EXECUTION})  # the rest is the trail's own
# A CADF event's typeURI (pycadf's CADF_VERSION_1_0_0 + "event"), known here without pycadf.
CADF_EVENT_TYPE_URI = "http://schemas.dmtf.org/cloud/audit/1.0/event"
REDACTED = "***"
USER_AGENT_LIMIT = 512  # a client chooses its User-Agent: keep records bounded

# A key naming any of these (case-insensitive substring) holds a secret, at any depth.
SECRET_KEY_PARTS = ("password", "passwd", "secret", "token")
# Keys that hold secrets without saying so: rebuild/changePassword's adminPass, rebuild's
# user_data and personality file contents (the only "contents" key in Nova's actions).
SECRET_KEYS = frozenset({"adminpass", "admin_pass", "user_data", "userdata", "contents"})


class Redactor:
    """Replaces the value of every secret key with REDACTED, wherever it sits."""

    def __init__(self, extra_fields: Iterable[str] = ()) -> None:
        self._exact = SECRET_KEYS | {field.strip().lower() for field in extra_fields if field}

    def is_secret(self, key: str) -> bool:
        lower = key.lower()
        return lower in self._exact or any(part in lower for part in SECRET_KEY_PARTS)

    def redact(self, value: Any, found: list[Any] | None = None) -> Any:
        """A copy of ``value`` without secrets; the removed values are added to ``found``."""
        if isinstance(value, Mapping):
            copy: dict[str, Any] = {}
            for key, item in value.items():
                if self.is_secret(str(key)):
                    copy[str(key)] = REDACTED
                    if found is not None:
                        _leaves(item, found)
                else:
                    copy[str(key)] = self.redact(item, found)
            return copy
        if isinstance(value, list):
            return [self.redact(item, found) for item in value]
        return value

    def redact_target(self, target: str) -> str:
        """The request target with the values of secret query parameters replaced."""
        path, sep, query = target.partition("?")
        if not sep:
            return target
        pairs = []
        for pair in query.split("&"):
            name, eq, _value = pair.partition("=")
            pairs.append(
                f"{name}={REDACTED}" if eq and self.is_secret(unquote_plus(name)) else pair
            )
        return f"{path}?{'&'.join(pairs)}"


def _leaves(value: Any, found: list[Any]) -> None:
    if isinstance(value, Mapping):
        for item in value.values():
            _leaves(item, found)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, found)
    elif value is not None and not isinstance(value, bool):
        found.append(value)


def _spellings(secret: Any) -> set[str]:
    """How a secret value can appear in a message: as text, repr'd, or JSON-escaped."""
    text = str(secret)
    spellings = {text, repr(text)[1:-1], json.dumps(text)[1:-1]}
    return {spelling for spelling in spellings if spelling}


def scrub_message(message: str, secrets: Iterable[Any]) -> str | None:
    """``message`` with every spelling of every secret removed; None if one survives.

    Nova's schema messages quote the offending value ("Value: ..."), which may be the
    secret itself; a message that still holds one after scrubbing is withheld whole.
    """
    spellings: set[str] = set()
    for secret in secrets:
        spellings |= _spellings(secret)
    # Longest first, so a secret that contains a shorter one is removed whole.
    for spelling in sorted(spellings, key=len, reverse=True):
        message = message.replace(spelling, REDACTED)
    if any(spelling in message for spelling in spellings if spelling != REDACTED):
        return None
    return message


@dataclass(frozen=True)
class Instance:
    """Which gateway process answered: host name and process id."""

    host: str
    pid: int

    @classmethod
    def current(cls) -> Instance:
        return cls(socket.gethostname(), os.getpid())

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid}


def timestamp(epoch: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.isoformat(timespec="microseconds")


def _micros(seconds: float) -> int:
    # Integers keep the canonical JSON of a record the same in every language.
    return round(seconds * 1_000_000)


def _initiator(call: Call) -> dict[str, Any]:
    user_agent = call.header("User-Agent")
    initiator: dict[str, Any] = {
        "address": call.peer,
        "user_agent": user_agent[:USER_AGENT_LIMIT] if user_agent is not None else None,
        "authenticated": call.credentials is not None,
    }
    creds = call.credentials
    if creds is not None:
        initiator.update(
            user_id=creds.user_id,
            user_name=creds.extra.get("user_name"),
            project_id=creds.project_id,
            project_name=creds.extra.get("project_name"),
            domain_id=creds.domain_id,
            user_domain_id=creds.user_domain_id,
            project_domain_id=creds.project_domain_id,
            system_scope=creds.system_scope,
            roles=sorted(creds.roles),
            is_admin=call.is_admin,
            is_admin_project=creds.is_admin_project,
            identity=creds.mode,
        )
    return initiator


def _target(call: Call) -> dict[str, Any]:
    route = call.route
    target: dict[str, Any] = {"server_id": route.server_id if route is not None else None}
    server = call.server
    if server is not None:
        target.update(
            project_id=server.project_id,
            user_id=server.user_id,
            # What site rules read as server.<key>: replay needs it to re-decide.
            server=server.policy_attributes(),
            locked_by=call.locked_by,
        )
    return target


def _deciding_rule(verdicts: list[tuple[str, str]]) -> str | None:
    """The rule PolicyEngine.decide_all reports: first denial, else first dry-run, else last."""
    for outcome in ("denied", "would_deny"):
        for rule, seen in verdicts:
            if seen == outcome:
                return rule
    return verdicts[-1][0] if verdicts else None


def _decision(call: Call, secrets: list[Any]) -> dict[str, Any]:
    fault = call.fault
    message = None
    if fault is not None:
        message = scrub_message(fault.message, secrets)
        if message is None:
            message = f"({fault.name}: message withheld, it quoted a redacted value)"
    return {
        "outcome": call.decision,
        "status": call.status,
        "reason": fault.reason if fault is not None else None,
        "message": message,
        "rule": _deciding_rule(call.verdicts),
        "verdicts": [{"rule": rule, "outcome": outcome} for rule, outcome in call.verdicts],
        "would_deny": [rule for rule, outcome in call.verdicts if outcome == "would_deny"],
    }


def _upstream(call: Call) -> dict[str, Any] | None:
    exchange = call.exchange
    if exchange.status is None and exchange.error is None:
        return None
    return {
        "status": exchange.status,
        "error": exchange.error,
        "request_id": exchange.request_id,
        "latency_us": _micros(exchange.seconds),
    }


def _latency(call: Call, finished: float) -> dict[str, int]:
    return {
        "decided": _micros(call.decided_seconds),
        "total": _micros(max(0.0, finished - call.started)),
    }


def _deciding_record(
    call: Call, instance: Instance, redactor: Redactor, event: str, now: float | None
) -> dict[str, Any]:
    """The fields a REQUEST and a DECISION record share: who asked what, and the verdict."""
    secrets: list[Any] = []
    action: dict[str, Any] | None = None
    if call.action is not None:
        action = {"key": call.action.key, "body": redactor.redact(call.action_value, secrets)}
    return {
        "schema": SCHEMA,
        "event": event,
        "time": timestamp(now),
        "request_id": call.request_id,
        "global_request_id": call.global_request_id,
        "instance": instance.as_dict(),
        "initiator": _initiator(call),
        "request": {
            "method": call.method,
            "path": redactor.redact_target(call.target),
            "route": call.route.kind.value if call.route is not None else None,
            "microversion": str(call.version) if call.version is not None else None,
        },
        "target": _target(call),
        "action": action,
        "decision": _decision(call, secrets),
    }


def build_record(
    call: Call,
    instance: Instance,
    redactor: Redactor,
    *,
    now: float | None = None,
    monotonic_now: float | None = None,
) -> dict[str, Any]:
    """The REQUEST record of one answered call: JSON-ready, with every secret value removed."""
    finished = time.monotonic() if monotonic_now is None else monotonic_now
    record = _deciding_record(call, instance, redactor, REQUEST, now)
    record["upstream"] = _upstream(call)
    record["latency_us"] = _latency(call, finished)
    return record


def build_decision_record(
    call: Call, instance: Instance, redactor: Redactor, *, now: float | None = None
) -> dict[str, Any]:
    """The DECISION record of a call about to be forwarded: no answer yet (status null)."""
    record = _deciding_record(call, instance, redactor, DECISION, now)
    record["latency_us"] = {"decided": _micros(call.decided_seconds)}
    return record


def build_outcome_record(
    call: Call,
    instance: Instance,
    redactor: Redactor,
    *,
    forwarded: bool,
    now: float | None = None,
    monotonic_now: float | None = None,
) -> dict[str, Any]:
    """The OUTCOME record that follows a DECISION: how the call ended, nothing repeated.

    ``forwarded`` is False when the call never left (its decision could not be made
    durable in time, or the client went away first): Nova cannot have run it.
    """
    finished = time.monotonic() if monotonic_now is None else monotonic_now
    fault = call.fault
    message = None
    if fault is not None:
        secrets: list[Any] = []
        redactor.redact(call.action_value, secrets)  # only to know what a message may quote
        message = scrub_message(fault.message, secrets)
        if message is None:
            message = f"({fault.name}: message withheld, it quoted a redacted value)"
    return {
        "schema": SCHEMA,
        "event": OUTCOME,
        "time": timestamp(now),
        "request_id": call.request_id,
        "global_request_id": call.global_request_id,
        "instance": instance.as_dict(),
        "forwarded": forwarded,
        "outcome": call.decision,  # allow: Nova answered; error: the gateway answered a fault
        "status": call.status,
        "reason": fault.reason if fault is not None else None,
        "message": message,
        "upstream": _upstream(call),
        "latency_us": _latency(call, finished),
    }


def gateway_record(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """The gateway record inside a document, whichever format the sink wrote (JSON, CADF)."""
    if document.get("typeURI") == CADF_EVENT_TYPE_URI:
        for item in document.get("attachments") or []:
            if isinstance(item, Mapping) and item.get("name") == "nova_gateway":
                content = item.get("content")
                if isinstance(content, Mapping):
                    return content
    return document


def fallback_record(
    call: Call, instance: Instance, error: BaseException, *, event: str = REQUEST
) -> dict[str, Any]:
    """What is still recorded when building the full record failed (a gateway bug)."""
    return {
        "schema": SCHEMA,
        "event": event,
        "time": timestamp(),
        "request_id": call.request_id,
        "instance": instance.as_dict(),
        "decision": {"outcome": call.decision, "status": call.status},
        "record_error": type(error).__name__,
    }
