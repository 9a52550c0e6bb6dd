"""Nova's registered policy defaults for the rules the gateway enforces, as data.

Owns the names, check strings, scope types, descriptions and operations of those rules
(equal to what Nova registers): the one place a default check string is written, which the
catalogue reads. It must never import Nova, the catalogue or the gateway's own rules
(gateway.policy.gateway_rules), nor hold decision logic.
"""

from __future__ import annotations

from oslo_policy.policy import DeprecatedRule, DocumentedRuleDefault, Operation, RuleDefault

# Nova's aliases (nova/policies/base.py); rules refer to these names, never to roles.
ADMIN = "rule:context_is_admin"
PROJECT_MANAGER_OR_ADMIN = "rule:project_manager_or_admin"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
RULE_NOBODY = "!"
RULE_ADMIN_OR_OWNER = "rule:admin_or_owner"

# Kept verbatim: oslo.policy prints them in its deprecation warnings and in the sample.
_SRBAC_REASON = """
Nova API policies are introducing new default roles with scope_type
capabilities. Old policies are deprecated and silently going to be ignored
in nova 23.0.0 release.
"""
_MIGRATE_LIVE_REASON = """\
Nova introduces one more policy to live migration API. The original policy is
not deprecated and used to allow live migration without requesting a specific
host. A new policy is added to control the live migration requesting a
specific host. If you have overridden the original policy in your deployment,
you must also add the new policy to keep the same permissions for live
migration to a specific host.
"""
_RESCUE_REASON = """
Rescue/Unrescue API policies are made granular with new policy
for unrescue and keeping old policy for rescue.
"""
_FLAVOR_EXTRA_SPECS_REASON = """
Policies for showing flavor extra specs in server APIs response is
separated as new policy. This policy is deprecated only for that but
not for list extra specs and showing it in flavor API response.
"""


def _deprecated(name: str, check_str: str, reason: str, since: str) -> DeprecatedRule:
    # Nova puts the flavor-extra-specs reason on the RuleDefault instead; oslo.policy
    # reads either place and warns about that one, so all of ours sit on the rule.
    return DeprecatedRule(name, check_str, deprecated_reason=reason, deprecated_since=since)


# The deprecated names matter at run time: an operator's file that still overrides an
# old name (say os_compute_api:os-rescue) is applied by oslo.policy to the new rule
# too (os_compute_api:os-unrescue) unless the file also sets the new name.
_DEPRECATED_ADMIN = _deprecated("rule:admin_api", "is_admin:True", _SRBAC_REASON, "21.0.0")
_DEPRECATED_ADMIN_OR_OWNER = _deprecated(
    "rule:admin_or_owner", "is_admin:True or project_id:%(project_id)s", _SRBAC_REASON, "21.0.0"
)
_DEPRECATED_DEFERRED_DELETE = _deprecated(
    "os_compute_api:os-deferred-delete", RULE_ADMIN_OR_OWNER, _SRBAC_REASON, "21.0.0"
)
_DEPRECATED_FLOATING_IPS = _deprecated(
    "os_compute_api:os-floating-ips", RULE_ADMIN_OR_OWNER, _SRBAC_REASON, "22.0.0"
)
_DEPRECATED_MIGRATE_LIVE = _deprecated(
    "os_compute_api:os-migrate-server:migrate_live", ADMIN, _MIGRATE_LIVE_REASON, "32.0.0"
)
_DEPRECATED_MULTINIC = _deprecated(
    "os_compute_api:os-multinic", RULE_ADMIN_OR_OWNER, _SRBAC_REASON, "22.0.0"
)
_DEPRECATED_RESCUE = _deprecated(
    "os_compute_api:os-rescue", RULE_ADMIN_OR_OWNER, _RESCUE_REASON, "21.0.0"
)
_DEPRECATED_SECURITY_GROUPS = _deprecated(
    "os_compute_api:os-security-groups", RULE_ADMIN_OR_OWNER, _SRBAC_REASON, "22.0.0"
)
_DEPRECATED_FLAVOR_EXTRA_SPECS = _deprecated(
    "os_compute_api:os-flavor-extra-specs:index",
    RULE_ADMIN_OR_OWNER,
    _FLAVOR_EXTRA_SPECS_REASON,
    "25.0.0",
)


def _op(method: str, path: str) -> Operation:
    return {"method": method, "path": path}


BASE_RULES: tuple[RuleDefault, ...] = (
    RuleDefault(
        "context_is_admin",
        "role:admin",
        "Decides what is required for the 'is_admin:True' check to succeed.",
        deprecated_rule=_DEPRECATED_ADMIN,
    ),
    RuleDefault(
        "admin_or_owner",
        "is_admin:True or project_id:%(project_id)s",
        "Default rule for most non-Admin APIs.",
        deprecated_for_removal=True,
        deprecated_reason=_SRBAC_REASON,
        deprecated_since="21.0.0",
    ),
    RuleDefault(
        "admin_api",
        "is_admin:True",
        "Default rule for most Admin APIs.",
        deprecated_for_removal=True,
        deprecated_reason=_SRBAC_REASON,
        deprecated_since="21.0.0",
    ),
    RuleDefault(
        "project_manager_api",
        "role:manager and project_id:%(project_id)s",
        "Default rule for Project level management APIs.",
        deprecated_rule=_DEPRECATED_ADMIN,
    ),
    RuleDefault(
        "project_member_api",
        "role:member and project_id:%(project_id)s",
        "Default rule for Project level non admin APIs.",
        deprecated_rule=_DEPRECATED_ADMIN_OR_OWNER,
    ),
    RuleDefault(
        "project_reader_api",
        "role:reader and project_id:%(project_id)s",
        "Default rule for Project level read only APIs.",
        deprecated_rule=_DEPRECATED_ADMIN_OR_OWNER,
    ),
    RuleDefault(
        "service_api",
        "role:service",
        "Default rule for service-to-service APIs.",
        deprecated_rule=_DEPRECATED_ADMIN,
    ),
    RuleDefault(
        "project_manager_or_admin",
        "rule:project_manager_api or rule:context_is_admin",
        "Default rule for Project Manager or admin APIs.",
        deprecated_rule=_DEPRECATED_ADMIN,
    ),
    RuleDefault(
        "project_member_or_admin",
        "rule:project_member_api or rule:context_is_admin",
        "Default rule for Project Member or admin APIs.",
        deprecated_rule=_DEPRECATED_ADMIN_OR_OWNER,
    ),
    RuleDefault(
        "project_reader_or_admin",
        "rule:project_reader_api or rule:context_is_admin",
        "Default rule for Project reader or admin APIs.",
        deprecated_rule=_DEPRECATED_ADMIN_OR_OWNER,
    ),
    RuleDefault(
        "service_or_admin",
        "rule:service_api or rule:context_is_admin",
        "Default rule for service or admin APIs.",
        deprecated_rule=_DEPRECATED_ADMIN,
    ),
)

# In the order Nova registers them (nova/policies/__init__.py), which is the order
# oslopolicy-sample-generator prints.
ACTION_RULES: tuple[DocumentedRuleDefault, ...] = (
    DocumentedRuleDefault(
        name="os_compute_api:os-admin-actions:reset_state",
        check_str=ADMIN,
        description="Reset the state of a given server",
        operations=[_op("POST", "/servers/{server_id}/action (os-resetState)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-admin-actions:inject_network_info",
        check_str=ADMIN,
        description="Inject network information into the server",
        operations=[_op("POST", "/servers/{server_id}/action (injectNetworkInfo)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-admin-password",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Change the administrative password for a server",
        operations=[_op("POST", "/servers/{server_id}/action (changePassword)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-console-output",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Show console output for a server",
        operations=[_op("POST", "/servers/{server_id}/action (os-getConsoleOutput)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-create-backup",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Create a back up of a server",
        operations=[_op("POST", "/servers/{server_id}/action (createBackup)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-deferred-delete:restore",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Restore a soft deleted server",
        operations=[_op("POST", "/servers/{server_id}/action (restore)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_DEFERRED_DELETE,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-deferred-delete:force",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Force delete a server before deferred cleanup",
        operations=[_op("POST", "/servers/{server_id}/action (forceDelete)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_DEFERRED_DELETE,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-evacuate",
        check_str=ADMIN,
        description="Evacuate a server from a failed host to a new host",
        operations=[_op("POST", "/servers/{server_id}/action (evacuate)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-extended-server-attributes",
        check_str=ADMIN,
        description=(
            "Return extended attributes for server.\n"
            "\n"
            "This rule will control the visibility for a set of servers attributes:\n"
            "\n"
            "- ``OS-EXT-SRV-ATTR:host``\n"
            "- ``OS-EXT-SRV-ATTR:instance_name``\n"
            "- ``OS-EXT-SRV-ATTR:reservation_id`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:launch_index`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:hostname`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:kernel_id`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:ramdisk_id`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:root_device_name`` (since microversion 2.3)\n"
            "- ``OS-EXT-SRV-ATTR:user_data`` (since microversion 2.3)\n"
            "\n"
            "Microvision 2.75 added the above attributes in the ``PUT /servers/{server_id}``\n"
            "and ``POST /servers/{server_id}/action (rebuild)`` API responses which are\n"
            "also controlled by this policy rule, like the ``GET /servers*`` APIs.\n"
            "\n"
            "Microversion 2.90 made the ``OS-EXT-SRV-ATTR:hostname`` attribute available to\n"
            "all users, so this policy has no effect on that field for microversions 2.90\n"
            "and greater. Controlling the visibility of this attribute for all microversions\n"
            "is therefore deprecated and will be removed in a future release.\n"
        ),
        operations=[
            _op("GET", "/servers/{id}"),
            _op("GET", "/servers/detail"),
            _op("PUT", "/servers/{server_id}"),
            _op("POST", "/servers/{server_id}/action (rebuild)"),
        ],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-floating-ips:add",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Associate floating IPs to server.  This API is deprecated.",
        operations=[_op("POST", "/servers/{server_id}/action (addFloatingIp)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_FLOATING_IPS,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-floating-ips:remove",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Disassociate floating IPs to server.  This API is deprecated.",
        operations=[_op("POST", "/servers/{server_id}/action (removeFloatingIp)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_FLOATING_IPS,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-lock-server:lock",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Lock a server",
        operations=[_op("POST", "/servers/{server_id}/action (lock)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-lock-server:unlock",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Unlock a server",
        operations=[_op("POST", "/servers/{server_id}/action (unlock)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-lock-server:unlock:unlock_override",
        check_str=ADMIN,
        description=(
            "Unlock a server, regardless who locked the server.\n"
            "\n"
            "This check is performed only after the check\n"
            "os_compute_api:os-lock-server:unlock passes"
        ),
        operations=[_op("POST", "/servers/{server_id}/action (unlock)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-migrate-server:migrate",
        check_str=PROJECT_MANAGER_OR_ADMIN,
        description="Cold migrate a server without specifying a host",
        operations=[_op("POST", "/servers/{server_id}/action (migrate)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-migrate-server:migrate:host",
        check_str=ADMIN,
        description="Cold migrate a server to a specified host",
        operations=[_op("POST", "/servers/{server_id}/action (migrate)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-migrate-server:migrate_live",
        check_str=PROJECT_MANAGER_OR_ADMIN,
        description=(
            "Live migrate a server to a new host without a reboot without specifying a host."
        ),
        operations=[_op("POST", "/servers/{server_id}/action (os-migrateLive)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-migrate-server:migrate_live:host",
        check_str=ADMIN,
        description="Live migrate a server to a specified host without a reboot.",
        operations=[_op("POST", "/servers/{server_id}/action (os-migrateLive)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_MIGRATE_LIVE,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-multinic:add",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description=(
            "Add a fixed IP address to a server.\n"
            "\n"
            "This API is proxy calls to the Network service. This is\n"
            "deprecated."
        ),
        operations=[_op("POST", "/servers/{server_id}/action (addFixedIp)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_MULTINIC,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-multinic:remove",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description=(
            "Remove a fixed IP address from a server.\n"
            "\n"
            "This API is proxy calls to the Network service. This is\n"
            "deprecated."
        ),
        operations=[_op("POST", "/servers/{server_id}/action (removeFixedIp)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_MULTINIC,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-pause-server:pause",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Pause a server",
        operations=[_op("POST", "/servers/{server_id}/action (pause)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-pause-server:unpause",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Unpause a paused server",
        operations=[_op("POST", "/servers/{server_id}/action (unpause)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-remote-consoles",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description=(
            "Generate a URL to access remote server console.\n"
            "\n"
            "This policy is for ``POST /remote-consoles`` API and below Server actions APIs\n"
            "are deprecated:\n"
            "\n"
            "- ``os-getSerialConsole``\n"
            "- ``os-getSPICEConsole``\n"
            "- ``os-getVNCConsole``."
        ),
        operations=[
            _op("POST", "/servers/{server_id}/action (os-getSerialConsole)"),
            _op("POST", "/servers/{server_id}/action (os-getSPICEConsole)"),
            _op("POST", "/servers/{server_id}/action (os-getVNCConsole)"),
            _op("POST", "/servers/{server_id}/remote-consoles"),
        ],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-rescue",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Rescue a server",
        operations=[_op("POST", "/servers/{server_id}/action (rescue)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-unrescue",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Unrescue a server",
        operations=[_op("POST", "/servers/{server_id}/action (unrescue)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_RESCUE,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-security-groups:add",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Add security groups to server.",
        operations=[_op("POST", "/servers/{server_id}/action (addSecurityGroup)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_SECURITY_GROUPS,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-security-groups:remove",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Remove security groups from server.",
        operations=[_op("POST", "/servers/{server_id}/action (removeSecurityGroup)")],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_SECURITY_GROUPS,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:show:flavor-extra-specs",
        check_str=PROJECT_READER_OR_ADMIN,
        description=(
            "Starting with microversion 2.47, the flavor and its extra specs used for a server "
            "is also returned in the response when showing server details, updating a server "
            "or rebuilding a server."
        ),
        operations=[
            _op("GET", "/servers/detail"),
            _op("GET", "/servers/{server_id}"),
            _op("PUT", "/servers/{server_id}"),
            _op("POST", "/servers/{server_id}/action (rebuild)"),
        ],
        scope_types=["project"],
        deprecated_rule=_DEPRECATED_FLAVOR_EXTRA_SPECS,
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:show:host_status",
        check_str=ADMIN,
        description=(
            "\n"
            "Show a server with additional host status information.\n"
            "\n"
            "This means host_status will be shown irrespective of status value. If showing\n"
            "only host_status UNKNOWN is desired, use the\n"
            "``os_compute_api:servers:show:host_status:unknown-only`` policy rule.\n"
            "\n"
            "Microvision 2.75 added the ``host_status`` attribute in the\n"
            "``PUT /servers/{server_id}`` and ``POST /servers/{server_id}/action (rebuild)``\n"
            "API responses which are also controlled by this policy rule, like the\n"
            "``GET /servers*`` APIs.\n"
        ),
        operations=[
            _op("GET", "/servers/{server_id}"),
            _op("GET", "/servers/detail"),
            _op("PUT", "/servers/{server_id}"),
            _op("POST", "/servers/{server_id}/action (rebuild)"),
        ],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:show:host_status:unknown-only",
        check_str=ADMIN,
        description=(
            "\n"
            "Show a server with additional host status information, only if host status is\n"
            "UNKNOWN.\n"
            "\n"
            "This policy rule will only be enforced when the\n"
            "``os_compute_api:servers:show:host_status`` policy rule does not pass for the\n"
            "request. An example policy configuration could be where the\n"
            "``os_compute_api:servers:show:host_status`` rule is set to allow admin-only and\n"
            "the ``os_compute_api:servers:show:host_status:unknown-only`` rule is set to\n"
            "allow everyone.\n"
        ),
        operations=[
            _op("GET", "/servers/{server_id}"),
            _op("GET", "/servers/detail"),
            _op("PUT", "/servers/{server_id}"),
            _op("POST", "/servers/{server_id}/action (rebuild)"),
        ],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:delete",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Delete a server",
        operations=[_op("DELETE", "/servers/{server_id}")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:update",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Update a server",
        operations=[_op("PUT", "/servers/{server_id}")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:confirm_resize",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Confirm a server resize",
        operations=[_op("POST", "/servers/{server_id}/action (confirmResize)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:revert_resize",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Revert a server resize",
        operations=[_op("POST", "/servers/{server_id}/action (revertResize)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:reboot",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Reboot a server",
        operations=[_op("POST", "/servers/{server_id}/action (reboot)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:resize",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Resize a server",
        operations=[_op("POST", "/servers/{server_id}/action (resize)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="compute:servers:resize:cross_cell",
        check_str=RULE_NOBODY,
        description=(
            "Resize a server across cells. By default, this is disabled for all users and "
            "recommended to be tested in a deployment for admin users before opening it up to "
            "non-admin users. Resizing within a cell is the default preferred behavior even if "
            "this is enabled. "
        ),
        operations=[_op("POST", "/servers/{server_id}/action (resize)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:rebuild",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Rebuild a server",
        operations=[_op("POST", "/servers/{server_id}/action (rebuild)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:rebuild:trusted_certs",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Rebuild a server with trusted image certificate IDs",
        operations=[_op("POST", "/servers/{server_id}/action (rebuild)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:create_image",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Create an image from a server",
        operations=[_op("POST", "/servers/{server_id}/action (createImage)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:create_image:allow_volume_backed",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Create an image from a volume backed server",
        operations=[_op("POST", "/servers/{server_id}/action (createImage)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:start",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Start a server",
        operations=[_op("POST", "/servers/{server_id}/action (os-start)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:stop",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Stop a server",
        operations=[_op("POST", "/servers/{server_id}/action (os-stop)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:servers:trigger_crash_dump",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Trigger crash dump in a server",
        operations=[_op("POST", "/servers/{server_id}/action (trigger_crash_dump)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-shelve:shelve",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Shelve server",
        operations=[_op("POST", "/servers/{server_id}/action (shelve)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-shelve:unshelve",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Unshelve (restore) shelved server",
        operations=[_op("POST", "/servers/{server_id}/action (unshelve)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-shelve:unshelve_to_host",
        check_str=ADMIN,
        description="Unshelve (restore) shelve offloaded server to a specific host",
        operations=[_op("POST", "/servers/{server_id}/action (unshelve)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-shelve:shelve_offload",
        check_str=ADMIN,
        description="Shelf-offload (remove) server",
        operations=[_op("POST", "/servers/{server_id}/action (shelveOffload)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-suspend-server:resume",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Resume suspended server",
        operations=[_op("POST", "/servers/{server_id}/action (resume)")],
        scope_types=["project"],
    ),
    DocumentedRuleDefault(
        name="os_compute_api:os-suspend-server:suspend",
        check_str=PROJECT_MEMBER_OR_ADMIN,
        description="Suspend server",
        operations=[_op("POST", "/servers/{server_id}/action (suspend)")],
        scope_types=["project"],
    ),
)

DEFAULTS: tuple[RuleDefault, ...] = BASE_RULES + ACTION_RULES
BY_NAME: dict[str, RuleDefault] = {rule.name: rule for rule in DEFAULTS}

# Old names oslo.policy still honours in a policy file, mapped to the rules they feed.
DEPRECATED_NAMES: dict[str, tuple[str, ...]] = {}
for _rule in DEFAULTS:
    if _rule.deprecated_rule is not None and _rule.deprecated_rule.name != _rule.name:
        DEPRECATED_NAMES.setdefault(_rule.deprecated_rule.name, ())
        DEPRECATED_NAMES[_rule.deprecated_rule.name] += (_rule.name,)
del _rule

# Every other rule Nova registers (other APIs than server actions). A Nova policy.yaml
# sets many of them; the gateway ignores them, and lint reports them as such, not as typos.
OTHER_NOVA_RULES: frozenset[str] = frozenset(
    (
        "os_compute_api:os-aggregates:set_metadata",
        "os_compute_api:os-aggregates:add_host",
        "os_compute_api:os-aggregates:create",
        "os_compute_api:os-aggregates:remove_host",
        "os_compute_api:os-aggregates:update",
        "os_compute_api:os-aggregates:index",
        "os_compute_api:os-aggregates:delete",
        "os_compute_api:os-aggregates:show",
        "compute:aggregates:images",
        "os_compute_api:os-assisted-volume-snapshots:create",
        "os_compute_api:os-assisted-volume-snapshots:delete",
        "os_compute_api:os-attach-interfaces:list",
        "os_compute_api:os-attach-interfaces:show",
        "os_compute_api:os-attach-interfaces:create",
        "os_compute_api:os-attach-interfaces:delete",
        "os_compute_api:os-availability-zone:list",
        "os_compute_api:os-availability-zone:detail",
        "os_compute_api:os-baremetal-nodes:list",
        "os_compute_api:os-baremetal-nodes:show",
        "os_compute_api:os-console-auth-tokens",
        "os_compute_api:extensions",
        "os_compute_api:os-flavor-access:add_tenant_access",
        "os_compute_api:os-flavor-access:remove_tenant_access",
        "os_compute_api:os-flavor-access",
        "os_compute_api:os-flavor-extra-specs:show",
        "os_compute_api:os-flavor-extra-specs:create",
        "os_compute_api:os-flavor-extra-specs:update",
        "os_compute_api:os-flavor-extra-specs:delete",
        "os_compute_api:os-flavor-extra-specs:index",
        "os_compute_api:os-flavor-manage:create",
        "os_compute_api:os-flavor-manage:update",
        "os_compute_api:os-flavor-manage:delete",
        "os_compute_api:os-floating-ip-pools",
        "os_compute_api:os-floating-ips:list",
        "os_compute_api:os-floating-ips:create",
        "os_compute_api:os-floating-ips:show",
        "os_compute_api:os-floating-ips:delete",
        "os_compute_api:os-hosts:list",
        "os_compute_api:os-hosts:show",
        "os_compute_api:os-hosts:update",
        "os_compute_api:os-hosts:reboot",
        "os_compute_api:os-hosts:shutdown",
        "os_compute_api:os-hosts:start",
        "os_compute_api:os-hypervisors:list",
        "os_compute_api:os-hypervisors:list-detail",
        "os_compute_api:os-hypervisors:statistics",
        "os_compute_api:os-hypervisors:show",
        "os_compute_api:os-hypervisors:uptime",
        "os_compute_api:os-hypervisors:search",
        "os_compute_api:os-hypervisors:servers",
        "os_compute_api:os-instance-actions:events:details",
        "os_compute_api:os-instance-actions:events",
        "os_compute_api:os-instance-actions:list",
        "os_compute_api:os-instance-actions:show",
        "os_compute_api:os-instance-usage-audit-log:list",
        "os_compute_api:os-instance-usage-audit-log:show",
        "os_compute_api:ips:show",
        "os_compute_api:ips:index",
        "os_compute_api:os-keypairs:index",
        "os_compute_api:os-keypairs:create",
        "os_compute_api:os-keypairs:delete",
        "os_compute_api:os-keypairs:show",
        "os_compute_api:limits",
        "os_compute_api:limits:other_project",
        "os_compute_api:os-migrations:index",
        "os_compute_api:os-migrations:index:all_projects",
        "os_compute_api:os-migrations:index:host",
        "os_compute_api:os-networks:list",
        "os_compute_api:os-networks:show",
        "os_compute_api:os-quota-class-sets:show",
        "os_compute_api:os-quota-class-sets:update",
        "os_compute_api:os-quota-sets:update",
        "os_compute_api:os-quota-sets:defaults",
        "os_compute_api:os-quota-sets:show",
        "os_compute_api:os-quota-sets:delete",
        "os_compute_api:os-quota-sets:detail",
        "os_compute_api:os-security-groups:get",
        "os_compute_api:os-security-groups:show",
        "os_compute_api:os-security-groups:create",
        "os_compute_api:os-security-groups:update",
        "os_compute_api:os-security-groups:delete",
        "os_compute_api:os-security-groups:rule:create",
        "os_compute_api:os-security-groups:rule:delete",
        "os_compute_api:os-security-groups:list",
        "os_compute_api:os-server-diagnostics",
        "os_compute_api:os-server-external-events:create",
        "os_compute_api:os-server-groups:create",
        "os_compute_api:os-server-groups:delete",
        "os_compute_api:os-server-groups:index",
        "os_compute_api:os-server-groups:index:all_projects",
        "os_compute_api:os-server-groups:show",
        "os_compute_api:server-metadata:index",
        "os_compute_api:server-metadata:show",
        "os_compute_api:server-metadata:create",
        "os_compute_api:server-metadata:update_all",
        "os_compute_api:server-metadata:update",
        "os_compute_api:server-metadata:delete",
        "os_compute_api:os-server-password:show",
        "os_compute_api:os-server-password:clear",
        "os_compute_api:os-server-shares:index",
        "os_compute_api:os-server-shares:create",
        "os_compute_api:os-server-shares:show",
        "os_compute_api:os-server-shares:delete",
        "os_compute_api:os-server-tags:delete_all",
        "os_compute_api:os-server-tags:index",
        "os_compute_api:os-server-tags:update_all",
        "os_compute_api:os-server-tags:delete",
        "os_compute_api:os-server-tags:update",
        "os_compute_api:os-server-tags:show",
        "compute:server:topology:index",
        "compute:server:topology:host:index",
        "os_compute_api:servers:index",
        "os_compute_api:servers:detail",
        "os_compute_api:servers:index:get_all_tenants",
        "os_compute_api:servers:detail:get_all_tenants",
        "os_compute_api:servers:allow_all_filters",
        "os_compute_api:servers:show",
        "os_compute_api:servers:create",
        "os_compute_api:servers:create:forced_host",
        "compute:servers:create:requested_destination",
        "os_compute_api:servers:create:attach_volume",
        "os_compute_api:servers:create:attach_network",
        "os_compute_api:servers:create:trusted_certs",
        "os_compute_api:servers:create:zero_disk_flavor",
        "network:attach_external_network",
        "os_compute_api:servers:migrations:show",
        "os_compute_api:servers:migrations:force_complete",
        "os_compute_api:servers:migrations:delete",
        "os_compute_api:servers:migrations:index",
        "os_compute_api:servers:migrations:index:host",
        "os_compute_api:os-services:list",
        "os_compute_api:os-services:update",
        "os_compute_api:os-services:delete",
        "os_compute_api:os-simple-tenant-usage:show",
        "os_compute_api:os-simple-tenant-usage:list",
        "os_compute_api:os-tenant-networks:list",
        "os_compute_api:os-tenant-networks:show",
        "os_compute_api:os-volumes:list",
        "os_compute_api:os-volumes:create",
        "os_compute_api:os-volumes:detail",
        "os_compute_api:os-volumes:show",
        "os_compute_api:os-volumes:delete",
        "os_compute_api:os-volumes:snapshots:list",
        "os_compute_api:os-volumes:snapshots:create",
        "os_compute_api:os-volumes:snapshots:detail",
        "os_compute_api:os-volumes:snapshots:show",
        "os_compute_api:os-volumes:snapshots:delete",
        "os_compute_api:os-volumes-attachments:index",
        "os_compute_api:os-volumes-attachments:create",
        "os_compute_api:os-volumes-attachments:show",
        "os_compute_api:os-volumes-attachments:update",
        "os_compute_api:os-volumes-attachments:swap",
        "os_compute_api:os-volumes-attachments:delete",
    )
)
