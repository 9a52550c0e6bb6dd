"""Nova's request-body JSON Schemas for the 41 server actions, as plain dict data.

Owns a faithful copy of nova/api/validation/parameter_types.py and
nova/api/openstack/compute/schemas/*.py (values AND key order, which decides the
first error Nova reports); it must never hold validation logic or differ from Nova.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Iterator
from typing import Any

Schema = dict[str, Any]
# One ``@validation.schema(schema, min, max)`` decorator: versions as Nova writes them,
# ``None`` for an open upper bound. Ranges Nova starts at the legacy "2.0" start at 2.1.
SchemaRow = tuple[str, str | None, Schema]


# --- parameter_types: printable-character ranges ------------------------------------
# Nova builds these regexes by walking U+0000..U+FFFE through unicodedata at import;
# we do the same so the patterns (and the messages quoting them) are byte-identical.


def _is_printable(char: str) -> bool:
    category = unicodedata.category(char)
    return not category.startswith("C") and (not category.startswith("Z") or category == "Zs")


def _valid_char(char: str, ws: bool, invert: bool) -> bool:
    if ws:
        result = _is_printable(char)
    else:
        result = _is_printable(char) and unicodedata.category(char) != "Zs"
    return not result if invert else result


def _all_chars() -> Iterator[str]:
    for code in range(0xFFFF):  # Nova's range: U+FFFF itself is never included
        yield chr(code)


def build_regex_range(ws: bool = True, invert: bool = False) -> str:
    """Nova's ``_build_regex_range``: a character-class body of x-y ranges."""
    regex = ""
    in_range = False
    last = ""
    last_added = ""
    char = ""
    for char in _all_chars():
        if _valid_char(char, ws, invert):
            if not in_range:
                regex += re.escape(char)
                last_added = char
            in_range = True
        else:
            if in_range and last != last_added:
                regex += "-" + re.escape(last)
            in_range = False
        last = char
    if in_range:
        regex += "-" + re.escape(char)
    return regex


_PRINTABLE = build_regex_range()
_NOT_PRINTABLE_OR_SPACE = build_regex_range(ws=False, invert=True)

# format 'name': printable, no leading/trailing whitespace (empty allowed: minLength decides).
_EDGE = _NOT_PRINTABLE_OR_SPACE
VALID_NAME_REGEX = f"^(?![{_EDGE}])[{_PRINTABLE}]*(?<![{_EDGE}])$"
VALID_NAME_REASON = "printable characters. Can not start or end with whitespace."
VALID_DESCRIPTION_REGEX = f"^[{_PRINTABLE}]*$"


# --- parameter_types: the types the action schemas use ------------------------------

BOOLEAN: Schema = {
    "type": ["boolean", "string"],
    "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on",
             "YES", "Yes", "yes",
             False, "False", "FALSE", "false", "0", "OFF", "Off", "off",
             "NO", "No", "no"],
}  # fmt: skip

NAME_OR_NONE: Schema = {
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 255},
        {"type": "null"},
    ]
}

NON_NEGATIVE_INTEGER: Schema = {
    "type": ["integer", "string"],
    "pattern": "^[0-9]*$",
    "minimum": 0,
    "minLength": 1,
}

HOSTNAME: Schema = {
    "type": "string",
    "pattern": "^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$",
    "minLength": 2,
    "maxLength": 63,
}

FQDN: Schema = {
    "type": "string",
    "pattern": "^[a-zA-Z0-9-._]*$",
    "minLength": 1,
    "maxLength": 255,
}

NAME: Schema = {
    "type": "string",
    "format": "name",
    "minLength": 1,
    "maxLength": 255,
}

DESCRIPTION: Schema = {
    "type": ["string", "null"],
    "pattern": VALID_DESCRIPTION_REGEX,
    "minLength": 0,
    "maxLength": 255,
}

IMAGE_ID: Schema = {"type": "string", "format": "uuid"}

ADMIN_PASSWORD: Schema = {"type": "string"}  # Nova sets no length or pattern limit

FLAVOR_REF: Schema = {"type": ["string", "integer"], "minLength": 1}

METADATA: Schema = {
    "type": "object",
    "patternProperties": {
        "^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string", "maxLength": 255},
    },
    "additionalProperties": False,
}

IP_ADDRESS: Schema = {
    "type": "string",
    "oneOf": [
        {"format": "ipv4"},
        {"format": "ipv6"},
    ],
}

DISK_CONFIG: Schema = {"type": "string", "enum": ["AUTO", "MANUAL"]}

ACCESS_IPV4: Schema = {"type": "string", "format": "ipv4"}

ACCESS_IPV6: Schema = {"type": "string", "format": "ipv6"}

PERSONALITY: Schema = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "contents": {"type": "string", "format": "base64"},
        },
        "additionalProperties": False,
    },
}

TRUSTED_CERTS: Schema = {
    "type": ["array", "null"],
    "minItems": 1,
    "maxItems": 50,
    "uniqueItems": True,
    "items": {"type": "string", "minLength": 1},
}


# --- helpers mirroring Nova's "copy.deepcopy then edit" style ---------------------------


def _value_any(key: str) -> Schema:
    """``{key: {}}``: Nova's schema for actions whose value it never validates."""
    return {
        "type": "object",
        "properties": {key: {}},
        "required": [key],
        "additionalProperties": False,
    }


def _inner(schema: Schema, key: str) -> Schema:
    inner: Schema = schema["properties"][key]
    return inner


def _derive(base: Schema) -> Schema:
    return copy.deepcopy(base)


# --- schemas/servers.py -------------------------------------------------------------

REBUILD: Schema = {
    "type": "object",
    "properties": {
        "rebuild": {
            "type": "object",
            "properties": {
                "name": NAME,
                "imageRef": IMAGE_ID,
                "adminPass": ADMIN_PASSWORD,
                "metadata": METADATA,
                "preserve_ephemeral": BOOLEAN,
                "OS-DCF:diskConfig": DISK_CONFIG,
                "accessIPv4": ACCESS_IPV4,
                "accessIPv6": ACCESS_IPV6,
                "personality": PERSONALITY,
            },
            "required": ["imageRef"],
            "additionalProperties": False,
        },
    },
    "required": ["rebuild"],
    "additionalProperties": False,
}

REBUILD_V219 = _derive(REBUILD)
_inner(REBUILD_V219, "rebuild")["properties"]["description"] = DESCRIPTION

REBUILD_V254 = _derive(REBUILD_V219)
_inner(REBUILD_V254, "rebuild")["properties"]["key_name"] = NAME_OR_NONE

# 2.57: personality removed; user_data added (nullable so it can be reset).
REBUILD_V257 = _derive(REBUILD_V254)
_inner(REBUILD_V257, "rebuild")["properties"].pop("personality")
_inner(REBUILD_V257, "rebuild")["properties"]["user_data"] = {
    "type": ["string", "null"],
    "format": "base64",
    "maxLength": 65535,
}

REBUILD_V263 = _derive(REBUILD_V257)
_inner(REBUILD_V263, "rebuild")["properties"]["trusted_image_certificates"] = TRUSTED_CERTS

REBUILD_V290 = _derive(REBUILD_V263)
_inner(REBUILD_V290, "rebuild")["properties"]["hostname"] = HOSTNAME

# 2.94 replaces the value in place: the key keeps its position (and so the error order).
REBUILD_V294 = _derive(REBUILD_V290)
_inner(REBUILD_V294, "rebuild")["properties"]["hostname"] = FQDN

REBUILD_RANGES: tuple[SchemaRow, ...] = (
    ("2.1", "2.18", REBUILD),
    ("2.19", "2.53", REBUILD_V219),
    ("2.54", "2.56", REBUILD_V254),
    ("2.57", "2.62", REBUILD_V257),
    ("2.63", "2.89", REBUILD_V263),
    ("2.90", "2.93", REBUILD_V290),
    ("2.94", None, REBUILD_V294),
)

RESIZE: Schema = {
    "type": "object",
    "properties": {
        "resize": {
            "type": "object",
            "properties": {
                "flavorRef": FLAVOR_REF,
                "OS-DCF:diskConfig": DISK_CONFIG,
            },
            "required": ["flavorRef"],
            "additionalProperties": False,
        },
    },
    "required": ["resize"],
    "additionalProperties": False,
}

CREATE_IMAGE: Schema = {
    "type": "object",
    "properties": {
        "createImage": {
            "type": "object",
            "properties": {
                "name": NAME,
                "metadata": METADATA,
            },
            "required": ["name"],
            "additionalProperties": False,
        }
    },
    "required": ["createImage"],
    "additionalProperties": False,
}

CONFIRM_RESIZE = _value_any("confirmResize")
REVERT_RESIZE = _value_any("revertResize")

REBOOT: Schema = {
    "type": "object",
    "properties": {
        "reboot": {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"],
                }
            },
            "required": ["type"],
            "additionalProperties": False,
        }
    },
    "required": ["reboot"],
    "additionalProperties": False,
}

START_SERVER = _value_any("os-start")
STOP_SERVER = _value_any("os-stop")

TRIGGER_CRASH_DUMP: Schema = {
    "type": "object",
    "properties": {"trigger_crash_dump": {"type": "null"}},
    "required": ["trigger_crash_dump"],
    "additionalProperties": False,
}


# --- schemas/admin_actions.py, admin_password.py, console_output.py ------------------

RESET_NETWORK: Schema = {}  # removed action: Nova validates against an empty schema
INJECT_NETWORK_INFO = _value_any("injectNetworkInfo")

RESET_STATE: Schema = {
    "type": "object",
    "properties": {
        "os-resetState": {
            "type": "object",
            "properties": {
                "state": {"type": "string", "enum": ["active", "error"]},
            },
            "required": ["state"],
            "additionalProperties": False,
        },
    },
    "required": ["os-resetState"],
    "additionalProperties": False,
}

CHANGE_PASSWORD: Schema = {
    "type": "object",
    "properties": {
        "changePassword": {
            "type": "object",
            "properties": {"adminPass": ADMIN_PASSWORD},
            "required": ["adminPass"],
            "additionalProperties": False,
        },
    },
    "required": ["changePassword"],
    "additionalProperties": False,
}

GET_CONSOLE_OUTPUT: Schema = {
    "type": "object",
    "properties": {
        "os-getConsoleOutput": {
            "type": "object",
            "properties": {
                "length": {
                    # -1 and null both mean "unlimited"; numeric strings are compared
                    # numerically by Nova's minimum override.
                    "type": ["integer", "string", "null"],
                    "pattern": "^-?[0-9]+$",
                    "minimum": -1,
                },
            },
            "additionalProperties": False,
        },
    },
    "required": ["os-getConsoleOutput"],
    "additionalProperties": False,
}


# --- schemas/create_backup.py, deferred_delete.py, evacuate.py -----------------------

CREATE_BACKUP: Schema = {
    "type": "object",
    "properties": {
        "createBackup": {
            "type": "object",
            "properties": {
                "name": NAME,
                "backup_type": {"type": "string"},
                "rotation": NON_NEGATIVE_INTEGER,
                "metadata": METADATA,
            },
            "required": ["name", "backup_type", "rotation"],
            "additionalProperties": False,
        },
    },
    "required": ["createBackup"],
    "additionalProperties": False,
}

RESTORE = _value_any("restore")
FORCE_DELETE = _value_any("forceDelete")

EVACUATE: Schema = {
    "type": "object",
    "properties": {
        "evacuate": {
            "type": "object",
            "properties": {
                "host": FQDN,
                "onSharedStorage": BOOLEAN,
                "adminPass": ADMIN_PASSWORD,
            },
            "required": ["onSharedStorage"],
            "additionalProperties": False,
        },
    },
    "required": ["evacuate"],
    "additionalProperties": False,
}

EVACUATE_V214 = _derive(EVACUATE)
del _inner(EVACUATE_V214, "evacuate")["properties"]["onSharedStorage"]
del _inner(EVACUATE_V214, "evacuate")["required"]

EVACUATE_V229 = _derive(EVACUATE_V214)
_inner(EVACUATE_V229, "evacuate")["properties"]["force"] = BOOLEAN

EVACUATE_V268 = _derive(EVACUATE_V214)
EVACUATE_V295 = _derive(EVACUATE_V268)

EVACUATE_RANGES: tuple[SchemaRow, ...] = (
    ("2.1", "2.13", EVACUATE),  # Nova writes "2.0"
    ("2.14", "2.28", EVACUATE_V214),
    ("2.29", "2.67", EVACUATE_V229),
    ("2.68", "2.94", EVACUATE_V268),
    ("2.95", None, EVACUATE_V295),
)


# --- schemas/floating_ips.py, lock_server.py, migrate_server.py, multinic.py --------

ADD_FLOATING_IP: Schema = {
    "type": "object",
    "properties": {
        "addFloatingIp": {
            "type": "object",
            "properties": {
                "address": IP_ADDRESS,
                "fixed_address": IP_ADDRESS,
            },
            "required": ["address"],
            "additionalProperties": False,
        }
    },
    "required": ["addFloatingIp"],
    "additionalProperties": False,
}

REMOVE_FLOATING_IP: Schema = {
    "type": "object",
    "properties": {
        "removeFloatingIp": {
            "type": "object",
            "properties": {"address": IP_ADDRESS},
            "required": ["address"],
            "additionalProperties": False,
        }
    },
    "required": ["removeFloatingIp"],
    "additionalProperties": False,
}

LOCK = _value_any("lock")

LOCK_V273: Schema = {
    "type": "object",
    "properties": {
        "lock": {
            "type": ["object", "null"],
            "properties": {
                "locked_reason": {"type": "string", "minLength": 1, "maxLength": 255},
            },
            "additionalProperties": False,
        },
    },
    "required": ["lock"],
    "additionalProperties": False,
}

UNLOCK = _value_any("unlock")  # registered for 2.1-2.72 only

_MIGRATION_HOST = _derive(FQDN)
_MIGRATION_HOST["type"] = ["string", "null"]

MIGRATE_V256: Schema = {
    "type": "object",
    "properties": {
        "migrate": {
            "type": ["object", "null"],
            "properties": {"host": _MIGRATION_HOST},
            "additionalProperties": False,
        },
    },
    "required": ["migrate"],
    "additionalProperties": False,
}

MIGRATE_LIVE: Schema = {
    "type": "object",
    "properties": {
        "os-migrateLive": {
            "type": "object",
            "properties": {
                "block_migration": BOOLEAN,
                "disk_over_commit": BOOLEAN,
                "host": _MIGRATION_HOST,
            },
            "required": ["block_migration", "disk_over_commit", "host"],
            "additionalProperties": False,
        },
    },
    "required": ["os-migrateLive"],
    "additionalProperties": False,
}

_BLOCK_MIGRATION_V225 = _derive(BOOLEAN)
_BLOCK_MIGRATION_V225["enum"].append("auto")

MIGRATE_LIVE_V225 = _derive(MIGRATE_LIVE)
_LIVE_V225 = _inner(MIGRATE_LIVE_V225, "os-migrateLive")
del _LIVE_V225["properties"]["disk_over_commit"]
_LIVE_V225["properties"]["block_migration"] = _BLOCK_MIGRATION_V225
_LIVE_V225["required"] = ["block_migration", "host"]

MIGRATE_LIVE_V230 = _derive(MIGRATE_LIVE_V225)
_inner(MIGRATE_LIVE_V230, "os-migrateLive")["properties"]["force"] = BOOLEAN

MIGRATE_LIVE_V268 = _derive(MIGRATE_LIVE_V225)

MIGRATE_LIVE_RANGES: tuple[SchemaRow, ...] = (
    ("2.1", "2.24", MIGRATE_LIVE),  # Nova writes "2.0"
    ("2.25", "2.29", MIGRATE_LIVE_V225),
    ("2.30", "2.67", MIGRATE_LIVE_V230),
    ("2.68", None, MIGRATE_LIVE_V268),
)

ADD_FIXED_IP: Schema = {
    "type": "object",
    "properties": {
        "addFixedIp": {
            "type": "object",
            "properties": {
                # maxLength: the 'uuid' column of Nova's networks table.
                "networkId": {"type": ["string", "number"], "minLength": 1, "maxLength": 36},
            },
            "required": ["networkId"],
            "additionalProperties": False,
        },
    },
    "required": ["addFixedIp"],
    "additionalProperties": False,
}

REMOVE_FIXED_IP: Schema = {
    "type": "object",
    "properties": {
        "removeFixedIp": {
            "type": "object",
            "properties": {"address": IP_ADDRESS},
            "required": ["address"],
            "additionalProperties": False,
        },
    },
    "required": ["removeFixedIp"],
    "additionalProperties": False,
}


# --- schemas/pause_server.py, remote_consoles.py, rescue.py -------------------------

PAUSE = _value_any("pause")
UNPAUSE = _value_any("unpause")


def _console(key: str, types: list[str]) -> Schema:
    return {
        "type": "object",
        "properties": {
            key: {
                "type": "object",
                "properties": {"type": {"type": "string", "enum": types}},
                "required": ["type"],
                "additionalProperties": False,
            },
        },
        "required": [key],
        "additionalProperties": False,
    }


# xvpvnc passes the schema and is refused lower down the stack, as in Nova.
GET_VNC_CONSOLE = _console("os-getVNCConsole", ["novnc", "xvpvnc"])
GET_SPICE_CONSOLE = _console("os-getSPICEConsole", ["spice-html5"])
GET_RDP_CONSOLE: Schema = {}  # removed action: Nova validates against an empty schema
GET_SERIAL_CONSOLE = _console("os-getSerialConsole", ["serial"])

RESCUE: Schema = {
    "type": "object",
    "properties": {
        "rescue": {
            "type": ["object", "null"],
            "properties": {
                "adminPass": ADMIN_PASSWORD,
                "rescue_image_ref": IMAGE_ID,
            },
            "additionalProperties": False,
        },
    },
    "required": ["rescue"],
    "additionalProperties": False,
}

UNRESCUE = _value_any("unrescue")


# --- schemas/security_groups.py, shelve.py, suspend_server.py -----------------------


def _security_group_action(key: str) -> Schema:
    return {
        "type": "object",
        "properties": {
            key: {
                "type": "object",
                "properties": {"name": {"type": "string", "minLength": 1}},
                "required": ["name"],
                "additionalProperties": False,
            }
        },
        "required": [key],
        # True in Nova too; moot, since the dispatcher allows exactly one key.
        "additionalProperties": True,
    }


ADD_SECURITY_GROUP = _security_group_action("addSecurityGroup")
REMOVE_SECURITY_GROUP = _security_group_action("removeSecurityGroup")

SHELVE = _value_any("shelve")
SHELVE_OFFLOAD = _value_any("shelveOffload")
UNSHELVE = _value_any("unshelve")

UNSHELVE_V277: Schema = {
    "type": "object",
    "properties": {
        "unshelve": {
            "type": ["object", "null"],
            "properties": {"availability_zone": NAME},
            # {"unshelve": {}} is refused here (but accepted again from 2.91).
            "required": ["availability_zone"],
            "additionalProperties": False,
        },
    },
    "required": ["unshelve"],
    "additionalProperties": False,
}

UNSHELVE_V291: Schema = {
    "type": "object",
    "properties": {
        "unshelve": {
            "type": ["object", "null"],
            "properties": {
                "availability_zone": {"type": ["string", "null"]},
                "host": {"type": "string"},
            },
            "additionalProperties": False,
        }
    },
    "required": ["unshelve"],
    "additionalProperties": False,
}

UNSHELVE_RANGES: tuple[SchemaRow, ...] = (
    ("2.1", "2.76", UNSHELVE),
    ("2.77", "2.90", UNSHELVE_V277),
    ("2.91", None, UNSHELVE_V291),
)

SUSPEND = _value_any("suspend")
RESUME = _value_any("resume")

# Kept for callers written against the earlier table: the schema that accepts anything.
ANY_VALUE: Schema = {}
