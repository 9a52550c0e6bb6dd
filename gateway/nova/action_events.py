"""Which versioned ``instance.*`` notifications Nova 34 publishes for each server action, and
what each one says about that action: begun, done, or failed.

Owns the table (data: one row per action key of the catalogue, plus DELETE and PUT of a
server) and the reading of an event type against a row; it must never read a message nor
know who forwarded what (gateway.audit.execution joins an event to its call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

INSTANCE = "instance"
# Nova's NotificationPhase values (nova/objects/fields.py); an event without one is a
# single notification about the action as a whole.
START, END, ERROR = "start", "end", "error"


class Phase(StrEnum):
    """How far Nova got with an action, ranked: a later phase never gives way to an earlier."""

    STARTED = "started"
    ENDED = "ended"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Phase.STARTED: 1, Phase.ENDED: 2, Phase.FAILED: 3}


@dataclass(frozen=True)
class ActionEvents:
    """The ``instance.<name>[.start|.end|.error]`` notifications Nova publishes for one action.

    ``names`` are Nova's NotificationAction values in the order they come (an action may
    run in steps: a migrate publishes resize_prep, resize, then resize_finish); empty when
    Nova publishes none (only ``instance.update`` if a state changed, which says nothing
    about the action). ``ends``: the names whose ``.end`` says the action is done (by
    default the last name); the ``.end`` of an earlier step only says it is under way.
    ``done_in_api``: nova-api does it while answering and publishes one event without a
    phase (lock, unlock); any other event without a phase says the action has begun.
    ``undone_by``: names whose ``.end`` says Nova rolled the action back (it failed).
    ``.error`` of any name says it failed.
    """

    names: tuple[str, ...] = ()
    ends: tuple[str, ...] = ()
    done_in_api: bool = False
    undone_by: tuple[str, ...] = ()
    why_none: str = ""  # for a row without names: why Nova publishes nothing

    @property
    def publishes(self) -> bool:
        return bool(self.names)

    @property
    def final(self) -> tuple[str, ...]:
        return self.ends or self.names[-1:]

    def phase(self, event_type: str) -> Phase | None:
        """What ``event_type`` says about this action; None if it is not one of its events
        or says nothing new (the ``.end`` of an early step is reported as STARTED)."""
        parts = event_type.split(".")
        if len(parts) not in (2, 3) or parts[0] != INSTANCE:
            return None
        name, phase = parts[1], parts[2] if len(parts) == 3 else None
        if name in self.undone_by:
            return Phase.FAILED if phase == END else None
        if name not in self.names:
            return None
        if phase == ERROR:
            return Phase.FAILED
        if phase is None:
            return Phase.ENDED if self.done_in_api else Phase.STARTED
        if phase == START:
            return Phase.STARTED
        if phase == END:
            return Phase.ENDED if name in self.final else Phase.STARTED
        return None


def _steps(
    *names: str, ends: tuple[str, ...] = (), undone_by: tuple[str, ...] = ()
) -> ActionEvents:
    return ActionEvents(names=names, ends=ends, undone_by=undone_by)


def _none(why: str) -> ActionEvents:
    return ActionEvents(why_none=why)


_READ = "a read: nothing changes"
_NEUTRON = "done in Neutron by nova-api; no instance event"
_LEGACY = "the compute sends only a legacy (unversioned) notification"
_UPDATE_ONLY = "only instance.update (a state or field change), no event of the action"
# A migrate and a resize run the same steps on the source and destination computes
# (nova/compute/manager.py: prep_resize, resize_instance, finish_resize; the cross-cell
# path publishes the same names).
_RESIZE = _steps("resize_prep", "resize", "resize_finish")

# From nova/compute/api.py (lock, unlock, evacuate), nova/conductor/manager.py
# (rebuild_scheduled) and nova/compute/manager.py (every other notify_about_instance_*
# call), Nova 34.0.0; the real Nova in ../shared/realnova confirms the rows the e2e tests
# drive (tests/e2e/test_audit_execution_realnova.py).
EVENTS: Mapping[str, ActionEvents] = {
    "confirmResize": _steps("resize_confirm"),
    "revertResize": _steps("resize_revert"),
    "reboot": _steps("reboot"),
    "resize": _RESIZE,
    # The conductor's phase-less rebuild_scheduled comes first (evacuate: after nova-api's
    # evacuate); a rebuild the compute cannot do is instance.rebuild.error.
    "rebuild": _steps("rebuild_scheduled", "rebuild"),
    # A volume-backed server's image is made by nova-api from volume snapshots: no event.
    "createImage": _steps("snapshot"),
    "os-start": _steps("power_on"),
    "os-stop": _steps("power_off"),
    "trigger_crash_dump": _steps("trigger_crash_dump"),
    "resetNetwork": _none("removed: Nova answers 410"),
    "injectNetworkInfo": _none("the compute publishes nothing for it"),
    "os-resetState": _none(_UPDATE_ONLY + " (nova-api sets the state)"),
    "changePassword": _none(_UPDATE_ONLY + " (task_state updating_password)"),
    "os-getConsoleOutput": _none(_READ),
    "createBackup": _steps("snapshot"),
    "restore": _steps("restore"),
    # Reaches the compute's delete of a soft-deleted server; a server with no host is
    # deleted by nova-api, which publishes no versioned event for a force_delete.
    "forceDelete": _steps("delete"),
    "evacuate": _steps("evacuate", "rebuild_scheduled", "rebuild"),
    "addFloatingIp": _none(_NEUTRON),
    "removeFloatingIp": _none(_NEUTRON),
    "lock": ActionEvents(names=("lock",), done_in_api=True),
    "unlock": ActionEvents(names=("unlock",), done_in_api=True),
    "migrate": _RESIZE,
    # The source's live_migration_post.end comes last; a rollback means it did not move.
    "os-migrateLive": _steps(
        "live_migration_pre",
        "live_migration_post_dest",
        "live_migration_post",
        ends=("live_migration_post",),
        undone_by=("live_migration_rollback", "live_migration_rollback_dest"),
    ),
    "addFixedIp": _none(_LEGACY),
    "removeFixedIp": _none(_LEGACY),
    "pause": _steps("pause"),
    "unpause": _steps("unpause"),
    "os-getVNCConsole": _none(_READ),
    "os-getSPICEConsole": _none(_READ),
    "os-getSerialConsole": _none(_READ),
    "os-getRDPConsole": _none(_READ),
    "rescue": _steps("rescue"),
    "unrescue": _steps("unrescue"),
    "addSecurityGroup": _none(_NEUTRON),
    "removeSecurityGroup": _none(_NEUTRON),
    # shelve.end: shelved. With shelved_offload_time = 0 the compute offloads at once
    # (shelve_offload follows); a volume-backed server is offloaded directly.
    "shelve": _steps("shelve", "shelve_offload", ends=("shelve", "shelve_offload")),
    "shelveOffload": _steps("shelve_offload"),
    "unshelve": _steps("unshelve"),
    "suspend": _steps("suspend"),
    "resume": _steps("resume"),
    # DELETE /servers/{id}: the compute shuts the guest down, then deletes it (or
    # soft-deletes it with reclaim_instance_interval); nova-api deletes a server that has
    # no host and publishes the same delete events.
    "delete": _steps("delete", "shutdown", "soft_delete", ends=("delete", "soft_delete")),
    # PUT /servers/{id}: name, description, hostname.
    "update": _none(_UPDATE_ONLY),
}


def events_of(action_key: str | None) -> ActionEvents | None:
    """The row for an action key; None for calls that name no action of a server."""
    return EVENTS.get(action_key) if action_key is not None else None


def is_action_event(event_type: str) -> bool:
    """An ``instance.*`` event some action publishes (not instance.update nor .exists)."""
    parts = event_type.split(".")
    return len(parts) in (2, 3) and parts[0] == INSTANCE and parts[1] in _ACTION_NAMES


_ACTION_NAMES = frozenset(name for row in EVENTS.values() for name in (*row.names, *row.undone_by))
