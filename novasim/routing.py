"""Which resource a method and path under /v2.1 name, as Nova's router matches them
(every route also under ``/{project_id}``, project ids being ``[0-9a-f-]+``).

Owns path parsing; it must never authenticate, negotiate a version or answer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class Resource(enum.Enum):
    SERVER_LIST = "GET /servers"
    SERVER_DETAIL = "GET /servers/detail"
    SERVER_CREATE = "POST /servers"
    SERVER_SHOW = "GET /servers/{id}"
    SERVER_UPDATE = "PUT /servers/{id}"
    SERVER_DELETE = "DELETE /servers/{id}"
    SERVER_ACTION = "POST /servers/{id}/action"
    INSTANCE_ACTIONS = "GET /servers/{id}/os-instance-actions"
    INSTANCE_ACTION = "GET /servers/{id}/os-instance-actions/{request_id}"
    FLAVOR_LIST = "GET /flavors"
    FLAVOR_DETAIL = "GET /flavors/detail"
    FLAVOR_SHOW = "GET /flavors/{id}"
    LIMITS = "GET /limits"


@dataclass(frozen=True)
class Match:
    resource: Resource
    params: tuple[str, ...]
    url_project: str | None


_PROJECT_ID = re.compile(r"[0-9a-f\-]+")
# Collection names come first in a project-less path and are never hex, so a first
# segment that is not one of them is tried as a project id.
_COLLECTIONS = frozenset({"servers", "flavors", "limits"})

_FIXED: dict[tuple[str, tuple[str, ...]], Resource] = {
    ("GET", ("servers",)): Resource.SERVER_LIST,
    ("POST", ("servers",)): Resource.SERVER_CREATE,
    ("GET", ("servers", "detail")): Resource.SERVER_DETAIL,
    ("GET", ("flavors",)): Resource.FLAVOR_LIST,
    ("GET", ("flavors", "detail")): Resource.FLAVOR_DETAIL,
    ("GET", ("limits",)): Resource.LIMITS,
}
_BY_ID: dict[tuple[str, str, int], Resource] = {
    ("GET", "servers", 2): Resource.SERVER_SHOW,
    ("PUT", "servers", 2): Resource.SERVER_UPDATE,
    ("DELETE", "servers", 2): Resource.SERVER_DELETE,
    ("GET", "flavors", 2): Resource.FLAVOR_SHOW,
}
_SUB: dict[tuple[str, str], Resource] = {
    ("POST", "action"): Resource.SERVER_ACTION,
    ("GET", "os-instance-actions"): Resource.INSTANCE_ACTIONS,
}


def match(method: str, api_path: str) -> Match | None:
    """The route for ``api_path`` (the part after ``/v2.1``), or None (webob 404)."""
    parts = tuple(api_path.split("/")[1:])
    project: str | None = None
    if parts and parts[0] not in _COLLECTIONS and _PROJECT_ID.fullmatch(parts[0]):
        project, parts = parts[0], parts[1:]
    if not parts or "" in parts:
        return None
    fixed = _FIXED.get((method, parts))
    if fixed is not None:
        return Match(fixed, (), project)
    if len(parts) == 2:
        by_id = _BY_ID.get((method, parts[0], 2))
        return Match(by_id, (parts[1],), project) if by_id is not None else None
    if parts[0] != "servers":
        return None
    if len(parts) == 3:
        sub = _SUB.get((method, parts[2]))
        return Match(sub, (parts[1],), project) if sub is not None else None
    if len(parts) == 4 and method == "GET" and parts[2] == "os-instance-actions":
        return Match(Resource.INSTANCE_ACTION, (parts[1], parts[3]), project)
    return None
