"""The request schema Nova registers for each server action at each microversion
(``@validation.schema`` on the controllers under nova/api/openstack/compute/).

Owns which schema applies where, written as the version steps at which a body changes;
it must never validate (validation.py does) nor hold an action's other gates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from novasim import parameter_types as types
from novasim.microversion import Version, parse
from novasim.validation import Checker

Schema = dict[str, Any]


@dataclass(frozen=True)
class Registered:
    """One ``@validation.schema(schema, since, until)``; ``until`` None is open-ended."""

    since: Version
    until: Version | None
    checker: Checker

    def covers(self, version: Version) -> bool:
        return self.since <= version and (self.until is None or version <= self.until)


# --- how Nova writes a body -----------------------------------------------------------------


def action_body(key: str, value: Schema, *, more_keys: bool = False) -> Schema:
    """The whole body: exactly ``{key: value}`` (security groups say more keys may come)."""
    return {
        "type": "object",
        "properties": {key: value},
        "required": [key],
        "additionalProperties": more_keys,
    }


def fields(properties: Schema, *, required: tuple[str, ...] = (), nullable: bool = False) -> Schema:
    """An action's object value: these properties and no others."""
    value: Schema = {"type": ["object", "null"] if nullable else "object", "properties": properties}
    if required:
        value["required"] = list(required)
    value["additionalProperties"] = False
    return value


def typed(*choices: str) -> Schema:
    """``{"type": <one of choices>}``: the reboot and console bodies."""
    return fields({"type": {"type": "string", "enum": list(choices)}}, required=("type",))


# --- bodies that change with the version ----------------------------------------------------


def _rebuild(at: Version) -> Schema:
    props: Schema = {
        "name": types.name(),
        "imageRef": types.uuid(),
        "adminPass": types.string(),
        "metadata": types.metadata(),
        "preserve_ephemeral": types.boolean(),
        "OS-DCF:diskConfig": types.disk_config(),
        "accessIPv4": types.string(format="ipv4"),
        "accessIPv6": types.string(format="ipv6"),
    }
    if at < Version(2, 57):
        props["personality"] = types.personality()
    if at >= Version(2, 19):
        props["description"] = types.description()
    if at >= Version(2, 54):
        props["key_name"] = types.name_or_none()
    if at >= Version(2, 57):
        props["user_data"] = {"type": ["string", "null"], "format": "base64", "maxLength": 65535}
    if at >= Version(2, 63):
        props["trusted_image_certificates"] = types.trusted_certs()
    if at >= Version(2, 90):
        props["hostname"] = types.hostname() if at < Version(2, 94) else types.fqdn()
    return action_body("rebuild", fields(props, required=("imageRef",)))


def _evacuate(at: Version) -> Schema:
    props: Schema = {"host": types.fqdn()}
    if at < Version(2, 14):
        props["onSharedStorage"] = types.boolean()
    props["adminPass"] = types.string()
    if Version(2, 29) <= at < Version(2, 68):
        props["force"] = types.boolean()
    required = ("onSharedStorage",) if at < Version(2, 14) else ()
    return action_body("evacuate", fields(props, required=required))


def _migrate_live(at: Version) -> Schema:
    if at < Version(2, 25):
        props: Schema = {
            "block_migration": types.boolean(),
            "disk_over_commit": types.boolean(),
            "host": types.nullable_fqdn(),
        }
        return action_body("os-migrateLive", fields(props, required=tuple(props)))
    auto = types.boolean()
    auto["enum"].append("auto")
    props = {"block_migration": auto, "host": types.nullable_fqdn()}
    if Version(2, 30) <= at < Version(2, 68):
        props["force"] = types.boolean()
    return action_body("os-migrateLive", fields(props, required=("block_migration", "host")))


def _unshelve(at: Version) -> Schema:
    if at < Version(2, 77):
        return action_body("unshelve", {})
    if at < Version(2, 91):
        zone = {"availability_zone": types.name()}
        return action_body("unshelve", fields(zone, required=tuple(zone), nullable=True))
    zone_or_host = {"availability_zone": {"type": ["string", "null"]}, "host": types.string()}
    return action_body("unshelve", fields(zone_or_host, nullable=True))


def _lock(at: Version) -> Schema:
    if at < Version(2, 73):
        return action_body("lock", {})
    return action_body("lock", fields({"locked_reason": types.string(1, 255)}, nullable=True))


Registrations = tuple[Registered, ...]


def _stepped(
    build: Callable[[Version], Schema], *steps: str, last: str | None = None
) -> Registrations:
    """One registration per step, each lasting until the next (the last until ``last``)."""
    starts = [parse_known(step) for step in steps]
    ends = [start.previous() for start in starts[1:]] + [parse_known(last) if last else None]
    return tuple(
        Registered(start, end, Checker(build(start)))
        for start, end in zip(starts, ends, strict=True)
    )


def parse_known(text: str) -> Version:
    version = parse(text)
    assert version is not None, text
    return version


def _always(schema: Schema, since: str = "2.1") -> Registrations:
    return (Registered(parse_known(since), None, Checker(schema)),)


def _nothing_checked(key: str) -> Registrations:
    """``{key: {}}``: Nova's schema for actions whose value it never reads."""
    return _always(action_body(key, {}))


def _security_group(key: str) -> Registrations:
    value = fields({"name": types.string(1)}, required=("name",))
    return _always(action_body(key, value, more_keys=True))


def _console(key: str, *kinds: str) -> Registrations:
    return _always(action_body(key, typed(*kinds)))


_REMOVED: Schema = {}  # resetNetwork, os-getRDPConsole: an empty schema passes anything
_IP = types.ip_address

SCHEMAS: Mapping[str, Registrations] = {
    "confirmResize": _nothing_checked("confirmResize"),
    "revertResize": _nothing_checked("revertResize"),
    "reboot": _always(action_body("reboot", typed("HARD", "Hard", "hard", "SOFT", "Soft", "soft"))),
    "resize": _always(
        action_body(
            "resize",
            fields(
                {"flavorRef": types.flavor_ref(), "OS-DCF:diskConfig": types.disk_config()},
                required=("flavorRef",),
            ),
        )
    ),
    "rebuild": _stepped(_rebuild, "2.1", "2.19", "2.54", "2.57", "2.63", "2.90", "2.94"),
    "createImage": _always(
        action_body(
            "createImage",
            fields({"name": types.name(), "metadata": types.metadata()}, required=("name",)),
        )
    ),
    "os-start": _nothing_checked("os-start"),
    "os-stop": _nothing_checked("os-stop"),
    "trigger_crash_dump": _always(action_body("trigger_crash_dump", {"type": "null"}), "2.17"),
    "resetNetwork": _always(_REMOVED),
    "injectNetworkInfo": _nothing_checked("injectNetworkInfo"),
    "os-resetState": _always(
        action_body(
            "os-resetState",
            fields({"state": {"type": "string", "enum": ["active", "error"]}}, required=("state",)),
        )
    ),
    "changePassword": _always(
        action_body(
            "changePassword", fields({"adminPass": types.string()}, required=("adminPass",))
        )
    ),
    "os-getConsoleOutput": _always(
        action_body(
            "os-getConsoleOutput",
            fields(
                {
                    "length": {
                        "type": ["integer", "string", "null"],
                        "pattern": "^-?[0-9]+$",
                        "minimum": -1,
                    }
                }
            ),
        )
    ),
    "createBackup": _always(
        action_body(
            "createBackup",
            fields(
                {
                    "name": types.name(),
                    "backup_type": types.string(),
                    "rotation": types.non_negative_integer(),
                    "metadata": types.metadata(),
                },
                required=("name", "backup_type", "rotation"),
            ),
        )
    ),
    "restore": _nothing_checked("restore"),
    "forceDelete": _nothing_checked("forceDelete"),
    "evacuate": _stepped(_evacuate, "2.1", "2.14", "2.29", "2.68", "2.95"),
    "addFloatingIp": _always(
        action_body(
            "addFloatingIp",
            fields({"address": _IP(), "fixed_address": _IP()}, required=("address",)),
        )
    ),
    "removeFloatingIp": _always(
        action_body("removeFloatingIp", fields({"address": _IP()}, required=("address",)))
    ),
    "lock": _stepped(_lock, "2.1", "2.73"),
    "unlock": _stepped(lambda at: action_body("unlock", {}), "2.1", last="2.72"),
    "migrate": _always(
        action_body("migrate", fields({"host": types.nullable_fqdn()}, nullable=True)), "2.56"
    ),
    "os-migrateLive": _stepped(_migrate_live, "2.1", "2.25", "2.30", "2.68"),
    "addFixedIp": _always(
        action_body(
            "addFixedIp",
            fields(
                # maxLength: the uuid column of Nova's networks table.
                {"networkId": {"type": ["string", "number"], "minLength": 1, "maxLength": 36}},
                required=("networkId",),
            ),
        )
    ),
    "removeFixedIp": _always(
        action_body("removeFixedIp", fields({"address": _IP()}, required=("address",)))
    ),
    "pause": _nothing_checked("pause"),
    "unpause": _nothing_checked("unpause"),
    # xvpvnc still passes the schema; Nova refuses it further down.
    "os-getVNCConsole": _console("os-getVNCConsole", "novnc", "xvpvnc"),
    "os-getSPICEConsole": _console("os-getSPICEConsole", "spice-html5"),
    "os-getSerialConsole": _console("os-getSerialConsole", "serial"),
    "os-getRDPConsole": _always(_REMOVED),
    "rescue": _always(
        action_body(
            "rescue",
            fields({"adminPass": types.string(), "rescue_image_ref": types.uuid()}, nullable=True),
        )
    ),
    "unrescue": _nothing_checked("unrescue"),
    "addSecurityGroup": _security_group("addSecurityGroup"),
    "removeSecurityGroup": _security_group("removeSecurityGroup"),
    "shelve": _nothing_checked("shelve"),
    "shelveOffload": _nothing_checked("shelveOffload"),
    "unshelve": _stepped(_unshelve, "2.1", "2.77", "2.91"),
    "suspend": _nothing_checked("suspend"),
    "resume": _nothing_checked("resume"),
}


def registered_at(key: str, version: Version) -> Registered | None:
    """Nova's Schemas lookup: the registration covering ``version``; None where Nova
    registers no schema (the value then goes unchecked)."""
    return next((r for r in SCHEMAS[key] if r.covers(version)), None)
