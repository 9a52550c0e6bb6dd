"""Request schemas of the two non-action bodies the simulator accepts: server create and
update, reduced to what a client of this API relies on.

Owns these schemas and their microversion ranges; it must never hold action schemas
(action_schemas.py does) nor validation logic (validation.py).
"""

from __future__ import annotations

import functools
from typing import Any

from novasim import parameter_types as types
from novasim.microversion import Version
from novasim.validation import Checker

Schema = dict[str, Any]

_NETWORKS: Schema = {
    "oneOf": [
        {"type": "string", "enum": ["none", "auto"]},
        {"type": "array", "items": {"type": "object"}},
    ]
}


@functools.lru_cache(maxsize=128)
def create_checker(version: Version) -> Checker:
    """POST /servers: Nova's required fields and types; other fields pass unvalidated."""
    properties: Schema = {
        "name": types.name(),
        # parameter_types.image_id_or_empty_string
        "imageRef": {"oneOf": [types.uuid(), types.string(max_length=0)]},
        "flavorRef": types.flavor_ref(),
        "adminPass": types.string(),
        "metadata": types.metadata(),
        "networks": _NETWORKS,
    }
    required = ["name", "flavorRef"]
    if version >= Version(2, 19):
        properties["description"] = types.description()
    if version >= Version(2, 37):
        required.append("networks")  # 2.37 made networks mandatory
    server = {"type": "object", "properties": properties, "required": required}
    return Checker({"type": "object", "properties": {"server": server}, "required": ["server"]})


@functools.lru_cache(maxsize=128)
def update_checker(version: Version) -> Checker:
    """PUT /servers/{id}: Nova's update schemas (additional properties refused)."""
    properties: Schema = {
        "name": types.name(),
        "OS-DCF:diskConfig": types.disk_config(),
        "accessIPv4": types.string(format="ipv4"),
        "accessIPv6": types.string(format="ipv6"),
    }
    if version >= Version(2, 19):
        properties["description"] = types.description()
    if version >= Version(2, 90):
        properties["hostname"] = types.hostname() if version < Version(2, 94) else types.fqdn()
    server = {"type": "object", "properties": properties, "additionalProperties": False}
    return Checker(
        {
            "type": "object",
            "properties": {"server": server},
            "required": ["server"],
            "additionalProperties": False,
        }
    )
