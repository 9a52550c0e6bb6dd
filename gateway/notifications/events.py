"""The ``instance.*`` notifications Nova publishes, parsed into the facts the gateway uses.

Owns the one reader of a notification message (oslo.messaging's envelope, Nova's payload
objects); it must never copy the message context's secrets (``_context_auth_token``, the
service catalogue) nor raise on a malformed message (it answers None).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# oslo.messaging's message format 2.0 wraps the message as JSON text in this envelope.
ENVELOPE_VERSION_KEY = "oslo.version"
ENVELOPE_MESSAGE_KEY = "oslo.message"
INSTANCE_PREFIX = "instance."
# The events after which Nova no longer has the server.
GONE_EVENTS = frozenset({"instance.delete.end", "instance.soft_delete.end"})
_MAX_TEXT = 255  # Nova's ids and names are shorter; anything longer is not Nova's
FAULT_LIMIT = 512  # characters of an .error event's "<exception>: <message>" kept


@dataclass(frozen=True, slots=True)
class InstanceEvent:
    """One ``instance.*`` notification: who did what to which server, and its facts after.

    Only what the gateway decides or correlates on is kept: never the context's token or
    service catalogue, nor the payload's metadata, addresses or user data.
    """

    event_type: str  # instance.update, instance.lock, instance.pause.end, ...
    server_id: str
    project_id: str
    user_id: str
    vm_state: str | None
    task_state: str | None
    power_state: str | None
    locked: bool
    locked_reason: str | None
    # Who made the call that caused it (Nova's action_initiator_*, else the context's).
    initiator_user: str | None
    initiator_project: str | None
    request_id: str | None  # Nova's own request id: the x-openstack-request-id it answered
    global_request_id: str | None  # the caller's X-OpenStack-Request-ID, when it sent one
    flavor: str | None
    image: str  # "" for a volume-backed server, as the compute API shows it
    launched_at: str | None
    published: dt.datetime | None  # the publisher's clock (UTC)
    publisher_id: str
    message_id: str | None = None  # oslo.messaging's id of the message
    # An .error event's fault, "<exception>: <message>" (bounded): Nova's exception text
    # names the server and what failed, never the caller's credentials.
    fault: str | None = None

    @property
    def gone(self) -> bool:
        """Nova has deleted the server."""
        return self.event_type in GONE_EVENTS

    @property
    def lock_holder(self) -> str | None:
        """For ``instance.lock``: 'owner' or 'admin', as Nova records ``locked_by``.

        Nova's lock: 'owner' when the locker's project is the server's (any role), else
        'admin'. None for other events, or when the initiator is unknown.
        """
        if self.event_type != "instance.lock" or self.initiator_project is None:
            return None
        return "owner" if self.initiator_project == self.project_id else "admin"


def unwrap(body: Any) -> Mapping[str, Any] | None:
    """The message inside oslo.messaging's envelope (format 2.0), or the message itself."""
    if isinstance(body, str | bytes | bytearray):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(body, Mapping):
        return None
    if ENVELOPE_VERSION_KEY in body:
        inner = body.get(ENVELOPE_MESSAGE_KEY)
        if not isinstance(inner, str):
            return None
        try:
            body = json.loads(inner)
        except ValueError:
            return None
        if not isinstance(body, Mapping):
            return None
    return body


def parse_instance_event(message: Mapping[str, Any]) -> InstanceEvent | None:
    """The event a Nova notification carries, or None if it is not a usable instance.* one."""
    event_type = message.get("event_type")
    if not isinstance(event_type, str) or not event_type.startswith(INSTANCE_PREFIX):
        return None
    payload = message.get("payload")
    data = payload.get("nova_object.data") if isinstance(payload, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    server_id = _text(data.get("uuid"))
    project_id = _text(data.get("tenant_id"))
    if not server_id or project_id is None:
        return None
    locked = data.get("locked")
    return InstanceEvent(
        event_type=event_type[:_MAX_TEXT],
        server_id=server_id,
        project_id=project_id,
        user_id=_text(data.get("user_id")) or "",
        vm_state=_text(data.get("state")),
        task_state=_text(data.get("task_state")),
        power_state=_text(data.get("power_state")),
        locked=locked is True,
        locked_reason=_text(data.get("locked_reason")),
        initiator_user=_text(data.get("action_initiator_user"))
        or _text(message.get("_context_user_id")),
        initiator_project=_text(data.get("action_initiator_project"))
        or _text(message.get("_context_project_id")),
        request_id=_text(data.get("request_id")) or _text(message.get("_context_request_id")),
        global_request_id=_text(message.get("_context_global_request_id")),
        flavor=_flavor_name(data.get("flavor")),
        image=_text(data.get("image_uuid")) or "",
        launched_at=_text(data.get("launched_at")),
        published=_timestamp(message.get("timestamp")),
        publisher_id=_text(message.get("publisher_id")) or "",
        message_id=_text(message.get("message_id")),
        fault=fault_text(data.get("fault")),
    )


def fault_text(fault: Any) -> str | None:
    """``<exception>: <message>`` of a payload's ExceptionPayload, bounded; None if absent."""
    data = fault.get("nova_object.data") if isinstance(fault, Mapping) else None
    if not isinstance(data, Mapping):
        return None
    text = f"{data.get('exception')}: {data.get('exception_message')}"
    return text[:FAULT_LIMIT]


def _text(value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= _MAX_TEXT:
        return value
    return None


def _flavor_name(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    data = value.get("nova_object.data")
    return _text(data.get("name")) if isinstance(data, Mapping) else None


def _timestamp(value: Any) -> dt.datetime | None:
    """oslo.messaging's ``timestamp`` ('2026-12-06 19:00:19.197223', UTC)."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
