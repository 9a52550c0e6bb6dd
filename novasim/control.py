"""The test-only control plane under /_sim/: read and clear the request recorder, create
servers in any state, inspect them, and stream blobs. No token is needed.

Owns these endpoints and their JSON shapes; it must never be reachable under /v2.1 nor
pretend to be Nova (answers here are plain JSON, not Nova faults).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from aiohttp import web

from novasim.model import COMPUTE_HOSTS, FLAVORS, SETTLED_POWER, VM_STATES, Server, now
from novasim.sim import Sim

BLOB_CHUNK = 64 * 1024
_SERVER_FIELDS = frozenset(
    {
        "id",
        "name",
        "project",
        "project_id",
        "user",
        "user_id",
        "vm_state",
        "task_state",
        "power_state",
        "launched_at",
        "locked_by",
        "locked_reason",
        "image",
        "flavor",
        "host",
        "networks",
        "metadata",
        "description",
        "migration_pending",
    }
)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def server_state(server: Server) -> dict[str, Any]:
    """Everything the simulator knows about a server, locked_by included."""
    return {
        "id": server.id,
        "name": server.name,
        "project_id": server.project_id,
        "user_id": server.user_id,
        "status": server.status,
        "vm_state": server.vm_state,
        "task_state": server.task_state,
        "power_state": server.power_state,
        "launched_at": server.launched_at.isoformat() if server.launched_at else None,
        "locked_by": server.locked_by,
        "locked_reason": server.locked_reason,
        "image": server.image_ref,
        "flavor": server.flavor_id,
        "host": server.host,
        "addresses": [a.addr for a in server.addresses],
        "security_groups": list(server.security_groups),
        "migration_pending": server.migration_pending,
    }


async def handle(request: web.Request, sim: Sim) -> web.StreamResponse:
    path, method = request.path, request.method
    if path == "/_sim/requests":
        if method == "GET":
            return web.json_response({"requests": [r.to_json() for r in sim.recorder.records()]})
        if method == "DELETE":
            sim.recorder.clear()
            return web.Response(status=204)
    elif path == "/_sim/servers" and method == "POST":
        return await _create_server(request, sim)
    elif path.startswith("/_sim/servers/") and method == "GET":
        server = sim.store.servers.get(path[len("/_sim/servers/") :])
        if server is None:
            return _error(404, "no such server")
        return web.json_response({"server": server_state(server)})
    elif path == "/_sim/seed" and method == "GET":
        return web.json_response({"servers": [list(pair) for pair in sim.seeded_ids()]})
    elif path == "/_sim/blob" and method == "GET":
        return await _blob(request)
    return _error(404, f"no control endpoint {method} {path}")


async def _create_server(request: web.Request, sim: Sim) -> web.Response:
    try:
        spec = json.loads(await request.read() or b"{}")
    except ValueError:
        return _error(400, "body must be JSON")
    if not isinstance(spec, dict):
        return _error(400, "body must be a JSON object")
    unknown = set(spec) - _SERVER_FIELDS
    if unknown:
        return _error(400, f"unknown fields: {sorted(unknown)}")
    try:
        server = build_server(sim, spec)
    except (ValueError, TypeError) as exc:
        return _error(400, str(exc))
    sim.store.add(server)
    return web.json_response({"server": server_state(server)}, status=201)


def build_server(sim: Sim, spec: dict[str, Any]) -> Server:
    project = spec.get("project_id", spec.get("project", "p1"))
    user = spec.get("user_id", spec.get("user", "sim"))
    vm_state = spec.get("vm_state", "active")
    if vm_state not in VM_STATES:
        raise ValueError(f"vm_state must be one of {sorted(VM_STATES)}")
    flavor = str(spec.get("flavor", "1"))
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {sorted(FLAVORS)}")
    locked_by = spec.get("locked_by")
    if locked_by not in (None, "owner", "admin"):
        raise ValueError("locked_by must be null, 'owner' or 'admin'")
    server = sim.store.new_server(
        name=str(spec.get("name", "sim-server")),
        project_id=str(project),
        user_id=str(user),
        flavor_id=flavor,
        image_ref=str(spec.get("image", "c0ffee00-0000-4000-8000-000000000001")),
        with_network=bool(spec.get("networks", True)),
        server_id=spec.get("id"),
    )
    server.vm_state = vm_state
    server.task_state = spec.get("task_state")
    server.power_state = int(spec.get("power_state", SETTLED_POWER.get(vm_state, 0)))
    server.launched_at = _launched_at(spec, vm_state)
    default_host = None if vm_state in ("building", "shelved_offloaded") else COMPUTE_HOSTS[0]
    server.host = spec.get("host", default_host)
    server.locked_by = locked_by
    server.locked_reason = spec.get("locked_reason")
    server.metadata = dict(spec.get("metadata") or {})
    server.description = spec.get("description")
    # A server put straight into VERIFY_RESIZE has a migration to confirm or revert.
    server.migration_pending = bool(spec.get("migration_pending", vm_state == "resized"))
    if server.migration_pending:
        server.old_flavor_id = server.flavor_id
        server.previous_vm_state = "active"
        server.previous_host = server.host
    return server


def _launched_at(spec: dict[str, Any], vm_state: str) -> datetime.datetime | None:
    if "launched_at" not in spec:
        return None if vm_state == "building" else now()
    value = spec["launched_at"]
    if value is None:
        return None
    return datetime.datetime.fromisoformat(str(value).rstrip("Z"))


async def _blob(request: web.Request) -> web.StreamResponse:
    try:
        size = int(request.query.get("bytes", "0"))
    except ValueError:
        return _error(400, "bytes must be an integer")
    if size < 0:
        return _error(400, "bytes must be >= 0")
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/octet-stream"})
    response.content_length = size
    await response.prepare(request)
    chunk = bytes(range(256)) * (BLOB_CHUNK // 256)
    remaining = size
    while remaining > 0:
        piece = chunk[: min(remaining, BLOB_CHUNK)]
        await response.write(piece)
        remaining -= len(piece)
    await response.write_eof()
    return response
