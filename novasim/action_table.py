"""What Nova checks for each server action key before acting: the microversions it
exists at, how the server is found, the policy rules, the lock check and the states the
compute API allows (nova/api/openstack/compute/*.py, nova/compute/api.py).

Owns that table, one row per key; it must never hold schemas (action_schemas.py) nor
an action's effect (effects.py), nor import the gateway: novasim is written from Nova.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from novasim.microversion import NEWEST, OLDEST, Version
from novasim.policy import (
    ADMIN_CHECK,
    MANAGER_CHECK,
    MEMBER_CHECK,
    Condition,
    Rule,
    Whose,
    always,
    live_host_absent,
    live_host_given,
    locked_by_other,
    migrate_host_absent,
    migrate_host_given,
    trusted_certs_given,
    volume_backed,
)


class Lookup(enum.Enum):
    """How the controller finds the server, relative to its policy check."""

    SERVER_FIRST = "common.get_instance, then context.can"
    POLICY_FIRST = "context.can with no target, then the lookup"
    BY_FLOATING_IP = "the server the floating IP is associated with"
    NONE = "removed action: no lookup, no policy"


class Lock(enum.Enum):
    """What a non-admin caller gets on a locked server."""

    UNCHECKED = "no check_instance_lock"
    LOCKED = "409 Instance <id> is locked"
    INVALID_STATE = "409 ... is in an invalid state for '<verb>' (InstanceIsLocked not caught)"
    UNCAUGHT = "500 Unexpected API Error (InstanceIsLocked escapes)"


@dataclass(frozen=True)
class Allowed:
    """check_instance_state's arguments: None is "not checked"."""

    vm_states: frozenset[str] | None
    task_states: frozenset[str | None] | None
    must_have_launched: bool = True
    rejected_tasks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Gates:
    """One action key's checks between validation and its effect, in Nova's order."""

    rules: tuple[Rule, ...]
    since: Version = OLDEST
    until: Version = NEWEST
    lookup: Lookup = Lookup.SERVER_FIRST
    lock: Lock = Lock.UNCHECKED
    # The states allowed for a (validated) action value; None: no state check.
    allowed: Callable[[Any], Allowed | None] = lambda value: None
    verb: str = ""  # the name in "Cannot '<verb>' instance ..." when it is not the key
    unknown_id: str = "Instance {id} could not be found."
    removed: tuple[int, str] | None = None  # the answer a removed action always gives

    def exists_at(self, version: Version) -> bool:
        return self.since <= version <= self.until


# --- the vocabulary of the table --------------------------------------------------------------

SERVERS = "os_compute_api:servers:"
_NO_TASK: frozenset[str | None] = frozenset({None})
# ServersController._get_instance reads the cell mapping first.
_NO_CELL = "Instance {id} has no mapping to a cell."


def member(name: str, applies: Condition = always) -> Rule:
    return Rule(name, MEMBER_CHECK, applies)


def admin(name: str, applies: Condition = always) -> Rule:
    return Rule(name, ADMIN_CHECK, applies)


def manager(name: str, applies: Condition = always) -> Rule:
    return Rule(name, MANAGER_CHECK, applies)


def idle_in(*vm_states: str) -> Callable[[Any], Allowed]:
    """The usual check: one of ``vm_states``, no task running, launched."""
    allowed = Allowed(frozenset(vm_states), _NO_TASK)
    return lambda value: allowed


_SOFT_REBOOT = Allowed(frozenset({"active"}), _NO_TASK)
_HARD_REBOOT = Allowed(
    frozenset({"active", "stopped", "paused", "suspended", "error"}),
    frozenset(
        {
            None,
            "rebooting",
            "reboot_pending",
            "reboot_started",
            "resuming",
            "rebooting_hard",
            "unpausing",
            "pausing",
            "suspending",
        }
    ),
)


def _reboot_allowed(value: Any) -> Allowed:
    """compute API reboot: the schema allows only soft and hard, in any case."""
    return _HARD_REBOOT if str(value["type"]).upper() == "HARD" else _SOFT_REBOOT


# Remote consoles: reject_instance_state(task_state=[DELETING, MIGRATING]) only.
_CONSOLE_TASKS = Allowed(None, None, False, frozenset({"deleting", "migrating"}))
_EVACUABLE = Allowed(frozenset({"active", "stopped", "error"}), None)
_UNTIL_2_43 = Version(2, 43)
_UNTIL_2_5 = Version(2, 5)


def _console(verb: str = "") -> Gates:
    return Gates(
        (Rule("os_compute_api:os-remote-consoles", MEMBER_CHECK, whose=Whose.CALLER),),
        until=_UNTIL_2_5,
        lookup=Lookup.POLICY_FIRST,
        allowed=lambda value: _CONSOLE_TASKS,
        verb=verb,
    )


ACTIONS: Mapping[str, Gates] = {
    "confirmResize": Gates(
        (member(SERVERS + "confirm_resize"),), lock=Lock.LOCKED, allowed=idle_in("resized")
    ),
    "revertResize": Gates(
        (member(SERVERS + "revert_resize"),), lock=Lock.LOCKED, allowed=idle_in("resized")
    ),
    "reboot": Gates((member(SERVERS + "reboot"),), lock=Lock.LOCKED, allowed=_reboot_allowed),
    # compute:servers:resize:cross_cell is asked inside the compute API and never refuses.
    "resize": Gates(
        (member(SERVERS + "resize"),), lock=Lock.LOCKED, allowed=idle_in("active", "stopped")
    ),
    "rebuild": Gates(
        (
            member(SERVERS + "rebuild"),
            member(SERVERS + "rebuild:trusted_certs", trusted_certs_given),
        ),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "stopped", "error"),
    ),
    "createImage": Gates(
        (
            member(SERVERS + "create_image"),
            member(SERVERS + "create_image:allow_volume_backed", volume_backed),
        ),
        allowed=idle_in("active", "stopped", "paused", "suspended"),
    ),
    "os-start": Gates(
        (member(SERVERS + "start"),),
        lock=Lock.LOCKED,
        allowed=idle_in("stopped"),
        verb="start",
        unknown_id=_NO_CELL,
    ),
    "os-stop": Gates(
        (member(SERVERS + "stop"),),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "error"),
        verb="stop",
        unknown_id=_NO_CELL,
    ),
    "trigger_crash_dump": Gates(
        (member(SERVERS + "trigger_crash_dump"),),
        since=Version(2, 17),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "paused", "rescued", "resized", "error"),
        unknown_id=_NO_CELL,
    ),
    "resetNetwork": Gates(
        (),
        lookup=Lookup.NONE,
        removed=(410, "This resource is no longer available. No forwarding address is given."),
    ),
    "injectNetworkInfo": Gates(
        (admin("os_compute_api:os-admin-actions:inject_network_info"),), lock=Lock.LOCKED
    ),
    "os-resetState": Gates((admin("os_compute_api:os-admin-actions:reset_state"),)),
    "changePassword": Gates(
        (member("os_compute_api:os-admin-password"),),
        lock=Lock.INVALID_STATE,
        allowed=idle_in("active"),
    ),
    "os-getConsoleOutput": Gates((member("os_compute_api:os-console-output"),)),
    "createBackup": Gates(
        (member("os_compute_api:os-create-backup"),),
        allowed=idle_in("active", "stopped", "paused", "suspended"),
    ),
    "restore": Gates(
        (member("os_compute_api:os-deferred-delete:restore"),),
        lock=Lock.INVALID_STATE,
        allowed=idle_in("soft-delete"),
    ),
    "forceDelete": Gates((member("os_compute_api:os-deferred-delete:force"),), lock=Lock.LOCKED),
    "evacuate": Gates((admin("os_compute_api:os-evacuate"),), allowed=lambda value: _EVACUABLE),
    "addFloatingIp": Gates((member("os_compute_api:os-floating-ips:add"),), until=_UNTIL_2_43),
    "removeFloatingIp": Gates(
        (member("os_compute_api:os-floating-ips:remove"),),
        until=_UNTIL_2_43,
        lookup=Lookup.BY_FLOATING_IP,
    ),
    "lock": Gates((member("os_compute_api:os-lock-server:lock"),)),
    "unlock": Gates(
        (
            member("os_compute_api:os-lock-server:unlock"),
            admin("os_compute_api:os-lock-server:unlock:unlock_override", locked_by_other),
        )
    ),
    "migrate": Gates(
        (
            manager("os_compute_api:os-migrate-server:migrate", migrate_host_absent),
            admin("os_compute_api:os-migrate-server:migrate:host", migrate_host_given),
        ),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "stopped"),
    ),
    "os-migrateLive": Gates(
        (
            manager("os_compute_api:os-migrate-server:migrate_live", live_host_absent),
            admin("os_compute_api:os-migrate-server:migrate_live:host", live_host_given),
        ),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "paused"),
    ),
    "addFixedIp": Gates(
        (member("os_compute_api:os-multinic:add"),), until=_UNTIL_2_43, lock=Lock.UNCAUGHT
    ),
    "removeFixedIp": Gates(
        (member("os_compute_api:os-multinic:remove"),), until=_UNTIL_2_43, lock=Lock.UNCAUGHT
    ),
    "pause": Gates(
        (member("os_compute_api:os-pause-server:pause"),),
        lock=Lock.LOCKED,
        allowed=idle_in("active"),
    ),
    "unpause": Gates(
        (member("os_compute_api:os-pause-server:unpause"),),
        lock=Lock.LOCKED,
        allowed=idle_in("paused"),
    ),
    "os-getVNCConsole": _console("get_vnc_console"),
    "os-getSPICEConsole": _console(),
    "os-getSerialConsole": _console(),
    "os-getRDPConsole": Gates(
        (),
        until=_UNTIL_2_5,
        lookup=Lookup.NONE,
        removed=(
            400,
            "The server could not comply with the request since it is either malformed or "
            "otherwise incorrect.",
        ),
    ),
    "rescue": Gates(
        (member("os_compute_api:os-rescue"),),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "stopped", "error"),
    ),
    "unrescue": Gates(
        (member("os_compute_api:os-unrescue"),), lock=Lock.LOCKED, allowed=idle_in("rescued")
    ),
    "addSecurityGroup": Gates((member("os_compute_api:os-security-groups:add"),)),
    "removeSecurityGroup": Gates((member("os_compute_api:os-security-groups:remove"),)),
    "shelve": Gates(
        (member("os_compute_api:os-shelve:shelve"),),
        lock=Lock.LOCKED,
        allowed=idle_in("active", "stopped", "paused", "suspended"),
    ),
    "shelveOffload": Gates(
        (admin("os_compute_api:os-shelve:shelve_offload"),),
        lock=Lock.LOCKED,
        allowed=idle_in("shelved"),
    ),
    # os-shelve:unshelve_to_host is asked inside the compute API, after lock and state:
    # the unshelve effect checks it.
    "unshelve": Gates(
        (member("os_compute_api:os-shelve:unshelve"),),
        lock=Lock.LOCKED,
        allowed=idle_in("shelved", "shelved_offloaded"),
    ),
    "suspend": Gates(
        (member("os_compute_api:os-suspend-server:suspend"),),
        lock=Lock.LOCKED,
        allowed=idle_in("active"),
    ),
    "resume": Gates(
        (member("os_compute_api:os-suspend-server:resume"),),
        lock=Lock.LOCKED,
        allowed=idle_in("suspended"),
    ),
}
