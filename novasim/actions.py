"""POST /servers/{id}/action: Nova's gates in Nova's order, then the action's effect.

Owns the order of the checks after content negotiation (action dispatch, URL project,
microversion range, schema, lookup, policy, lock, state) and Nova's refusal texts for
them; it must never hold per-action data (action_table.py and action_schemas.py do) nor
per-action behaviour (the effects do).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from novasim import policy
from novasim.action_schemas import registered_at
from novasim.action_table import ACTIONS, Gates, Lock, Lookup
from novasim.call import ApiCall
from novasim.effects import EFFECTS, ActionCall, EffectRow, HostCheck, Outcome
from novasim.faults import Fault, malformed_body, resource_not_found, unexpected
from novasim.microversion import Version
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
        raise resource_not_found() from None
    return key, decoded


def gates_of(key: str) -> Gates:
    """The dispatcher: a key no controller registers is a 400."""
    gates = ACTIONS.get(key)
    if gates is None:
        raise Fault(400, f"There is no such action: {key}")
    return gates


def check_version_and_body(key: str, gates: Gates, version: Version, body: Any) -> None:
    """wsgi.api_version (404 outside the action's range), then validation.schema (400)."""
    if not gates.exists_at(version):
        raise resource_not_found()
    registered = registered_at(key, version)
    if registered is not None:
        registered.checker.check(body)


def admit(key: str, version: Version, body: Any) -> Gates:
    """Dispatch, version range and schema of an action body, as one verdict."""
    gates = gates_of(key)
    check_version_and_body(key, gates, version, body)
    return gates


def run_action(call: ApiCall, server_id: str) -> Outcome:
    key, body = peek_action(call.body)
    gates = gates_of(key)
    call.check_url_project()
    check_version_and_body(key, gates, call.version, body)
    if gates.removed is not None:
        raise Fault(*gates.removed)
    value = body[key]
    row = EFFECTS[key]
    situation = policy.Situation(value, call.version, call.caller, None)
    server = _lookup_and_enforce(call, gates, server_id, situation)
    action = ActionCall(
        key, server_id, value, call.version, call.caller, server, call.request_id, call.view
    )
    if row.precheck is not None:
        row.precheck(action, call.sim)
    if server is not None:
        _check_lock_and_state(key, gates, row, server, server_id, value, call.caller.is_admin)
        call.sim.notifier.acting(server, call.caller, call.request_id, key, call.global_request_id)
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
    call: ApiCall, gates: Gates, server_id: str, situation: policy.Situation
) -> Server | None:
    """Server lookup and policy, in the order this action's controller does them."""
    if gates.lookup is Lookup.POLICY_FIRST:
        _enforce(gates, situation)
        return call.server(server_id, gates.unknown_id)
    if gates.lookup is Lookup.BY_FLOATING_IP:
        address = situation.value["address"]
        owner = call.sim.store.floating_ips.get(address)
        if owner is None:
            raise Fault(404, f"Floating IP not found for address {address}.")
        server = call.server(owner)
    else:
        server = call.server(server_id, gates.unknown_id)
    _enforce(gates, replace(situation, server=server))
    return server


def _enforce(gates: Gates, situation: policy.Situation) -> None:
    for rule in gates.rules:
        rule.enforce(situation)


def _check_lock_and_state(
    key: str,
    gates: Gates,
    row: EffectRow,
    server: Server,
    server_id: str,
    value: Any,
    is_admin: bool,
) -> None:
    verb = gates.verb or key
    # check_instance_lock: context.is_admin (role admin, any project or scope) bypasses.
    if gates.lock is not Lock.UNCHECKED and server.locked and not is_admin:
        raise _lock_fault(gates.lock, verb, server, server_id)
    if row.host_check is HostCheck.BEFORE_STATE:
        _check_host(server)
    allowed = gates.allowed(value)
    if allowed is not None:
        refusal: tuple[str, str | None] | None = None
        if allowed.vm_states is not None and server.vm_state not in allowed.vm_states:
            refusal = ("vm_state", server.vm_state)
        elif allowed.task_states is not None and server.task_state not in allowed.task_states:
            refusal = ("task_state", server.task_state)
        elif allowed.must_have_launched and not server.launched_at:
            refusal = ("launched_at", None)
        elif server.task_state in allowed.rejected_tasks:
            refusal = ("task_state", server.task_state)
        if refusal is not None:
            raise _state_fault(verb, row, server_id, *refusal)
    if row.host_check is HostCheck.AFTER_STATE:
        _check_host(server)


def _check_host(server: Server) -> None:
    if not server.host:
        raise Fault(409, f"Instance {server.id} is not ready")


def _lock_fault(lock: Lock, verb: str, server: Server, server_id: str) -> Fault:
    if lock is Lock.INVALID_STATE:  # the controller's text, with the id of the URL
        return Fault(409, f"Instance {server_id} is in an invalid state for '{verb}'")
    if lock is Lock.UNCAUGHT:
        return unexpected("nova.exception.InstanceIsLocked")
    return Fault(409, f"Instance {server.id} is locked")  # InstanceIsLocked's own text


def _state_fault(verb: str, row: EffectRow, server_id: str, attr: str, state: str | None) -> Fault:
    if row.state_fault_uncaught:
        return unexpected("nova.exception.InstanceInvalidState")
    if state is None:
        # common.raise_http_conflict_for_instance_invalid_state falls back to this text
        # when the state is None, e.g. a server that never launched (launched_at None).
        return Fault(409, f"Instance {server_id} is in an invalid state for '{verb}'")
    return Fault(409, f"Cannot '{verb}' instance {server_id} while it is in {attr} {state}")
