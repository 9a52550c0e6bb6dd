"""The action catalogue: one row per server action key Nova registers (41 of them).

Owns what Nova does with each action (versions, schemas, which policy rules and when, lock
and state rules, normal status). It is data: no gate logic lives here, and adding an action
is adding a row, never a branch elsewhere. A rule's default check string is never written
here: it is read from the registry (gateway.nova.policy_defaults).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.nova import schemas as S
from gateway.nova.policy_defaults import ACTION_RULES
from gateway.nova.types import Version, v

MIN_VERSION = v("2.1")
MAX_VERSION = v("2.104")


@dataclass(frozen=True)
class SchemaRange:
    """The request schema Nova applies from ``min_version`` to ``max_version``.

    ``schema`` is None where Nova registers no schema: the value is not validated.
    """

    min_version: Version
    max_version: Version | None
    schema: Mapping[str, Any] | None

    def covers(self, version: Version) -> bool:
        return self.min_version <= version and (
            self.max_version is None or version <= self.max_version
        )


class When(enum.Enum):
    """When a policy rule applies to a call; evaluated by the policy concern."""

    ALWAYS = "always"
    TRUSTED_CERTS_GIVEN = "from 2.63, when trusted_image_certificates is present (even null)"
    HOST_ABSENT = "when no host is given (or it is empty)"
    HOST_GIVEN = "when a host is given (replaces the host-less rule)"
    UNSHELVE_TO_HOST = "from 2.91, when a host is given"
    VOLUME_BACKED = "when the server is volume-backed"
    LOCKED_BY_OTHER = "when the lock was set by the other side (owner vs admin)"
    RESPONSE_VIEW = "non-fatal: only trims the response view"


class Target(enum.Enum):
    """What Nova passes as the policy target."""

    SERVER = "the server's project_id and user_id"
    CALLER = "no target: the caller's own project_id and user_id (checked before lookup)"
    FLOATING_IP_SERVER = "the server the floating IP is associated with, or {} if none"


# The registered default of every rule an action names, by rule name.
_REGISTERED_DEFAULTS: Mapping[str, str] = {rule.name: rule.check_str for rule in ACTION_RULES}


@dataclass(frozen=True)
class PolicyRule:
    """A rule Nova checks for an action; its default lives in the registry only."""

    name: str
    when: When = When.ALWAYS
    target: Target = Target.SERVER
    # Nova checks some rules inside the compute API, after the lock and state checks.
    after_state: bool = False

    def __post_init__(self) -> None:
        if self.name not in _REGISTERED_DEFAULTS:
            raise ValueError(f"{self.name}: no registered default in policy_defaults")

    @property
    def default(self) -> str:
        """The check string Nova registers for this rule."""
        return _REGISTERED_DEFAULTS[self.name]

    @property
    def fatal(self) -> bool:
        return self.when is not When.RESPONSE_VIEW


@dataclass(frozen=True)
class StateRule:
    """Nova's ``check_instance_state`` arguments; None means that check is off."""

    vm_states: frozenset[str] | None
    task_states: frozenset[str | None] | None
    must_have_launched: bool
    rejected_task_states: frozenset[str] = frozenset()


class LockFault(enum.Enum):
    """How Nova reports a lock refusal for this action."""

    LOCKED = "409 Instance <uuid> is locked"
    INVALID_STATE = "409 Instance <uuid> is in an invalid state for '<action>'"
    UNEXPECTED = "500 Unexpected API Error (Nova does not catch InstanceIsLocked)"


class Lookup(enum.Enum):
    """When Nova reads the server relative to the policy check."""

    BEFORE_POLICY = "server lookup, then policy"
    AFTER_POLICY = "policy (caller target), then server lookup"
    BY_FLOATING_IP = "looked up through the floating IP"
    NONE = "no lookup"


class FactsEffect(enum.Enum):
    """What a call Nova accepted does to the server facts the gateway decides on.

    Data for the server-facts store, so that adding an action stays adding a row.
    """

    STATE = "changes them (vm/task state, image, flavor...): known from Nova's notification"
    NONE = "leaves them as they were (consoles, addresses, security groups, crash dump)"
    LOCK = (
        "locks the server; who locked is the caller's side (owner when the caller's "
        "project is the server's, else admin); a lock by the owner of a server that is "
        "already locked changes nothing"
    )
    UNLOCK = "unlocks the server (no one holds the lock any more)"


@dataclass(frozen=True)
class Removed:
    """An action Nova still routes but always answers the same way."""

    status: int
    message: str


@dataclass(frozen=True)
class ActionSpec:
    key: str
    min_version: Version
    max_version: Version | None
    schemas: tuple[SchemaRange, ...]
    policies: tuple[PolicyRule, ...]
    lock_checked: bool
    states: StateRule | None
    normal_status: int
    # Name Nova uses in "Cannot '<name>' instance ..." messages.
    state_name: str = ""
    lookup: Lookup = Lookup.BEFORE_POLICY
    lock_fault: LockFault = LockFault.LOCKED
    # Body field whose (upper-cased) value selects the state rule, e.g. reboot's type.
    states_by: tuple[str, Mapping[str, StateRule]] | None = None
    removed: Removed | None = None
    # Nova's 404 text for an id that names no server at all (os-start, os-stop and
    # trigger_crash_dump look the id up in the cell mappings first).
    missing_message: str = "Instance {id} could not be found."
    facts_effect: FactsEffect = FactsEffect.STATE
    notes: tuple[str, ...] = field(default=())

    @property
    def message_name(self) -> str:
        return self.state_name or self.key

    def supports(self, version: Version) -> bool:
        return self.min_version <= version and (
            self.max_version is None or version <= self.max_version
        )

    def schema_for(self, version: Version) -> SchemaRange | None:
        """The schema range covering ``version``; None if Nova registers none there."""
        for schema_range in self.schemas:
            if schema_range.covers(version):
                return schema_range
        return None

    def state_rule(self, value: Any) -> StateRule | None:
        if self.states_by is None:
            return self.states
        field_name, by_value = self.states_by
        selector = value.get(field_name) if isinstance(value, dict) else None
        return by_value.get(str(selector).upper()) if selector is not None else None


_NO_TASK: frozenset[str | None] = frozenset({None})


def _states(*vm_states: str, launched: bool = True) -> StateRule:
    return StateRule(frozenset(vm_states), _NO_TASK, launched)


def _always(version: str, schema: Mapping[str, Any] | None) -> tuple[SchemaRange, ...]:
    return (SchemaRange(v(version), None, schema),)


def _ranged(rows: tuple[S.SchemaRow, ...]) -> tuple[SchemaRange, ...]:
    """Nova's stacked ``@validation.schema(schema, min, max)`` decorators, as ranges."""
    return tuple(
        SchemaRange(v(low), v(high) if high is not None else None, schema)
        for low, high, schema in rows
    )


def _rule(name: str, when: When = When.ALWAYS) -> PolicyRule:
    return PolicyRule(name, when)


_SERVERS = "os_compute_api:servers:"
_NO_CELL_MAPPING = "Instance {id} has no mapping to a cell."
_CONSOLE_TASKS_REJECTED = StateRule(None, None, False, frozenset({"deleting", "migrating"}))
_HARD_REBOOT_TASKS: frozenset[str | None] = frozenset(
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
)

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        key="confirmResize",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.CONFIRM_RESIZE),
        policies=(_rule(_SERVERS + "confirm_resize"),),
        lock_checked=True,
        states=_states("resized"),
        normal_status=204,
    ),
    ActionSpec(
        key="revertResize",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.REVERT_RESIZE),
        policies=(_rule(_SERVERS + "revert_resize"),),
        lock_checked=True,
        states=_states("resized"),
        normal_status=202,
    ),
    ActionSpec(
        key="reboot",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.REBOOT),
        policies=(_rule(_SERVERS + "reboot"),),
        lock_checked=True,
        states=None,
        states_by=(
            "type",
            {
                "SOFT": _states("active"),
                "HARD": StateRule(
                    frozenset({"active", "stopped", "paused", "suspended", "error"}),
                    _HARD_REBOOT_TASKS,
                    True,
                ),
            },
        ),
        normal_status=202,
    ),
    ActionSpec(
        key="resize",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESIZE),
        policies=(
            _rule(_SERVERS + "resize"),
            PolicyRule("compute:servers:resize:cross_cell", When.RESPONSE_VIEW),
        ),
        lock_checked=True,
        states=_states("active", "stopped"),
        normal_status=202,
        notes=("instance host must be set and its compute service up (409)",),
    ),
    ActionSpec(
        key="rebuild",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_ranged(S.REBUILD_RANGES),
        policies=(
            _rule(_SERVERS + "rebuild"),
            _rule(_SERVERS + "rebuild:trusted_certs", When.TRUSTED_CERTS_GIVEN),
            PolicyRule(_SERVERS + "show:flavor-extra-specs", When.RESPONSE_VIEW),
            PolicyRule("os_compute_api:os-extended-server-attributes", When.RESPONSE_VIEW),
            PolicyRule(_SERVERS + "show:host_status", When.RESPONSE_VIEW),
            PolicyRule(_SERVERS + "show:host_status:unknown-only", When.RESPONSE_VIEW),
        ),
        lock_checked=True,
        states=_states("active", "stopped", "error"),
        normal_status=202,
    ),
    ActionSpec(
        key="createImage",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.CREATE_IMAGE),
        policies=(
            _rule(_SERVERS + "create_image"),
            _rule(_SERVERS + "create_image:allow_volume_backed", When.VOLUME_BACKED),
        ),
        lock_checked=False,
        states=_states("active", "stopped", "paused", "suspended"),
        normal_status=202,
    ),
    ActionSpec(
        key="os-start",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.START_SERVER),
        policies=(_rule(_SERVERS + "start"),),
        lock_checked=True,
        states=_states("stopped"),
        state_name="start",
        normal_status=202,
        missing_message=_NO_CELL_MAPPING,
    ),
    ActionSpec(
        key="os-stop",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.STOP_SERVER),
        policies=(_rule(_SERVERS + "stop"),),
        lock_checked=True,
        states=_states("active", "error"),
        state_name="stop",
        normal_status=202,
        missing_message=_NO_CELL_MAPPING,
    ),
    ActionSpec(
        key="trigger_crash_dump",
        min_version=v("2.17"),
        max_version=None,
        schemas=_always("2.17", S.TRIGGER_CRASH_DUMP),
        policies=(_rule(_SERVERS + "trigger_crash_dump"),),
        lock_checked=True,
        states=_states("active", "paused", "rescued", "resized", "error"),
        normal_status=202,
        facts_effect=FactsEffect.NONE,
        missing_message=_NO_CELL_MAPPING,
    ),
    ActionSpec(
        key="resetNetwork",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESET_NETWORK),
        policies=(),
        lock_checked=False,
        states=None,
        normal_status=410,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.NONE,
        removed=Removed(
            410, "This resource is no longer available. No forwarding address is given."
        ),
    ),
    ActionSpec(
        key="injectNetworkInfo",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.INJECT_NETWORK_INFO),
        policies=(_rule("os_compute_api:os-admin-actions:inject_network_info"),),
        lock_checked=True,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="os-resetState",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESET_STATE),
        policies=(_rule("os_compute_api:os-admin-actions:reset_state"),),
        lock_checked=False,
        states=None,
        normal_status=202,
    ),
    ActionSpec(
        key="changePassword",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.CHANGE_PASSWORD),
        policies=(_rule("os_compute_api:os-admin-password"),),
        lock_checked=True,
        lock_fault=LockFault.INVALID_STATE,
        states=_states("active"),
        normal_status=202,
    ),
    ActionSpec(
        key="os-getConsoleOutput",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.GET_CONSOLE_OUTPUT),
        policies=(_rule("os_compute_api:os-console-output"),),
        lock_checked=False,
        states=None,
        normal_status=200,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="createBackup",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.CREATE_BACKUP),
        policies=(_rule("os_compute_api:os-create-backup"),),
        lock_checked=False,
        states=_states("active", "stopped", "paused", "suspended"),
        normal_status=202,
    ),
    ActionSpec(
        key="restore",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESTORE),
        policies=(_rule("os_compute_api:os-deferred-delete:restore"),),
        lock_checked=True,
        lock_fault=LockFault.INVALID_STATE,
        states=_states("soft-delete"),
        normal_status=202,
    ),
    ActionSpec(
        key="forceDelete",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.FORCE_DELETE),
        policies=(_rule("os_compute_api:os-deferred-delete:force"),),
        lock_checked=True,
        states=None,
        normal_status=202,
    ),
    ActionSpec(
        key="evacuate",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_ranged(S.EVACUATE_RANGES),
        policies=(_rule("os_compute_api:os-evacuate"),),
        lock_checked=False,
        states=StateRule(frozenset({"active", "stopped", "error"}), None, True),
        normal_status=200,
    ),
    ActionSpec(
        key="addFloatingIp",
        min_version=MIN_VERSION,
        max_version=v("2.43"),
        schemas=(SchemaRange(MIN_VERSION, v("2.43"), S.ADD_FLOATING_IP),),
        policies=(_rule("os_compute_api:os-floating-ips:add"),),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="removeFloatingIp",
        min_version=MIN_VERSION,
        max_version=v("2.43"),
        schemas=(SchemaRange(MIN_VERSION, v("2.43"), S.REMOVE_FLOATING_IP),),
        policies=(
            PolicyRule(
                "os_compute_api:os-floating-ips:remove",
                target=Target.FLOATING_IP_SERVER,
            ),
        ),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.BY_FLOATING_IP,
    ),
    ActionSpec(
        key="lock",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=(
            SchemaRange(MIN_VERSION, v("2.72"), S.LOCK),
            SchemaRange(v("2.73"), None, S.LOCK_V273),
        ),
        policies=(_rule("os_compute_api:os-lock-server:lock"),),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.LOCK,
    ),
    ActionSpec(
        key="unlock",
        min_version=MIN_VERSION,
        max_version=None,
        # From 2.73 Nova registers no unlock schema; the value is never validated.
        schemas=(SchemaRange(MIN_VERSION, v("2.72"), S.UNLOCK),),
        policies=(
            _rule("os_compute_api:os-lock-server:unlock"),
            _rule(
                "os_compute_api:os-lock-server:unlock:unlock_override",
                When.LOCKED_BY_OTHER,
            ),
        ),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.UNLOCK,
    ),
    ActionSpec(
        key="migrate",
        min_version=MIN_VERSION,
        max_version=None,
        # Before 2.56 Nova registers no migrate schema: any value is accepted.
        schemas=(SchemaRange(v("2.56"), None, S.MIGRATE_V256),),
        policies=(
            _rule("os_compute_api:os-migrate-server:migrate", When.HOST_ABSENT),
            _rule("os_compute_api:os-migrate-server:migrate:host", When.HOST_GIVEN),
        ),
        lock_checked=True,
        states=_states("active", "stopped"),
        normal_status=202,
    ),
    ActionSpec(
        key="os-migrateLive",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_ranged(S.MIGRATE_LIVE_RANGES),
        policies=(
            _rule("os_compute_api:os-migrate-server:migrate_live", When.HOST_ABSENT),
            _rule("os_compute_api:os-migrate-server:migrate_live:host", When.HOST_GIVEN),
        ),
        lock_checked=True,
        states=_states("active", "paused"),
        normal_status=202,
    ),
    ActionSpec(
        key="addFixedIp",
        min_version=MIN_VERSION,
        max_version=v("2.43"),
        schemas=(SchemaRange(MIN_VERSION, v("2.43"), S.ADD_FIXED_IP),),
        policies=(_rule("os_compute_api:os-multinic:add"),),
        lock_checked=True,
        lock_fault=LockFault.UNEXPECTED,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="removeFixedIp",
        min_version=MIN_VERSION,
        max_version=v("2.43"),
        schemas=(SchemaRange(MIN_VERSION, v("2.43"), S.REMOVE_FIXED_IP),),
        policies=(_rule("os_compute_api:os-multinic:remove"),),
        lock_checked=True,
        lock_fault=LockFault.UNEXPECTED,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="pause",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.PAUSE),
        policies=(_rule("os_compute_api:os-pause-server:pause"),),
        lock_checked=True,
        states=_states("active"),
        normal_status=202,
    ),
    ActionSpec(
        key="unpause",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.UNPAUSE),
        policies=(_rule("os_compute_api:os-pause-server:unpause"),),
        lock_checked=True,
        states=_states("paused"),
        normal_status=202,
    ),
    ActionSpec(
        key="os-getVNCConsole",
        min_version=MIN_VERSION,
        max_version=v("2.5"),
        schemas=(SchemaRange(MIN_VERSION, v("2.5"), S.GET_VNC_CONSOLE),),
        policies=(PolicyRule("os_compute_api:os-remote-consoles", target=Target.CALLER),),
        lock_checked=False,
        states=_CONSOLE_TASKS_REJECTED,
        state_name="get_vnc_console",
        normal_status=200,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.AFTER_POLICY,
    ),
    ActionSpec(
        key="os-getSPICEConsole",
        min_version=MIN_VERSION,
        max_version=v("2.5"),
        schemas=(SchemaRange(MIN_VERSION, v("2.5"), S.GET_SPICE_CONSOLE),),
        policies=(PolicyRule("os_compute_api:os-remote-consoles", target=Target.CALLER),),
        lock_checked=False,
        states=_CONSOLE_TASKS_REJECTED,
        normal_status=200,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.AFTER_POLICY,
    ),
    ActionSpec(
        key="os-getSerialConsole",
        min_version=MIN_VERSION,
        max_version=v("2.5"),
        schemas=(SchemaRange(MIN_VERSION, v("2.5"), S.GET_SERIAL_CONSOLE),),
        policies=(PolicyRule("os_compute_api:os-remote-consoles", target=Target.CALLER),),
        lock_checked=False,
        states=_CONSOLE_TASKS_REJECTED,
        normal_status=200,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.AFTER_POLICY,
    ),
    ActionSpec(
        key="os-getRDPConsole",
        min_version=MIN_VERSION,
        max_version=v("2.5"),
        schemas=(SchemaRange(MIN_VERSION, v("2.5"), S.GET_RDP_CONSOLE),),
        policies=(),
        lock_checked=False,
        states=None,
        normal_status=400,
        facts_effect=FactsEffect.NONE,
        lookup=Lookup.NONE,
        removed=Removed(
            400,
            "The server could not comply with the request since it is either "
            "malformed or otherwise incorrect.",
        ),
    ),
    ActionSpec(
        key="rescue",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESCUE),
        policies=(_rule("os_compute_api:os-rescue"),),
        lock_checked=True,
        states=_states("active", "stopped", "error"),
        normal_status=200,
    ),
    ActionSpec(
        key="unrescue",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.UNRESCUE),
        policies=(_rule("os_compute_api:os-unrescue"),),
        lock_checked=True,
        states=_states("rescued"),
        normal_status=202,
    ),
    ActionSpec(
        key="addSecurityGroup",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.ADD_SECURITY_GROUP),
        policies=(_rule("os_compute_api:os-security-groups:add"),),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="removeSecurityGroup",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.REMOVE_SECURITY_GROUP),
        policies=(_rule("os_compute_api:os-security-groups:remove"),),
        lock_checked=False,
        states=None,
        normal_status=202,
        facts_effect=FactsEffect.NONE,
    ),
    ActionSpec(
        key="shelve",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.SHELVE),
        policies=(_rule("os_compute_api:os-shelve:shelve"),),
        lock_checked=True,
        states=_states("active", "stopped", "paused", "suspended"),
        normal_status=202,
    ),
    ActionSpec(
        key="shelveOffload",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.SHELVE_OFFLOAD),
        policies=(_rule("os_compute_api:os-shelve:shelve_offload"),),
        lock_checked=True,
        states=_states("shelved"),
        normal_status=202,
    ),
    ActionSpec(
        key="unshelve",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_ranged(S.UNSHELVE_RANGES),
        policies=(
            _rule("os_compute_api:os-shelve:unshelve"),
            PolicyRule(
                "os_compute_api:os-shelve:unshelve_to_host",
                When.UNSHELVE_TO_HOST,
                after_state=True,
            ),
        ),
        lock_checked=True,
        states=_states("shelved", "shelved_offloaded"),
        normal_status=202,
    ),
    ActionSpec(
        key="suspend",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.SUSPEND),
        policies=(_rule("os_compute_api:os-suspend-server:suspend"),),
        lock_checked=True,
        states=_states("active"),
        normal_status=202,
    ),
    ActionSpec(
        key="resume",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=_always("2.1", S.RESUME),
        policies=(_rule("os_compute_api:os-suspend-server:resume"),),
        lock_checked=True,
        states=_states("suspended"),
        normal_status=202,
    ),
)

BY_KEY: Mapping[str, ActionSpec] = {spec.key: spec for spec in ACTIONS}

# DELETE and PUT of /servers/{id} pass the same gates (Nova lock-checks delete only).
SERVER_RESOURCE_ACTIONS: Mapping[str, ActionSpec] = {
    "DELETE": ActionSpec(
        key="delete",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=(),
        policies=(_rule(_SERVERS + "delete"),),
        lock_checked=True,
        states=None,
        normal_status=204,
    ),
    "PUT": ActionSpec(
        key="update",
        min_version=MIN_VERSION,
        max_version=None,
        schemas=(),
        policies=(_rule(_SERVERS + "update"),),
        lock_checked=False,
        states=None,
        normal_status=200,
        facts_effect=FactsEffect.NONE,
    ),
}
