"""Request schemas of the two non-action bodies the simulator accepts: server create and
update, reduced to what a client of this API relies on.

Owns these schemas and their microversion ranges; it must never hold action schemas
(gateway.nova.schemas does, through the catalogue) nor validation logic.
"""

from __future__ import annotations

from typing import Any

from gateway.nova import schemas as nova
from gateway.nova.types import Version

Schema = dict[str, Any]

_NETWORKS: Schema = {
    "oneOf": [
        {"type": "string", "enum": ["none", "auto"]},
        {"type": "array", "items": {"type": "object"}},
    ]
}


def create_schema(version: Version) -> Schema:
    """POST /servers: Nova's required fields and types; other fields pass unvalidated."""
    properties: Schema = {
        "name": nova.NAME,
        # parameter_types.image_id_or_empty_string
        "imageRef": {
            "oneOf": [{"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]
        },
        "flavorRef": nova.FLAVOR_REF,
        "adminPass": nova.ADMIN_PASSWORD,
        "metadata": nova.METADATA,
        "networks": _NETWORKS,
    }
    required = ["name", "flavorRef"]
    if version >= Version(2, 19):
        properties["description"] = nova.DESCRIPTION
    if version >= Version(2, 37):
        required.append("networks")  # 2.37 made networks mandatory
    return {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": properties, "required": required}
        },
        "required": ["server"],
    }


def update_schema(version: Version) -> Schema:
    """PUT /servers/{id}: Nova's update schemas (additional properties refused)."""
    properties: Schema = {
        "name": nova.NAME,
        "OS-DCF:diskConfig": nova.DISK_CONFIG,
        "accessIPv4": nova.ACCESS_IPV4,
        "accessIPv6": nova.ACCESS_IPV6,
    }
    if version >= Version(2, 19):
        properties["description"] = nova.DESCRIPTION
    if version >= Version(2, 90):
        properties["hostname"] = nova.HOSTNAME if version < Version(2, 94) else nova.FQDN
    return {
        "type": "object",
        "properties": {
            "server": {"type": "object", "properties": properties, "additionalProperties": False}
        },
        "required": ["server"],
        "additionalProperties": False,
    }
