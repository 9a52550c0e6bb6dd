"""The API status Nova shows for a vm_state and task_state (``common.status_from_state``).

Owns Nova's mapping (nova/api/openstack/common.py ``_STATE_MAP``); it must never hold any
rule about which state an action needs (the catalogue does).
"""

from __future__ import annotations

from collections.abc import Mapping

_REBUILD = {"rebuilding": "REBUILD", "rebuild_block_device_mapping": "REBUILD"}
_REBUILD |= {"rebuild_spawning": "REBUILD"}
_RESIZE = {key: "RESIZE" for key in ("resize_prep", "resize_migrating", "resize_migrated")}
_RESIZE |= {"resize_finish": "RESIZE"}

STATE_MAP: Mapping[str, Mapping[str, str]] = {
    "active": {
        "default": "ACTIVE",
        "rebooting": "REBOOT",
        "reboot_pending": "REBOOT",
        "reboot_started": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        "reboot_started_hard": "HARD_REBOOT",
        "updating_password": "PASSWORD",
        **_REBUILD,
        "migrating": "MIGRATING",
        **_RESIZE,
    },
    "building": {"default": "BUILD"},
    "stopped": {"default": "SHUTOFF", **_RESIZE, **_REBUILD},
    "resized": {"default": "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {"default": "PAUSED", "migrating": "MIGRATING"},
    "suspended": {"default": "SUSPENDED"},
    "rescued": {"default": "RESCUE"},
    "error": {"default": "ERROR", **_REBUILD},
    "deleted": {"default": "DELETED"},
    "soft-delete": {"default": "SOFT_DELETED"},
    "shelved": {"default": "SHELVED"},
    "shelved_offloaded": {"default": "SHELVED_OFFLOADED"},
}
_UNKNOWN: Mapping[str, str] = {"default": "UNKNOWN"}


def status_from_state(vm_state: str | None, task_state: str | None) -> str:
    """What ``GET /servers/{id}`` shows as ``status`` for these states."""
    task_map = STATE_MAP.get(vm_state or "", _UNKNOWN)
    return task_map.get(task_state or "default", task_map["default"])
