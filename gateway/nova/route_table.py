"""Nova's router: every path it routes under /v2.1, and the methods it routes there.

Owns the table of Nova 34's ``ROUTE_LIST`` (nova/api/openstack/compute/routes.py) and
matching a canonical path against it as Nova's ``ProjectMapper`` does; it must never
decide anything else about a request (a test compares it with the installed Nova's router).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# (path template, methods), in ROUTE_LIST's order. ``{name}`` is one non-empty segment.
# Nova also routes every template behind ``/{project_id}`` (hex digits and dashes).
ROUTES: tuple[tuple[str, str], ...] = (
    ("/", "GET"),
    ("/versions/{id}", "GET"),
    ("/extensions", "GET"),
    ("/extensions/{id}", "GET"),
    ("/flavors", "GET POST"),
    ("/flavors/detail", "GET"),
    ("/flavors/{id}", "GET PUT DELETE"),
    ("/flavors/{id}/action", "POST"),
    ("/flavors/{flavor_id}/os-extra_specs", "GET POST"),
    ("/flavors/{flavor_id}/os-extra_specs/{id}", "GET PUT DELETE"),
    ("/flavors/{flavor_id}/os-flavor-access", "GET"),
    ("/images", "GET"),
    ("/images/detail", "GET"),
    ("/images/{id}", "GET DELETE"),
    ("/images/{image_id}/metadata", "GET POST PUT"),
    ("/images/{image_id}/metadata/{id}", "GET PUT DELETE"),
    ("/limits", "GET"),
    ("/os-agents", "GET POST"),
    ("/os-agents/{id}", "PUT DELETE"),
    ("/os-aggregates", "GET POST"),
    ("/os-aggregates/{id}", "GET PUT DELETE"),
    ("/os-aggregates/{id}/action", "POST"),
    ("/os-aggregates/{id}/images", "POST"),
    ("/os-assisted-volume-snapshots", "POST"),
    ("/os-assisted-volume-snapshots/{id}", "DELETE"),
    ("/os-availability-zone", "GET"),
    ("/os-availability-zone/detail", "GET"),
    ("/os-baremetal-nodes", "GET POST"),
    ("/os-baremetal-nodes/{id}", "GET DELETE"),
    ("/os-baremetal-nodes/{id}/action", "POST"),
    ("/os-cells", "POST GET"),
    ("/os-cells/capacities", "GET"),
    ("/os-cells/detail", "GET"),
    ("/os-cells/info", "GET"),
    ("/os-cells/sync_instances", "POST"),
    ("/os-cells/{id}", "GET PUT DELETE"),
    ("/os-cells/{id}/capacities", "GET"),
    ("/os-certificates", "POST"),
    ("/os-certificates/{id}", "GET"),
    ("/os-cloudpipe", "GET POST"),
    ("/os-cloudpipe/{id}", "PUT"),
    ("/os-console-auth-tokens/{id}", "GET"),
    ("/os-fixed-ips/{id}", "GET"),
    ("/os-fixed-ips/{id}/action", "POST"),
    ("/os-floating-ip-dns", "GET"),
    ("/os-floating-ip-dns/{id}", "PUT DELETE"),
    ("/os-floating-ip-dns/{domain_id}/entries/{id}", "GET PUT DELETE"),
    ("/os-floating-ip-pools", "GET"),
    ("/os-floating-ips", "GET POST"),
    ("/os-floating-ips/{id}", "GET DELETE"),
    ("/os-floating-ips-bulk", "GET POST"),
    ("/os-floating-ips-bulk/{id}", "GET PUT"),
    ("/os-fping", "GET"),
    ("/os-fping/{id}", "GET"),
    ("/os-hosts", "GET"),
    ("/os-hosts/{id}", "GET PUT"),
    ("/os-hosts/{id}/reboot", "GET"),
    ("/os-hosts/{id}/shutdown", "GET"),
    ("/os-hosts/{id}/startup", "GET"),
    ("/os-hypervisors", "GET"),
    ("/os-hypervisors/detail", "GET"),
    ("/os-hypervisors/statistics", "GET"),
    ("/os-hypervisors/{id}", "GET"),
    ("/os-hypervisors/{id}/search", "GET"),
    ("/os-hypervisors/{id}/servers", "GET"),
    ("/os-hypervisors/{id}/uptime", "GET"),
    ("/os-instance_usage_audit_log", "GET"),
    ("/os-instance_usage_audit_log/{id}", "GET"),
    ("/os-keypairs", "GET POST"),
    ("/os-keypairs/{id}", "GET DELETE"),
    ("/os-migrations", "GET"),
    ("/os-networks", "GET POST"),
    ("/os-networks/add", "POST"),
    ("/os-networks/{id}", "GET DELETE"),
    ("/os-networks/{id}/action", "POST"),
    ("/os-quota-class-sets/{id}", "GET PUT"),
    ("/os-quota-sets/{id}", "GET PUT DELETE"),
    ("/os-quota-sets/{id}/detail", "GET"),
    ("/os-quota-sets/{id}/defaults", "GET"),
    ("/os-security-group-default-rules", "GET POST"),
    ("/os-security-group-default-rules/{id}", "GET DELETE"),
    ("/os-security-group-rules", "POST"),
    ("/os-security-group-rules/{id}", "DELETE"),
    ("/os-security-groups", "GET POST"),
    ("/os-security-groups/{id}", "GET PUT DELETE"),
    ("/os-server-external-events", "POST"),
    ("/os-server-groups", "GET POST"),
    ("/os-server-groups/{id}", "GET DELETE"),
    ("/os-services", "GET"),
    ("/os-services/{id}", "PUT DELETE"),
    ("/os-simple-tenant-usage", "GET"),
    ("/os-simple-tenant-usage/{id}", "GET"),
    ("/os-snapshots", "GET POST"),
    ("/os-snapshots/detail", "GET"),
    ("/os-snapshots/{id}", "GET DELETE"),
    ("/os-tenant-networks", "GET POST"),
    ("/os-tenant-networks/{id}", "GET DELETE"),
    ("/os-volumes", "GET POST"),
    ("/os-volumes/detail", "GET"),
    ("/os-volumes/{id}", "GET DELETE"),
    ("/os-volumes_boot", "GET POST"),
    ("/os-volumes_boot/detail", "GET"),
    ("/os-volumes_boot/{id}", "GET PUT DELETE"),
    ("/os-volumes_boot/{id}/action", "POST"),
    ("/servers", "GET POST"),
    ("/servers/detail", "GET"),
    ("/servers/{id}", "GET PUT DELETE"),
    ("/servers/{id}/action", "POST"),
    ("/servers/{server_id}/consoles", "GET POST"),
    ("/servers/{server_id}/consoles/{id}", "GET DELETE"),
    ("/servers/{server_id}/diagnostics", "GET"),
    ("/servers/{server_id}/ips", "GET"),
    ("/servers/{server_id}/ips/{id}", "GET"),
    ("/servers/{server_id}/metadata", "GET POST PUT"),
    ("/servers/{server_id}/metadata/{id}", "GET PUT DELETE"),
    ("/servers/{server_id}/migrations", "GET"),
    ("/servers/{server_id}/migrations/{id}", "GET DELETE"),
    ("/servers/{server_id}/migrations/{id}/action", "POST"),
    ("/servers/{server_id}/os-instance-actions", "GET"),
    ("/servers/{server_id}/os-instance-actions/{id}", "GET"),
    ("/servers/{server_id}/os-interface", "GET POST"),
    ("/servers/{server_id}/os-interface/{id}", "GET DELETE"),
    ("/servers/{server_id}/os-server-password", "GET DELETE"),
    ("/servers/{server_id}/os-virtual-interfaces", "GET"),
    ("/servers/{server_id}/os-volume_attachments", "GET POST"),
    ("/servers/{server_id}/os-volume_attachments/{id}", "GET PUT DELETE"),
    ("/servers/{server_id}/remote-consoles", "POST"),
    ("/servers/{server_id}/os-security-groups", "GET"),
    ("/servers/{server_id}/shares", "GET POST"),
    ("/servers/{server_id}/shares/{id}", "GET DELETE"),
    ("/servers/{server_id}/tags", "GET PUT DELETE"),
    ("/servers/{server_id}/tags/{id}", "GET PUT DELETE"),
    ("/servers/{server_id}/topology", "GET"),
)

_PROJECT_ID = re.compile(r"[0-9a-f-]+")
_MAX_SEGMENTS = max(template.count("/") for template, _ in ROUTES)


@dataclass
class _Node:
    """One path segment of the table: literal children, one variable child, and the
    methods routed when the path ends here."""

    literals: dict[str, _Node] = field(default_factory=dict)
    variable: _Node | None = None
    methods: frozenset[str] = frozenset()


def _build(routes: Iterable[tuple[str, str]]) -> _Node:
    root = _Node()
    for template, methods in routes:
        node = root
        for segment in template.split("/")[1:]:
            if segment.startswith("{") and segment.endswith("}"):
                node.variable = node.variable or _Node()
                node = node.variable
            else:
                node = node.literals.setdefault(segment, _Node())
        node.methods |= frozenset(methods.split())
    return root


_TABLE = _build(ROUTES)


def _match(segments: list[str]) -> frozenset[str]:
    """The union of the methods of every template that matches ``segments`` whole."""
    found: frozenset[str] = frozenset()
    # Depth-first over (node, position); each step consumes one segment, so at most
    # 2 ** _MAX_SEGMENTS visits even if every node had both kinds of child.
    stack = [(_TABLE, 0)]
    while stack:
        node, position = stack.pop()
        if position == len(segments):
            found |= node.methods
            continue
        segment = segments[position]
        literal = node.literals.get(segment)
        if literal is not None:
            stack.append((literal, position + 1))
        if node.variable is not None and segment:
            stack.append((node.variable, position + 1))
    return found


def served_methods(path: str) -> frozenset[str]:
    """The methods Nova's router routes for ``path`` (what follows ``/v2.1``, starting
    with ``/``): empty when no route matches, as Nova's router then answers 404."""
    segments = path.split("/")[1:]
    if len(segments) > _MAX_SEGMENTS + 1:
        return frozenset()
    methods = _match(segments)
    if len(segments) > 1 and _PROJECT_ID.fullmatch(segments[0]):
        methods |= _match(segments[1:])
    return methods
