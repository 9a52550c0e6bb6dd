"""Nova's server gates (gateway/gates.py): visibility, lock and state, judged against
novasim's own checks (written apart from the gateway, from Nova's code) for every action
and every combination of the facts they read."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import pytest

from gateway import gates
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import BY_KEY, ActionSpec
from gateway.nova.faults import Fault
from gateway.servers.facts import ServerFacts
from novasim import actions as sim_actions
from novasim.action_table import ACTIONS as SIM_ACTIONS
from novasim.effects import EFFECTS
from novasim.faults import Fault as SimFault
from novasim.model import VM_STATES, Server
from tests.unit.test_server_facts_store import SERVER
from tests.unit.test_server_facts_store import facts as server_facts

LAUNCHED = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
# Every task state some action allows or rejects in novasim's table, and one none names.
TASK_STATES: tuple[str | None, ...] = (
    None,
    "pausing",
    "rebooting",
    "reboot_pending",
    "reboot_started",
    "rebooting_hard",
    "resize_prep",
    "migrating",
    "rebuilding",
    "powering-off",
    "shelving",
    "deleting",
)
# Values that select a state rule (reboot's type); other actions ignore the value.
VALUES: dict[str, tuple[Any, ...]] = {"reboot": ({"type": "SOFT"}, {"type": "HARD"})}
Verdict = tuple[int, str] | None

KEYS = sorted(key for key, row in SIM_ACTIONS.items() if row.removed is None)


def gateway_verdict(spec: ActionSpec, facts: ServerFacts, value: Any) -> Verdict:
    try:
        gates.check_lock(spec, facts, is_admin=False, strict_locks=False)
        gates.check_state(spec, facts, value)
    except Fault as fault:
        return fault.status, fault.message
    return None


def novasim_verdict(key: str, server: Server, value: Any) -> Verdict:
    try:
        sim_actions._check_lock_and_state(
            key, SIM_ACTIONS[key], EFFECTS[key], server, SERVER, value, False
        )
    except SimFault as fault:
        return fault.status, fault.message
    return None


def both(
    vm_state: str, task_state: str | None, locked: bool, launched: bool
) -> tuple[ServerFacts, Server]:
    server = Server(
        id=SERVER,
        name="s",
        project_id="p1",
        user_id="u1",
        flavor_id="1",
        image_ref="img",
        vm_state=vm_state,
        task_state=task_state,
        launched_at=LAUNCHED if launched else None,
        locked_by="owner" if locked else None,
    )
    facts = server_facts(
        vm_state=vm_state,
        task_state=task_state,
        launched_at=LAUNCHED.isoformat() if launched else None,
        locked=locked,
        flavor="1",
    )
    return facts, server


@pytest.mark.parametrize("key", KEYS)
def test_lock_and_state_as_novasim_decides(key: str) -> None:
    spec = BY_KEY[key]
    compared = 0
    for vm_state, task_state, locked, launched in itertools.product(
        sorted(VM_STATES), TASK_STATES, (False, True), (True, False)
    ):
        facts, server = both(vm_state, task_state, locked, launched)
        for value in VALUES.get(key, ({},)):
            ours, theirs = gateway_verdict(spec, facts, value), novasim_verdict(key, server, value)
            if theirs is not None and theirs[0] == 500:
                # Nova lets InstanceIsLocked or InstanceInvalidState escape as a 500 here;
                # the gateway answers the 409 it stands for (README "The wire").
                assert ours is not None and ours[0] == 409, (vm_state, task_state, locked)
            else:
                assert ours == theirs, (vm_state, task_state, locked, launched, value)
            compared += 1
    assert compared >= len(VM_STATES) * len(TASK_STATES) * 4


def test_some_actions_refuse_on_each_gate() -> None:
    """The comparison above is not vacuous: each kind of refusal occurs."""
    locked, _ = both("active", None, True, True)
    assert gateway_verdict(BY_KEY["pause"], locked, {}) == (409, f"Instance {SERVER} is locked")
    paused, _ = both("paused", None, False, True)
    assert gateway_verdict(BY_KEY["pause"], paused, {}) == (
        409,
        f"Cannot 'pause' instance {SERVER} while it is in vm_state paused",
    )
    never, _ = both("stopped", None, False, False)
    assert gateway_verdict(BY_KEY["os-start"], never, {}) == (
        409,
        f"Instance {SERVER} is in an invalid state for 'start'",
    )


def test_admins_pass_locks_unless_strict_and_unlock_is_never_lock_checked() -> None:
    facts, _ = both("active", None, True, True)
    gates.check_lock(BY_KEY["pause"], facts, is_admin=True, strict_locks=False)
    with pytest.raises(Fault):
        gates.check_lock(BY_KEY["pause"], facts, is_admin=True, strict_locks=True)
    gates.check_lock(BY_KEY["unlock"], facts, is_admin=True, strict_locks=True)
    gates.check_lock(BY_KEY["unlock"], facts, is_admin=False, strict_locks=True)


def caller(project: str | None, **more: Any) -> Credentials:
    return Credentials(user_id="u", project_id=project, roles=frozenset({"member"}), **more)


@pytest.mark.parametrize("key", KEYS)
def test_visibility_texts_are_novasims(key: str) -> None:
    spec = BY_KEY[key]
    facts, _ = both("active", None, False, True)
    with pytest.raises(Fault) as missing:
        gates.check_visible(spec, SERVER, None, caller("p1"), is_admin=False)
    expected = SIM_ACTIONS[key].unknown_id.format(id=SERVER)
    assert (missing.value.status, missing.value.message) == (404, expected)
    with pytest.raises(Fault) as other:
        gates.check_visible(spec, SERVER, facts, caller("p2"), is_admin=False)
    assert (other.value.status, other.value.message) == (
        404,
        f"Instance {SERVER} could not be found.",
    )
    assert gates.check_visible(spec, SERVER, facts, caller("p2"), is_admin=True) is facts
    assert gates.check_visible(spec, SERVER, facts, caller("p1"), is_admin=False) is facts
    # No project to filter by: the policy stage refuses a system-scoped caller instead.
    system = caller(None, system_scope="all")
    assert gates.check_visible(spec, SERVER, facts, system, is_admin=False) is facts
