"""Execution evidence: what Nova's ``instance.*`` notifications say about an allowed action.

Owns the EXECUTION record, the phase a notification reports, and the index that joins a
notification to the decision it follows; it must never read the bus (a notification feed
calls ``AuditTrail.record_execution``), nor keep anything of a notification's context but
its request ids (the context carries the caller's token).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cachetools import TTLCache

from gateway.audit.records import EXECUTION, SCHEMA, Instance, timestamp

FAULT_LIMIT = 512  # characters of an .error notification's exception kept in a record
SAME_FORWARDED_ID = 16  # decisions remembered per forwarded request id (clients may reuse one)
# Actions Nova completes inside the API with one notification and no phase (nova/compute/api.py:
# lock, unlock); any other phase-less instance.<action> only says that the action began.
DONE_WITHOUT_PHASE = frozenset({"lock", "unlock"})
# instance.* events that report no action of a caller: a state change, the periodic audit.
NOT_ACTIONS = frozenset({"update", "exists"})


class Phase(StrEnum):
    """How far Nova got with an action: ``instance.<action>.start | .end | .error``."""

    STARTED = "started"
    ENDED = "ended"
    FAILED = "failed"


_SUFFIXES = {"start": Phase.STARTED, "end": Phase.ENDED, "error": Phase.FAILED}


def phase_of(event_type: str) -> Phase | None:
    """The phase an ``instance.*`` event type reports; None for events about no action."""
    parts = event_type.split(".")
    if len(parts) < 2 or parts[0] != "instance" or parts[1] in NOT_ACTIONS:
        return None
    if len(parts) == 3 and parts[2] in _SUFFIXES:
        return _SUFFIXES[parts[2]]
    if len(parts) == 2:
        return Phase.ENDED if parts[1] in DONE_WITHOUT_PHASE else Phase.STARTED
    return None


@dataclass(frozen=True)
class Execution:
    """One of Nova's ``instance.*`` notifications, reduced to what the trail keeps."""

    event_type: str  # e.g. instance.pause.end
    server_id: str  # the payload's uuid
    nova_request_id: str | None = None  # Nova's own (the x-openstack-request-id it answered)
    global_request_id: str | None = None  # the X-OpenStack-Request-ID the gateway forwarded
    occurred_at: str | None = None  # the notification's timestamp
    message_id: str | None = None
    fault: str | None = None  # "<exception>: <message>" of an .error event, bounded

    @classmethod
    def from_notification(
        cls,
        event_type: str,
        payload: Mapping[str, Any],
        context: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Execution | None:
        """From what an oslo.messaging notification endpoint receives; None if not usable.

        ``context`` may use oslo.messaging's keys (``global_request_id``) or the wire's
        (``_context_global_request_id``); nothing else of it is read.
        """
        data = payload.get("nova_object.data")
        if not isinstance(data, Mapping) or not isinstance(data.get("uuid"), str):
            return None
        metadata = metadata or {}
        return cls(
            event_type=event_type,
            server_id=data["uuid"],
            nova_request_id=_text(data.get("request_id") or _context(context, "request_id")),
            global_request_id=_text(_context(context, "global_request_id")),
            occurred_at=_text(metadata.get("timestamp")),
            message_id=_text(metadata.get("message_id")),
            fault=_fault(data.get("fault")),
        )


def _context(context: Mapping[str, Any], name: str) -> Any:
    return context.get(name, context.get(f"_context_{name}"))


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _fault(fault: Any) -> str | None:
    data = fault.get("nova_object.data") if isinstance(fault, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    text = f"{data.get('exception')}: {data.get('exception_message')}"
    return text[:FAULT_LIMIT]


@dataclass(frozen=True)
class DecisionRef:
    """A forwarded decision a notification may follow."""

    request_id: str  # the gateway's: the DECISION record's request_id
    forwarded_id: str  # the X-OpenStack-Request-ID sent to Nova (Nova's global request id)
    server_id: str | None
    action: str | None


class DecisionIndex:
    """Recent forwarded decisions by the ids a notification carries; bounded in size and age.

    Nova publishes an action's first notification while handling the request (before its
    answer), so decisions are found by the forwarded id first, and by Nova's own request
    id once the answer has told it.
    """

    def __init__(
        self, size: int, seconds: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._by_forwarded: TTLCache[str, list[DecisionRef]] = TTLCache(size, seconds, timer)
        self._by_nova: TTLCache[str, DecisionRef] = TTLCache(size, seconds, timer)

    def add(self, ref: DecisionRef) -> None:
        same = self._by_forwarded.get(ref.forwarded_id, [])
        self._by_forwarded[ref.forwarded_id] = [*same[-(SAME_FORWARDED_ID - 1) :], ref]

    def answered(self, ref: DecisionRef, nova_request_id: str) -> None:
        self._by_nova[nova_request_id] = ref

    def find(self, execution: Execution) -> DecisionRef | None:
        if execution.nova_request_id is not None:
            ref = self._by_nova.get(execution.nova_request_id)
            if ref is not None and ref.server_id == execution.server_id:
                return ref
        if execution.global_request_id is not None:
            for ref in reversed(self._by_forwarded.get(execution.global_request_id, [])):
                if ref.server_id == execution.server_id:
                    return ref
        return None


def build_execution_record(
    ref: DecisionRef, execution: Execution, phase: Phase, instance: Instance
) -> dict[str, Any]:
    """The EXECUTION record: a follow-up in the chain, linked by the decision's request_id."""
    return {
        "schema": SCHEMA,
        "event": EXECUTION,
        "time": timestamp(),
        "request_id": ref.request_id,
        "instance": instance.as_dict(),
        "server_id": execution.server_id,
        "action": ref.action,
        "phase": phase.value,
        "nova": {
            "event_type": execution.event_type,
            "request_id": execution.nova_request_id,
            "global_request_id": execution.global_request_id,
            "time": execution.occurred_at,
            "message_id": execution.message_id,
            "fault": execution.fault,
        },
    }
