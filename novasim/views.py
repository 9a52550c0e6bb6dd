"""Response bodies shaped like Nova's view builders, per microversion: servers, flavors,
limits, instance actions and the version documents.

Owns field names, their order and the microversion each appears at (nova/api/openstack/
compute/views/*.py); it must never change state nor decide whether a caller may see a
server (only which policy-gated fields it sees).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from novasim import policy
from novasim.identity import Caller
from novasim.microversion import NEWEST, OLDEST, Version
from novasim.model import FLAVORS, Flavor, InstanceAction, Server, host_id, isotime
from novasim.store import Store

_V = Version
_PROGRESS_STATUSES = frozenset(
    {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}
)
EXTENDED_ATTRIBUTES = "os_compute_api:os-extended-server-attributes"
FLAVOR_EXTRA_SPECS = "os_compute_api:servers:show:flavor-extra-specs"
HOST_STATUS = "os_compute_api:servers:show:host_status"
ADMIN = "rule:context_is_admin"
READER = "rule:project_reader_or_admin"


@dataclass(frozen=True)
class ViewContext:
    """What every view needs from the request: version, caller and the link bases."""

    version: Version
    caller: Caller
    host_url: str  # scheme://host, as webob's host_url
    project_prefix: str  # "/<project_id>" when Nova would put it in links, else ""

    def supports(self, minimum: Version) -> bool:
        return self.version >= minimum

    def self_link(self, collection: str, identifier: str) -> str:
        return f"{self.host_url}/v2.1{self.project_prefix}/{collection}/{identifier}"

    def bookmark(self, collection: str, identifier: str) -> str:
        return f"{self.host_url}{self.project_prefix}/{collection}/{identifier}"

    def links(self, collection: str, identifier: str) -> list[dict[str, str]]:
        return [
            {"rel": "self", "href": self.self_link(collection, identifier)},
            {"rel": "bookmark", "href": self.bookmark(collection, identifier)},
        ]


def project_prefix(caller: Caller, url: str) -> str:
    """nova ViewBuilder._get_project_id: a substring test on the whole request URL."""
    if caller.project_id and caller.project_id in url:
        return "/" + caller.project_id
    return ""


def _timestamp(moment: datetime.datetime | None) -> str | None:
    # Nova returns str(datetime) through jsonutils, i.e. isoformat with microseconds.
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class ShowOptions:
    """The arguments of Nova's ViewBuilder.show; None means "ask policy"."""

    extend_address: bool = True
    show_extra_specs: bool | None = None
    show_az: bool = True
    show_config_drive: bool = True
    show_extended_attr: bool | None = None
    show_host_status: bool | None = None
    show_keypair: bool = True
    show_srv_usg: bool = True
    show_sec_grp: bool = True
    show_extended_status: bool = True
    show_extended_volumes: bool = True
    show_server_groups: bool = False
    show_user_data: bool = True


def show_options(ctx: ViewContext) -> ShowOptions:
    """GET /servers/{id}."""
    return ShowOptions(show_server_groups=ctx.supports(_V(2, 71)))


def update_options(ctx: ViewContext, keypair_from: Version) -> ShowOptions:
    """PUT /servers/{id} and rebuild: the full attribute set only from 2.75."""
    full = ctx.supports(_V(2, 75))
    return ShowOptions(
        extend_address=full,
        show_az=full,
        show_config_drive=full,
        show_extended_attr=None if full else False,
        show_host_status=None if full else False,
        show_keypair=ctx.supports(keypair_from),
        show_srv_usg=full,
        show_sec_grp=full,
        show_extended_status=full,
        show_extended_volumes=full,
        show_server_groups=ctx.supports(_V(2, 71)),
        show_user_data=False,
    )


def _addresses(server: Server, extend: bool) -> dict[str, list[dict[str, Any]]]:
    if server.vm_state == "building":
        return {}  # Nova hides addresses while building
    networks: dict[str, list[dict[str, Any]]] = {}
    # Fixed addresses first, then floating ones, per network (Nova's ips view).
    ordered = [a for a in server.addresses if a.kind == "fixed"] + [
        a for a in server.addresses if a.kind != "fixed"
    ]
    for address in ordered:
        entry: dict[str, Any] = {"version": address.version, "addr": address.addr}
        if extend:
            entry["OS-EXT-IPS:type"] = address.kind
            entry["OS-EXT-IPS-MAC:mac_addr"] = address.mac
        networks.setdefault(address.network, []).append(entry)
    return networks


def flavor_embedded(flavor: Flavor, with_extra_specs: bool) -> dict[str, Any]:
    embedded: dict[str, Any] = {
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "original_name": flavor.name,
    }
    if with_extra_specs:
        embedded["extra_specs"] = {}
    return embedded


def _image(ctx: ViewContext, server: Server) -> Any:
    if not server.image_ref:
        return ""  # volume-backed
    image: dict[str, Any] = {
        "id": server.image_ref,
        "links": [{"rel": "bookmark", "href": ctx.bookmark("images", server.image_ref)}],
    }
    if ctx.supports(_V(2, 98)):
        image["properties"] = {"architecture": "x86_64"}
    return image


def server_view(ctx: ViewContext, server: Server, options: ShowOptions) -> dict[str, Any]:
    """Nova's ViewBuilder.show for one server (the inner dict)."""
    caller = ctx.caller
    show_extra_specs = options.show_extra_specs
    if show_extra_specs is None:
        show_extra_specs = ctx.supports(_V(2, 47)) and policy.allows(
            READER, caller, server.project_id
        )
    view: dict[str, Any] = {
        "accessIPv4": server.access_ipv4,
        "accessIPv6": server.access_ipv6,
        "addresses": _addresses(server, options.extend_address),
        "created": isotime(server.created),
        "flavor": (
            flavor_embedded(server.flavor, show_extra_specs)
            if ctx.supports(_V(2, 47))
            else {
                "id": server.flavor_id,
                "links": [{"rel": "bookmark", "href": ctx.bookmark("flavors", server.flavor_id)}],
            }
        ),
        "hostId": host_id(server.host, server.project_id),
        "id": server.id,
        "image": _image(ctx, server),
        "links": ctx.links("servers", server.id),
        "metadata": dict(server.metadata),
        "name": server.name,
        "status": server.status,
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "updated": isotime(server.updated),
        "OS-DCF:diskConfig": "MANUAL",
    }
    if view["status"] in _PROGRESS_STATUSES:
        view["progress"] = 0
    if options.show_az:
        # Without a host Nova falls back to the requested zone: none was requested.
        view["OS-EXT-AZ:availability_zone"] = "nova" if server.host else ""
    if options.show_config_drive:
        view["config_drive"] = ""
    if options.show_keypair:
        view["key_name"] = server.key_name
    if options.show_srv_usg:
        view["OS-SRV-USG:launched_at"] = _timestamp(server.launched_at)
        view["OS-SRV-USG:terminated_at"] = None
    if options.show_sec_grp and server.security_groups:
        view["security_groups"] = [{"name": name} for name in server.security_groups]
    show_extended_attr = options.show_extended_attr
    if show_extended_attr is None:
        show_extended_attr = policy.allows(ADMIN, caller, server.project_id)
    if show_extended_attr:
        view.update(_extended_attributes(ctx, server, options.show_user_data))
    if options.show_extended_status:
        view["OS-EXT-STS:task_state"] = server.task_state
        view["OS-EXT-STS:vm_state"] = server.vm_state
        view["OS-EXT-STS:power_state"] = server.power_state
    if options.show_extended_volumes:
        volumes: list[dict[str, Any]] = []
        if server.boot_volume_id:
            volume: dict[str, Any] = {"id": server.boot_volume_id}
            if ctx.supports(_V(2, 3)):
                volume["delete_on_termination"] = False
            volumes.append(volume)
        view["os-extended-volumes:volumes_attached"] = volumes
    if ctx.supports(_V(2, 9)):
        view["locked"] = server.locked
    if ctx.supports(_V(2, 16)):
        show_host_status = options.show_host_status
        if show_host_status is None:
            show_host_status = policy.allows(ADMIN, caller, server.project_id)
        if show_host_status:
            view["host_status"] = "UP" if server.host else ""
    if ctx.supports(_V(2, 19)):
        view["description"] = server.description
    if ctx.supports(_V(2, 26)):
        view["tags"] = []
    if ctx.supports(_V(2, 63)):
        view["trusted_image_certificates"] = None
    if options.show_server_groups:
        view["server_groups"] = []
    if ctx.supports(_V(2, 73)):
        view["locked_reason"] = server.locked_reason
    if ctx.supports(_V(2, 90)) and not show_extended_attr:
        view["OS-EXT-SRV-ATTR:hostname"] = server.hostname
    if options.show_az and ctx.supports(_V(2, 96)):
        view["pinned_availability_zone"] = None
    if ctx.supports(_V(2, 100)):
        view["scheduler_hints"] = {}
    return view


def _extended_attributes(ctx: ViewContext, server: Server, with_user_data: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "OS-EXT-SRV-ATTR:host": server.host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{server.instance_number:08x}",
        "OS-EXT-SRV-ATTR:hypervisor_hostname": server.host,
    }
    if ctx.supports(_V(2, 3)):
        attributes.update(
            {
                "OS-EXT-SRV-ATTR:hostname": server.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:launch_index": 0,
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:reservation_id": server.reservation_id,
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/sda",
            }
        )
        if with_user_data:
            attributes["OS-EXT-SRV-ATTR:user_data"] = server.user_data
    return attributes


def detail_view(ctx: ViewContext, servers: list[Server]) -> list[dict[str, Any]]:
    """GET /servers/detail: policy decided once for the caller's own project."""
    caller = ctx.caller
    options = ShowOptions(
        show_extra_specs=ctx.supports(_V(2, 47))
        and policy.allows(READER, caller, caller.project_id),
        show_extended_attr=policy.allows(ADMIN, caller, caller.project_id),
        show_host_status=False,
        show_sec_grp=False,
    )
    with_host_status = ctx.supports(_V(2, 16)) and policy.allows(ADMIN, caller, caller.project_id)
    views = []
    for server in servers:
        view = server_view(ctx, server, options)
        if with_host_status:
            view["host_status"] = "UP" if server.host else ""
        if server.security_groups:
            view["security_groups"] = [{"name": name} for name in server.security_groups]
        views.append(view)
    return views


def index_view(ctx: ViewContext, server: Server) -> dict[str, Any]:
    return {"id": server.id, "name": server.name, "links": ctx.links("servers", server.id)}


def create_view(
    ctx: ViewContext, server: Server, requested_groups: Any, admin_pass: str
) -> dict[str, Any]:
    """ViewBuilder.create plus the adminPass Nova adds (enable_instance_password); the
    security groups are echoed from the request, defaulting to 'default'."""
    return {
        "server": {
            "id": server.id,
            "links": ctx.links("servers", server.id),
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": requested_groups
            if requested_groups is not None
            else [{"name": "default"}],
            "adminPass": admin_pass,
        }
    }


# --- flavors ---------------------------------------------------------------------------


def flavor_basic(ctx: ViewContext, flavor: Flavor) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": ctx.links("flavors", flavor.id),
    }
    if ctx.supports(_V(2, 55)):
        view["description"] = None
    return view


def flavor_show(ctx: ViewContext, flavor: Flavor) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "swap": flavor.swap or "",
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
        "OS-FLV-DISABLED:disabled": False,
        "vcpus": flavor.vcpus,
        "os-flavor-access:is_public": True,
        "rxtx_factor": 1.0,
        "links": ctx.links("flavors", flavor.id),
    }
    if ctx.supports(_V(2, 55)):
        view["description"] = None
    if ctx.supports(_V(2, 61)) and policy.allows(READER, ctx.caller, ctx.caller.project_id):
        view["extra_specs"] = {}
    if ctx.supports(_V(2, 75)):
        view["swap"] = flavor.swap or 0
    if ctx.supports(_V(2, 102)):
        del view["OS-FLV-DISABLED:disabled"]
        del view["rxtx_factor"]
    return view


# --- limits ----------------------------------------------------------------------------

# Nova's default quotas, in the order Nova's quota engine lists them.
_QUOTAS: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cores", ("maxTotalCores",), 20),
    ("injected_files", ("maxPersonality",), 5),
    ("injected_file_content_bytes", ("maxPersonalitySize",), 10240),
    ("instances", ("maxTotalInstances",), 10),
    ("key_pairs", ("maxTotalKeypairs",), 100),
    ("metadata_items", ("maxServerMeta", "maxImageMeta"), 128),
    ("ram", ("maxTotalRAMSize",), 51200),
    ("server_groups", ("maxServerGroups",), 10),
    ("server_group_members", ("maxServerGroupMembers",), 10),
    ("floating_ips", ("maxTotalFloatingIps",), -1),
    ("security_groups", ("maxSecurityGroups",), -1),
    ("security_group_rules", ("maxSecurityGroupRules",), -1),
)
_NETWORK_QUOTAS = frozenset({"floating_ips", "security_groups", "security_group_rules"})
_PERSONALITY_QUOTAS = frozenset({"injected_files", "injected_file_content_bytes"})


def limits_view(ctx: ViewContext, store: Store, project_id: str | None) -> dict[str, Any]:
    filtered: frozenset[str] = frozenset()
    if ctx.supports(_V(2, 57)):
        filtered = _NETWORK_QUOTAS | _PERSONALITY_QUOTAS
    elif ctx.supports(_V(2, 36)):
        filtered = _NETWORK_QUOTAS
    absolute: dict[str, int] = {}
    for quota, names, value in _QUOTAS:
        if quota in filtered:
            continue
        for name in names:
            if name == "maxImageMeta" and ctx.supports(_V(2, 39)):
                continue
            absolute[name] = value
    servers = list(store.listing(project_id)) if project_id else []
    used = {
        "totalRAMUsed": ("ram", sum(FLAVORS[s.flavor_id].ram for s in servers)),
        "totalCoresUsed": ("cores", sum(FLAVORS[s.flavor_id].vcpus for s in servers)),
        "totalInstancesUsed": ("instances", len(servers)),
        "totalFloatingIpsUsed": ("floating_ips", 0),
        "totalSecurityGroupsUsed": ("security_groups", 0),
        "totalServerGroupsUsed": ("server_groups", 0),
    }
    for name, (quota, value) in used.items():
        if quota not in filtered:
            absolute[name] = value
    return {"limits": {"rate": [], "absolute": absolute}}


# --- instance actions ------------------------------------------------------------------


def instance_action_view(
    ctx: ViewContext, server_id: str, action: InstanceAction
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "action": action.action,
        "instance_uuid": server_id,
        "request_id": action.request_id,
        "user_id": action.user_id,
        "project_id": action.project_id,
        "start_time": _timestamp(action.start_time),
        "message": action.message,
    }
    if ctx.supports(_V(2, 58)):
        view["updated_at"] = _timestamp(action.updated_at)
    return view


# --- version documents -----------------------------------------------------------------

_V20 = {
    "id": "v2.0",
    "status": "DEPRECATED",
    "version": "",
    "min_version": "",
    "updated": "2025-07-04T12:00:00Z",
}
_V21 = {
    "id": "v2.1",
    "status": "CURRENT",
    "version": str(NEWEST),
    "min_version": str(OLDEST),
    "updated": "2013-07-23T11:33:21Z",
}
_MEDIA = {
    "v2.0": "application/vnd.openstack.compute+json;version=2",
    "v2.1": "application/vnd.openstack.compute+json;version=2.1",
}
_DESCRIBED_BY = {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}


def versions_document(host_url: str) -> dict[str, Any]:
    """GET /: every API version with its self link."""
    versions = []
    for doc, path in ((_V20, "v2"), (_V21, "v2.1")):
        versions.append({**doc, "links": [{"rel": "self", "href": f"{host_url}/{path}/"}]})
    return {"versions": versions}


def version_document(host_url: str, legacy: bool = False) -> dict[str, Any]:
    """GET /v2.1/ (or /v2/ when ``legacy``)."""
    doc, path = (_V20, "v2") if legacy else (_V21, "v2.1")
    return {
        "version": {
            **doc,
            "links": [{"rel": "self", "href": f"{host_url}/{path}/"}, dict(_DESCRIBED_BY)],
            "media-types": [{"base": "application/json", "type": _MEDIA[doc["id"]]}],
        }
    }


def choices_document(host_url: str, path: str) -> dict[str, Any]:
    """Nova's 300 Multiple Choices for any other path outside the API roots."""
    choices = []
    for doc, root in ((_V20, "v2"), (_V21, "v2.1")):
        choices.append(
            {
                "id": doc["id"],
                "status": doc["status"],
                "links": [{"rel": "self", "href": f"{host_url}/{root}{path}"}],
                "media-types": [{"base": "application/json", "type": _MEDIA[doc["id"]]}],
            }
        )
    return {"choices": choices}
