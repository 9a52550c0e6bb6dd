"""A server's facts as the gateway decides on them, and how sure it can be of them.

Owns ServerFacts (from a read of Nova or from Nova's notification), Grade and ReadReason;
it must never read anything itself (lookup does) nor decide on a request (the gates do).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.notifications.events import InstanceEvent
from gateway.nova.states import status_from_state


class Grade(enum.Enum):
    """How current the facts a call decided on are (README, "Server facts")."""

    FRESH = "fresh"  # read from Nova for this call
    COHERENT = "coherent"  # the mirror: newer than anything this worker forwarded
    CACHED = "cached"  # without a bus: a read up to [server_lookup] cache_ttl old


class ReadReason(enum.Enum):
    """Why the gateway read a server from Nova for a call."""

    MISS = "miss"  # not known, or known only from before the feed's last reconnect
    EXPIRED = "expired"  # without a bus: the copy is older than cache_ttl
    PENDING = "pending"  # this worker forwarded an action; Nova's notification is late
    DEGRADED = "degraded"  # the notification feed is down or lagging
    CONFIRM = "confirm"  # a refusal would rest on a copy: confirm it first
    GATEWAY_RULE = "gateway_rule"  # a check Nova does not repeat needs current facts
    LOCKED_BY = "locked_by"  # who locked it, from the instance-action log


@dataclass(frozen=True)
class ServerFacts:
    """The fields Nova's gates read (nova-actions.md §A.9)."""

    id: str
    project_id: str
    user_id: str
    status: str
    vm_state: str | None
    task_state: str | None
    launched_at: str | None
    locked: bool
    locked_reason: str | None
    flavor: str | None
    image: str  # "" for a volume-backed server

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> ServerFacts:
        """From ``GET /servers/{id}`` at 2.73 or later."""
        flavor = view.get("flavor") or {}
        image = view.get("image")
        return cls(
            id=str(view["id"]),
            project_id=str(view.get("tenant_id", "")),
            user_id=str(view.get("user_id", "")),
            status=str(view.get("status", "")),
            vm_state=view.get("OS-EXT-STS:vm_state"),
            task_state=view.get("OS-EXT-STS:task_state"),
            launched_at=view.get("OS-SRV-USG:launched_at"),
            locked=bool(view.get("locked", False)),
            locked_reason=view.get("locked_reason"),
            flavor=flavor.get("original_name") or flavor.get("id"),
            image=image.get("id", "") if isinstance(image, dict) else "",
        )

    @classmethod
    def from_event(cls, event: InstanceEvent) -> ServerFacts:
        """From an ``instance.*`` notification: the same fields, named as Nova's payload."""
        return cls(
            id=event.server_id,
            project_id=event.project_id,
            user_id=event.user_id,
            status=status_from_state(event.vm_state, event.task_state),
            vm_state=event.vm_state,
            task_state=event.task_state,
            launched_at=event.launched_at,
            locked=event.locked,
            locked_reason=event.locked_reason,
            flavor=event.flavor,
            image=event.image,
        )

    def locked_now(self) -> ServerFacts:
        """After a lock this worker forwarded (its reason, if any, is Nova's to keep)."""
        return replace(self, locked=True)

    def unlocked_now(self) -> ServerFacts:
        return replace(self, locked=False, locked_reason=None)

    @property
    def volume_backed(self) -> bool:
        return self.image == ""

    def policy_attributes(self) -> dict[str, Any]:
        """What site rules may read as ``server.<key>``."""
        return {
            "status": self.status,
            "vm_state": self.vm_state,
            "task_state": self.task_state,
            "locked": self.locked,
            "flavor": self.flavor,
            "image": self.image,
        }


@dataclass(frozen=True)
class Known:
    """What a call decides on: the facts (None: Nova has no such server), who locked it
    ('owner', 'admin', or None when unlocked or unknown) and how current they are."""

    facts: ServerFacts | None
    locked_by: str | None
    grade: Grade
