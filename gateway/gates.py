"""Nova's server gates: visibility (404), lock (409) and state (409), with Nova's texts.

Owns the one place that turns a server's facts into Nova's refusals; it must never
read anything itself (it is handed the server, the caller and the action).
"""

from __future__ import annotations

from typing import Any

from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import ActionSpec, LockFault
from gateway.nova.faults import Fault
from gateway.servers.facts import ServerFacts


def not_found(server_id: str, template: str = "Instance {id} could not be found.") -> Fault:
    return Fault(404, template.format(id=server_id), reason="server_not_found")


def check_visible(
    spec: ActionSpec,
    server_id: str,
    server: ServerFacts | None,
    caller: Credentials,
    is_admin: bool,
) -> ServerFacts:
    """Nova filters non-admin reads to the caller's project: others' servers are 404.

    A system- or domain-scoped token has no project to filter by; every server action
    rule is project-scoped, so the policy stage refuses it with Nova's 403.
    """
    if server is None:
        raise not_found(server_id, spec.missing_message)
    if caller.project_id is None:
        return server
    if not is_admin and server.project_id != caller.project_id:
        raise not_found(server_id)
    return server


def _invalid_state(spec: ActionSpec, server_id: str) -> Fault:
    return Fault(
        409,
        f"Instance {server_id} is in an invalid state for '{spec.message_name}'",
        reason="state",
    )


def check_lock(spec: ActionSpec, server: ServerFacts, is_admin: bool, strict_locks: bool) -> None:
    """``check_instance_lock``: a locked server refuses non-admins (admins too if strict).

    lock and unlock are never lock-checked, so a strict site still lets admins unlock.
    """
    if server.locked and spec.lock_checked and (not is_admin or strict_locks):
        raise lock_fault(spec, server.id)


def lock_fault(spec: ActionSpec, server_id: str) -> Fault:
    if spec.lock_fault is LockFault.INVALID_STATE:
        return _invalid_state(spec, server_id)
    # Nova answers 500 where it forgets to catch InstanceIsLocked (add/removeFixedIp);
    # the gateway says what really happened instead.
    return Fault(409, f"Instance {server_id} is locked", reason="locked")


def check_state(spec: ActionSpec, server: ServerFacts, value: Any) -> None:
    """``check_instance_state`` with the controller's message (nova/api/openstack/common.py)."""
    rule = spec.state_rule(value)
    if rule is None:
        return
    if rule.vm_states is not None and server.vm_state not in rule.vm_states:
        raise _state_fault(spec, server.id, "vm_state", server.vm_state)
    if rule.task_states is not None and server.task_state not in rule.task_states:
        raise _state_fault(spec, server.id, "task_state", server.task_state)
    if server.task_state in rule.rejected_task_states:
        raise _state_fault(spec, server.id, "task_state", server.task_state)
    if rule.must_have_launched and not server.launched_at:
        raise _state_fault(spec, server.id, "launched_at", server.launched_at)


def _state_fault(spec: ActionSpec, server_id: str, attr: str, state: str | None) -> Fault:
    if state is None:
        # Nova's message falls back to the generic text when the state is None.
        return _invalid_state(spec, server_id)
    return Fault(
        409,
        f"Cannot '{spec.message_name}' instance {server_id} while it is in {attr} {state}",
        reason="state",
    )
