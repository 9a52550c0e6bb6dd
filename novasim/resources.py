"""The non-action resources: servers (list, show, create, update, delete), instance
actions, flavors and limits, each with Nova's lookup -> policy -> lock order.

Owns what these requests change and which payload they answer; it must never build
views itself (views does) nor run a server action (actions does).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from novasim import policy, schemas, views
from novasim.call import ApiCall
from novasim.faults import Fault
from novasim.lifecycle import Transition
from novasim.microversion import Version
from novasim.model import (
    FLAVORS,
    KNOWN_IMAGES,
    VM_STATES,
    InstanceAction,
    Server,
    now,
    status_from_state,
)
from novasim.store import generate_password

SERVERS = "os_compute_api:servers:"
MEMBER = "rule:project_member_or_admin"
READER = "rule:project_reader_or_admin"
ADMIN = "rule:context_is_admin"
_MAX_LIMIT = 1000  # [api] max_limit
_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


class Reply:
    """A successful answer: status, JSON payload (None = empty) and extra headers."""

    def __init__(
        self, status: int, payload: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self.payload = payload
        self.headers = headers or {}


# --- servers ---------------------------------------------------------------------------


def _all_tenants(call: ApiCall) -> bool:
    if "all_tenants" not in call.query:
        return False
    value = call.query["all_tenants"]
    if not value:
        return True  # a bare ?all_tenants counts as true
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Fault(
        400,
        f"Unrecognized value '{value}', acceptable values are: '0', '1', 'f', 'false', "
        "'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'",
    )


def _int_param(call: ApiCall, name: str) -> int | None:
    """A non-negative integer query parameter, refused as Nova's query schema does."""
    if name not in call.query:
        return None
    value = call.query[name]
    if not value.isdigit() or not value.isascii():
        raise Fault(
            400,
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' does not match '^[0-9]*$'",
        )
    return int(value)


def _status_filter(call: ApiCall) -> frozenset[str] | None:
    statuses = call.query.getall("status", [])
    if not statuses:
        return None
    known = {status_from_state(vm, None) for vm in VM_STATES} | _TASK_STATUSES
    wanted = frozenset(s.upper() for s in statuses) & known
    if not wanted and call.version >= Version(2, 38):
        raise Fault(400, "Invalid status value")
    return wanted


_TASK_STATUSES = frozenset(
    {"REBOOT", "HARD_REBOOT", "PASSWORD", "REBUILD", "MIGRATING", "RESIZE", "REVERT_RESIZE"}
)


def list_servers(call: ApiCall, detail: bool) -> Reply:
    call.check_url_project()
    caller = call.caller
    rule = "detail" if detail else "index"
    policy.enforce(SERVERS + rule, READER, caller, caller.project_id)
    everyone = _all_tenants(call)
    if everyone:
        policy.enforce(SERVERS + rule + ":get_all_tenants", ADMIN, caller, caller.project_id)
    servers = list(call.sim.store.listing(None if everyone else caller.project_id))
    statuses = _status_filter(call)
    if statuses is not None:
        servers = [s for s in servers if s.status in statuses]
    if "name" in call.query:
        pattern = re.compile(call.query["name"])
        servers = [s for s in servers if pattern.search(s.name)]
    servers = _page(call, servers)
    collection = "servers/detail" if detail else "servers"
    if detail:
        payload: dict[str, Any] = {"servers": views.detail_view(call.view, servers)}
    else:
        payload = {"servers": [views.index_view(call.view, s) for s in servers]}
    limit = min(_int_param(call, "limit") or _MAX_LIMIT, _MAX_LIMIT)
    if servers and len(servers) == limit:
        params = dict(sorted(call.query.items()))
        params["marker"] = servers[-1].id
        href = f"{call.view.host_url}/v2.1{call.view.project_prefix}/{collection}"
        payload["servers_links"] = [{"rel": "next", "href": f"{href}?{urlencode(params)}"}]
    return Reply(200, payload)


def _page(call: ApiCall, servers: list[Server]) -> list[Server]:
    limit = min(_int_param(call, "limit") or _MAX_LIMIT, _MAX_LIMIT)
    marker = call.query.get("marker")
    if marker is not None:
        ids = [s.id for s in servers]
        if marker not in ids:
            raise Fault(400, f"marker [{marker}] not found")
        servers = servers[ids.index(marker) + 1 :]
    return servers[:limit]


def show_server(call: ApiCall, server_id: str) -> Reply:
    call.check_url_project()
    server = call.server(server_id)
    policy.enforce(SERVERS + "show", READER, call.caller, server.project_id)
    view = views.server_view(call.view, server, views.show_options(call.view))
    return Reply(200, {"server": view})


def create_server(call: ApiCall) -> Reply:
    body = call.decode_body()
    call.check_url_project()
    caller = call.caller
    policy.enforce(SERVERS + "create", MEMBER, caller, caller.project_id)
    schemas.create_checker(call.version).check(body)
    request = body["server"]
    flavor_id = str(request["flavorRef"]).rstrip("/").rsplit("/", 1)[-1]
    if flavor_id not in FLAVORS:
        raise Fault(400, f"Flavor {flavor_id} could not be found.")
    image_ref = _image_from_request(call, request)
    networks = request.get("networks", "auto")
    store = call.sim.store
    assert caller.project_id is not None  # the create rule refused non-project tokens
    server = store.new_server(
        name=request["name"],
        project_id=caller.project_id,
        user_id=caller.user_id,
        flavor_id=flavor_id,
        image_ref=image_ref,
        with_network=networks != "none",
    )
    server.vm_state, server.task_state, server.power_state = "building", "scheduling", 0
    server.host = None
    server.launched_at = None
    server.metadata = dict(request.get("metadata") or {})
    server.key_name = request.get("key_name")
    server.user_data = request.get("user_data")
    # Nova defaults the description to the name; from 2.19 the request sets it (or null).
    server.description = request["name"]
    if call.version >= Version(2, 19):
        server.description = request.get("description")
    password = request.get("adminPass") or generate_password()
    server.admin_pass = password
    store.add(server)
    moment = now()
    server.actions.append(
        InstanceAction("create", call.request_id, caller.user_id, caller.project_id, moment, moment)
    )
    call.sim.notifier.acting(server, caller, call.request_id, None, call.global_request_id)
    call.sim.lifecycle.begin(server, Transition("scheduling", "active", finish=call.sim.activate))
    groups = request.get("security_groups")
    if isinstance(groups, list):
        names = [g["name"] for g in groups if isinstance(g, dict) and g.get("name")]
        if server.addresses:
            server.security_groups = list(dict.fromkeys(names)) or ["default"]
    payload = views.create_view(call.view, server, groups, password)
    location = call.view.self_link("servers", server.id)
    return Reply(202, payload, {"Location": location})


def _image_from_request(call: ApiCall, request: dict[str, Any]) -> str:
    """Nova's _image_from_req_data plus the image lookup: '' for a volume-backed boot."""
    image_href = request.get("imageRef")
    if not image_href:
        bdms = request.get("block_device_mapping_v2") or request.get("block_device_mapping")
        if bdms:
            return ""
        raise Fault(400, "Missing imageRef attribute")
    image_id = str(image_href).rstrip("/").rsplit("/", 1)[-1]
    if image_id not in KNOWN_IMAGES and image_id not in call.sim.store.images:
        raise Fault(400, "Can not find requested image")
    return image_id


def update_server(call: ApiCall, server_id: str) -> Reply:
    body = call.decode_body()
    call.check_url_project()
    server = call.server(server_id)
    policy.enforce(SERVERS + "update", MEMBER, call.caller, server.project_id)
    schemas.update_checker(call.version).check(body)
    request = body["server"]
    # Nova's update is not lock-checked: a locked server can still be renamed.
    if "name" in request:
        server.name = request["name"]
    if "description" in request:
        server.description = request["description"]
    if "hostname" in request:
        server.hostname = request["hostname"]
    if "accessIPv4" in request:
        server.access_ipv4 = request["accessIPv4"]
    if "accessIPv6" in request:
        server.access_ipv6 = request["accessIPv6"]
    server.touch()
    options = views.update_options(call.view, keypair_from=Version(2, 75))
    return Reply(200, {"server": views.server_view(call.view, server, options)})


def delete_server(call: ApiCall, server_id: str) -> Reply:
    call.check_url_project()
    server = call.server(server_id)
    policy.enforce(SERVERS + "delete", MEMBER, call.caller, server.project_id)
    if server.locked and not call.caller.is_admin:
        raise Fault(409, f"Instance {server.id} is locked")
    call.sim.notifier.acting(server, call.caller, call.request_id, "delete", call.global_request_id)
    call.sim.lifecycle.begin(server, Transition("deleting", None, delete=True))
    return Reply(204)


# --- instance actions ------------------------------------------------------------------

_ACTIONS = "os_compute_api:os-instance-actions:"


def list_instance_actions(call: ApiCall, server_id: str) -> Reply:
    call.check_url_project()
    server = call.server(server_id)
    policy.enforce(_ACTIONS + "list", READER, call.caller, server.project_id)
    rows = [
        views.instance_action_view(call.view, server.id, action)
        for action in reversed(server.actions)
    ]
    return Reply(200, {"instanceActions": rows})


def show_instance_action(call: ApiCall, server_id: str, request_id: str) -> Reply:
    call.check_url_project()
    server = call.server(server_id)
    policy.enforce(_ACTIONS + "show", READER, call.caller, server.project_id)
    action = next((a for a in server.actions if a.request_id == request_id), None)
    if action is None:
        raise Fault(404, f"Action {request_id} not found")
    view = views.instance_action_view(call.view, server.id, action)
    admin = policy.allows(ADMIN, call.caller, server.project_id)
    if admin or call.version >= Version(2, 51):
        view["events"] = []  # the simulator runs no compute-side events
    return Reply(200, {"instanceAction": view})


# --- flavors and limits ----------------------------------------------------------------


def list_flavors(call: ApiCall, detail: bool) -> Reply:
    call.check_url_project()
    build = views.flavor_show if detail else views.flavor_basic
    return Reply(200, {"flavors": [build(call.view, flavor) for flavor in FLAVORS.values()]})


def show_flavor(call: ApiCall, flavor_id: str) -> Reply:
    call.check_url_project()
    flavor = FLAVORS.get(flavor_id)
    if flavor is None:
        raise Fault(404, f"Flavor {flavor_id} could not be found.")
    return Reply(200, {"flavor": views.flavor_show(call.view, flavor)})


def show_limits(call: ApiCall) -> Reply:
    call.check_url_project()
    caller = call.caller
    policy.enforce("os_compute_api:limits", "@", caller, None)
    project = caller.project_id
    if "tenant_id" in call.query:
        project = call.query["tenant_id"]
        policy.enforce("os_compute_api:limits:other_project", ADMIN, caller, None)
    return Reply(200, views.limits_view(call.view, call.sim.store, project))
