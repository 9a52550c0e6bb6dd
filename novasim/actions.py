"""POST /servers/{id}/action: Nova's gates in Nova's order, then the action's effect.

Owns the order of the checks after content negotiation (action dispatch, URL project,
microversion range, schema, lookup, policy, lock, state) and Nova's refusal texts for
them; it must never hold per-action data (the catalogue does) nor per-action behaviour
(the effects do).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.nova.catalogue import BY_KEY, ActionSpec, LockFault, Lookup
from gateway.nova.faults import Fault, malformed_body, not_found
from gateway.nova.validation import validate_action
from novasim import policy
from novasim.call import ApiCall
from novasim.effects import (
    EFFECTS,
    ActionCall,
    EffectRow,
    HostCheck,
    Outcome,
    unexpected_error,
)
from novasim.model import InstanceAction, Server, now


def peek_action(body: bytes) -> tuple[str, dict[str, Any]]:
    """nova.api.openstack.wsgi.action_peek: exactly one top-level key, else refuse."""
    try:
        decoded = json.loads(body.decode("utf-8"))
    except ValueError:
        raise malformed_body() from None
    try:
        if len(decoded) != 1:
            raise malformed_body()
        key = next(iter(decoded.keys()))
    except (AttributeError, TypeError):
        # Nova maps these to a bare 404 (a list or string of length 1, a number, null).
        raise not_found("action_dispatch") from None
    return key, decoded


def run_action(call: ApiCall, server_id: str) -> Outcome:
    key, body = peek_action(call.body)
    spec = BY_KEY.get(key)
    if spec is None:
        raise Fault(400, f"There is no such action: {key}", reason="action_dispatch")
    call.check_url_project()
    if not spec.supports(call.version):
        raise not_found("action_version")
    validate_action(spec, call.version, body)
    if spec.removed is not None:
        raise Fault(spec.removed.status, spec.removed.message, reason="removed")
    value = body[key]
    row = EFFECTS[key]
    server = _lookup_and_enforce(call, spec, server_id, value)
    action = ActionCall(
        spec, server_id, value, call.version, call.caller, server, call.request_id, call.view
    )
    if row.precheck is not None:
        row.precheck(action, call.sim)
    if server is not None:
        _check_lock_and_state(spec, row, server, server_id, value, call.caller.is_admin)
        call.sim.notifier.acting(server, call.caller, call.request_id, key)
    outcome = row.apply(action, call.sim)
    if server is not None:
        call.sim.notifier.changed(server)  # what the effect changed outside a task (lock)
    if server is not None and row.instance_action and outcome.record:
        moment = now()
        server.actions.append(
            InstanceAction(
                row.instance_action,
                call.request_id,
                call.caller.user_id,
                call.caller.project_id,
                moment,
                moment,
            )
        )
    return outcome


def _lookup_and_enforce(
    call: ApiCall, spec: ActionSpec, server_id: str, value: Any
) -> Server | None:
    """Server lookup and policy, in the order this action's controller does them."""
    if spec.lookup is Lookup.AFTER_POLICY:
        _enforce(call, spec, value, None)
        return call.server(server_id)
    if spec.lookup is Lookup.BY_FLOATING_IP:
        address = value["address"]
        owner = call.sim.store.floating_ips.get(address)
        if owner is None:
            raise Fault(404, f"Floating IP not found for address {address}.", reason="lookup")
        server = call.server(owner)
        _enforce(call, spec, value, server)
        return server
    server = call.server(server_id)
    _enforce(call, spec, value, server)
    return server


def _enforce(call: ApiCall, spec: ActionSpec, value: Any, server: Server | None) -> None:
    for rule in spec.policies:
        if rule.fatal and policy.applies(rule, spec.key, value, call.version, call.caller, server):
            target = policy.target_project(rule, call.caller, server)
            policy.enforce(rule.name, rule.default, call.caller, target)


def _check_lock_and_state(
    spec: ActionSpec, row: EffectRow, server: Server, server_id: str, value: Any, is_admin: bool
) -> None:
    # check_instance_lock: context.is_admin (role admin, any project or scope) bypasses.
    if spec.lock_checked and server.locked and not is_admin:
        raise _lock_fault(spec, server, server_id)
    if row.host_check is HostCheck.BEFORE_STATE:
        _check_host(server)
    rule = spec.state_rule(value)
    if rule is not None:
        refusal: tuple[str, str | None] | None = None
        if rule.vm_states is not None and server.vm_state not in rule.vm_states:
            refusal = ("vm_state", server.vm_state)
        elif rule.task_states is not None and server.task_state not in rule.task_states:
            refusal = ("task_state", server.task_state)
        elif rule.must_have_launched and not server.launched_at:
            refusal = ("launched_at", None)
        elif server.task_state in rule.rejected_task_states:
            refusal = ("task_state", server.task_state)
        if refusal is not None:
            raise _state_fault(spec, row, server_id, *refusal)
    if row.host_check is HostCheck.AFTER_STATE:
        _check_host(server)


def _check_host(server: Server) -> None:
    if not server.host:
        raise Fault(409, f"Instance {server.id} is not ready", reason="host")


def _lock_fault(spec: ActionSpec, server: Server, server_id: str) -> Fault:
    if spec.lock_fault is LockFault.INVALID_STATE:
        message = f"Instance {server_id} is in an invalid state for '{spec.message_name}'"
        return Fault(409, message, reason="lock")
    if spec.lock_fault is LockFault.UNEXPECTED:
        return unexpected_error("InstanceIsLocked")
    return Fault(409, f"Instance {server.id} is locked", reason="lock")


def _state_fault(
    spec: ActionSpec, row: EffectRow, server_id: str, attr: str, state: str | None
) -> Fault:
    if row.state_fault_uncaught:
        return unexpected_error("InstanceInvalidState")
    name = spec.message_name
    if state is None:
        # common.raise_http_conflict_for_instance_invalid_state falls back to this text
        # when the state is None, e.g. a server that never launched (launched_at None).
        message = f"Instance {server_id} is in an invalid state for '{name}'"
        return Fault(409, message, reason="state")
    message = f"Cannot '{name}' instance {server_id} while it is in {attr} {state}"
    return Fault(409, message, reason="state")
