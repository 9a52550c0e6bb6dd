"""What a simulated server is: its fields, Nova's status mapping and the fixed catalogue
of flavors, images and compute hosts.

Owns the data shapes and pure derivations from them; it must never know about HTTP,
identities or the order of Nova's checks.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

# nova/compute/power_state.py indices.
NOSTATE = 0
RUNNING = 1
SHUTDOWN = 4

VM_STATES = frozenset(
    {
        "active",
        "building",
        "paused",
        "suspended",
        "stopped",
        "rescued",
        "resized",
        "soft-delete",
        "deleted",
        "error",
        "shelved",
        "shelved_offloaded",
    }
)

# nova/api/openstack/common.py _STATE_MAP: vm_state -> {task_state: status}.
_STATE_MAP: Mapping[str, Mapping[str | None, str]] = {
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_pending": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        "updating_password": "PASSWORD",
        "rebuilding": "REBUILD",
        "rebuild_block_device_mapping": "REBUILD",
        "rebuild_spawning": "REBUILD",
        "migrating": "MIGRATING",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_migrated": "RESIZE",
        "resize_finish": "RESIZE",
    },
    "building": {"default": "BUILD"},
    "stopped": {
        "default": "SHUTOFF",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_migrated": "RESIZE",
        "resize_finish": "RESIZE",
        "rebuilding": "REBUILD",
        "rebuild_block_device_mapping": "REBUILD",
        "rebuild_spawning": "REBUILD",
    },
    "resized": {"default": "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {"default": "PAUSED", "migrating": "MIGRATING"},
    "suspended": {"default": "SUSPENDED"},
    "rescued": {"default": "RESCUE"},
    "error": {
        "default": "ERROR",
        "rebuilding": "REBUILD",
        "rebuild_block_device_mapping": "REBUILD",
        "rebuild_spawning": "REBUILD",
    },
    "deleted": {"default": "DELETED"},
    "soft-delete": {"default": "SOFT_DELETED"},
    "shelved": {"default": "SHELVED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
}
_UNKNOWN: Mapping[str | None, str] = {"default": "UNKNOWN"}

# The power state a server settles in for each vm_state, as Nova's in-tree fake driver
# reports it (realnova and Nova's API samples): it never reports PAUSED or SUSPENDED,
# and a rescued guest reads SHUTDOWN. Real hypervisors differ; no gate reads it.
SETTLED_POWER: Mapping[str, int] = {
    "active": RUNNING,
    "building": NOSTATE,
    "paused": RUNNING,
    "suspended": RUNNING,
    "stopped": SHUTDOWN,
    "rescued": SHUTDOWN,
    "resized": RUNNING,
    "soft-delete": SHUTDOWN,
    "error": NOSTATE,
    "shelved": SHUTDOWN,
    "shelved_offloaded": SHUTDOWN,
}


def status_from_state(vm_state: str, task_state: str | None) -> str:
    """Nova's common.status_from_state: the API status of a vm/task state pair."""
    task_map = _STATE_MAP.get(vm_state, _UNKNOWN)
    return task_map.get(task_state, task_map["default"])


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    ram: int
    vcpus: int
    disk: int
    ephemeral: int = 0
    swap: int = 0


# realnova's pre-created flavors.
FLAVORS: Mapping[str, Flavor] = {
    "1": Flavor("1", "m1.tiny", 512, 1, 1),
    "2": Flavor("2", "m1.small", 2048, 1, 20),
    "3": Flavor("3", "m1.medium", 4096, 2, 40),
}

# realnova's lab images, the stock image of Nova's Glance fixture and the image Nova's
# own API samples use, so requests copied from any of them work unchanged.
LAB_IMAGE = "c0ffee00-0000-4000-8000-000000000001"
KNOWN_IMAGES = frozenset(
    {
        LAB_IMAGE,
        "c0ffee00-0000-4000-8000-000000000002",
        "155d900f-4e14-4e4c-a73d-069cbf4541e6",
        "70a599e0-31e7-49b7-b260-868f441e862b",
    }
)

COMPUTE_HOSTS = ("compute1", "compute2")
MAX_INSTANCE_ACTIONS = 1000


def now() -> datetime.datetime:
    """Naive UTC, as Nova stores and prints its timestamps."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


@functools.lru_cache(maxsize=8192)
def isotime(moment: datetime.datetime) -> str:
    """nova.utils.isotime: seconds precision with a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=8192)
def host_id(host: str | None, project_id: str) -> str:
    """nova.utils.generate_hostid: an obfuscated per-project host id, '' without host."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


@dataclass
class Address:
    """One IP on one network, as Nova's network info cache holds it."""

    network: str
    addr: str
    version: int
    kind: str  # "fixed" or "floating"
    mac: str


@dataclass
class InstanceAction:
    """One row of GET /servers/{id}/os-instance-actions."""

    action: str
    request_id: str
    user_id: str | None
    project_id: str | None
    start_time: datetime.datetime
    updated_at: datetime.datetime
    message: str | None = None


@dataclass
class Server:
    """A server and everything a view, a gate or an effect reads or changes."""

    id: str
    name: str
    project_id: str
    user_id: str
    flavor_id: str
    image_ref: str  # "" for a volume-backed server, as Nova stores it
    vm_state: str = "active"
    task_state: str | None = None
    power_state: int = RUNNING
    launched_at: datetime.datetime | None = None
    created: datetime.datetime = field(default_factory=now)
    updated: datetime.datetime = field(default_factory=now)
    host: str | None = "compute1"
    locked_by: str | None = None  # "owner" or "admin"; Nova never shows it
    locked_reason: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    addresses: list[Address] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    key_name: str | None = None
    hostname: str = ""
    user_data: str | None = None
    admin_pass: str | None = None
    access_ipv4: str = ""
    access_ipv6: str = ""
    boot_volume_id: str | None = None
    # Set while a resize or cold migration waits for confirmResize/revertResize.
    old_flavor_id: str | None = None
    migration_pending: bool = False
    # Effects read this to pick the end state of a rebuild or revert.
    previous_vm_state: str | None = None
    previous_host: str | None = None
    instance_number: int = 0
    reservation_id: str = ""
    # Nova keeps every row; a long benchmark loop would grow without bound, so the
    # simulator keeps the newest MAX_INSTANCE_ACTIONS.
    actions: deque[InstanceAction] = field(
        default_factory=lambda: deque(maxlen=MAX_INSTANCE_ACTIONS)
    )
    # Bumped by every change of task; a pending settle timer only applies to its own.
    generation: int = 0

    @property
    def locked(self) -> bool:
        return bool(self.locked_by)

    @property
    def status(self) -> str:
        return status_from_state(self.vm_state, self.task_state)

    @property
    def volume_backed(self) -> bool:
        return not self.image_ref

    @property
    def flavor(self) -> Flavor:
        return FLAVORS[self.flavor_id]

    def touch(self) -> None:
        self.updated = now()
