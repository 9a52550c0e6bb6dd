"""Execution evidence: what Nova's ``instance.*`` notifications say about an allowed action.

Owns the EXECUTION record, the phase a notification reports, and the index that joins a
notification to the decision it follows; it must never read the bus (a notification feed
calls ``AuditTrail.record_execution``), nor keep anything of a notification's context but
its request ids (the context carries the caller's token).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

from gateway.audit.records import EXECUTION, SCHEMA, Instance, timestamp
from gateway.notifications.events import InstanceEvent
from gateway.nova.action_events import Phase, events_of

__all__ = ["DecisionIndex", "DecisionRef", "Execution", "Phase", "phase_for"]

SAME_FORWARDED_ID = 16  # decisions remembered per forwarded request id (clients may reuse one)


def phase_for(action: str | None, event_type: str) -> Phase | None:
    """What ``event_type`` says about ``action`` (its catalogue key), by Nova's table of the
    events each action publishes; None if it is not one of that action's events, or says
    nothing new (instance.update, the .end of an early step)."""
    row = events_of(action)
    return row.phase(event_type) if row is not None else None


@dataclass(frozen=True)
class Execution:
    """One of Nova's ``instance.*`` notifications, reduced to what the trail keeps."""

    event_type: str  # e.g. instance.pause.end
    server_id: str  # the payload's uuid
    nova_request_id: str | None = None  # Nova's own (the x-openstack-request-id it answered)
    global_request_id: str | None = None  # the X-OpenStack-Request-ID the gateway forwarded
    occurred_at: str | None = None  # the notification's timestamp (the publisher's clock)
    message_id: str | None = None
    fault: str | None = None  # "<exception>: <message>" of an .error event, bounded

    @classmethod
    def from_event(cls, event: InstanceEvent) -> Execution:
        """From the notification feed's parsed event (which kept no secret to begin with)."""
        return cls(
            event_type=event.event_type,
            server_id=event.server_id,
            nova_request_id=event.request_id,
            global_request_id=event.global_request_id,
            occurred_at=event.published.isoformat() if event.published is not None else None,
            message_id=event.message_id,
            fault=event.fault,
        )


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
    id once the answer has told it. It also remembers how far each decision's execution
    got, so that a step's events never record an earlier phase after a later one.
    """

    def __init__(
        self, size: int, seconds: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._by_forwarded: TTLCache[str, list[DecisionRef]] = TTLCache(size, seconds, timer)
        self._by_nova: TTLCache[str, DecisionRef] = TTLCache(size, seconds, timer)
        self._reached: TTLCache[str, Phase] = TTLCache(size, seconds, timer)

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

    def advance(self, ref: DecisionRef, phase: Phase) -> bool:
        """True if ``phase`` is further than any recorded for ``ref`` (and now it is)."""
        reached = self._reached.get(ref.request_id)
        if reached is not None and reached.rank >= phase.rank:
            return False
        self._reached[ref.request_id] = phase
        return True


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
