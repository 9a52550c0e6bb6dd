"""CADF rendering of audit records, shaped like keystonemiddleware's audit middleware events.

Owns the mapping from a gateway record to a pycadf event (action taxonomy, outcome,
initiator, target, reason); it must never read a request (only the redacted record).
"""

from __future__ import annotations

import re
import uuid
import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pycadf import (  # type: ignore[import-untyped]
    attachment,
    cadftaxonomy,
    cadftype,
    credential,
    eventfactory,
    host,
    reason,
    reporterstep,
    resource,
    tag,
)

from gateway.audit.records import CADF_EVENT_TYPE_URI, DECISION

assert CADF_EVENT_TYPE_URI == cadftype.CADF_VERSION_1_0_0 + "event"

# pycadf warns on every identifier that is not a UUID (noauth user ids, "nova"); the
# warning is noise per record, not a problem of the record.
warnings.filterwarnings("ignore", message="Invalid uuid", module="pycadf.identifier")

EVENT_TYPE = "audit.http.response"  # keystonemiddleware's event type for a finished request
REQUEST_EVENT_TYPE = "audit.http.request"  # ... and for one it has not answered yet
SERVICE_TYPE_URI = "service/compute"
CADF_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"  # pycadf.timestamp.TIME_FORMAT
_NAMESPACE = uuid.UUID("5a1f3c2e-9d0b-4c6e-8f51-2b7d9e4a6c10")  # event ids from request ids

# Nova's api_audit_map.conf (shipped with pycadf), so our actions and target typeURIs
# match what keystonemiddleware reports for the same request.
CUSTOM_ACTIONS: Mapping[str, str] = {
    "enable": "enable",
    "disable": "disable",
    "delete": "delete",
    "startup": "start/startup",
    "shutdown": "stop/shutdown",
    "reboot": "start/reboot",
    "os-migrations/get": "read",
    "os-server-password/post": "update",
}
# fmt: off
PATH_KEYWORDS: Mapping[str, str | None] = {
    "add": None, "action": None, "enable": None, "disable": None,
    "configure-project": None, "defaults": None, "delete": None, "detail": None,
    "diagnostics": None, "entries": "entry", "extensions": "alias", "flavors": "flavor",
    "images": "image", "ips": "label", "limits": None, "metadata": "key",
    "os-agents": "os-agent", "os-aggregates": "os-aggregate", "os-availability-zone": None,
    "os-certificates": None, "os-cloudpipe": None, "os-fixed-ips": "ip",
    "os-extra_specs": "key", "os-flavor-access": None, "os-floating-ip-dns": "domain",
    "os-floating-ips-bulk": "host", "os-floating-ip-pools": None,
    "os-floating-ips": "floating-ip", "os-hosts": "host", "os-hypervisors": "hypervisor",
    "os-instance-actions": "instance-action", "os-keypairs": "keypair",
    "os-migrations": None, "os-networks": "network", "os-quota-sets": "tenant",
    "os-security-groups": "security_group", "os-security-group-rules": "rule",
    "os-server-password": None, "os-services": None, "os-simple-tenant-usage": "tenant",
    "os-virtual-interfaces": None, "os-volume_attachments": "attachment",
    "os-volumes_boot": None, "os-volumes": "volume", "os-volume-types": "volume-type",
    "os-snapshots": "snapshot", "reboot": None, "servers": "server", "shutdown": None,
    "startup": None, "statistics": None,
}
# fmt: on


def _clean(segment: str) -> str:
    return segment[:-5] if segment.endswith(".json") else segment


def cadf_action(method: str, path: str, action_key: str | None) -> str:
    """keystonemiddleware's OpenStackAuditApi.get_action, with the body key we decided on.

    A server action is ``update/<key>`` (the middleware takes the body's first key; the
    gateway uses the one key it dispatched, never a key it refused).
    """
    path = path.partition("?")[0].rstrip("/")
    ending = _clean(path[path.rfind("/") + 1 :])
    if f"{ending}/{method.lower()}" in CUSTOM_ACTIONS:
        return CUSTOM_ACTIONS[f"{ending}/{method.lower()}"]
    if ending in CUSTOM_ACTIONS:
        return CUSTOM_ACTIONS[ending]
    if method == "POST":
        if ending == "action":
            return f"update/{action_key}" if action_key else "update"
        return "update" if ending not in PATH_KEYWORDS else "create"
    if method == "GET":
        return "read/list" if ending in PATH_KEYWORDS else "read"
    if method in ("PUT", "PATCH"):
        return "update"
    if method == "DELETE":
        return "delete"
    if method == "HEAD":
        return "read"
    return "unknown"


def target_type_uri(path: str) -> str:
    """keystonemiddleware's _build_typeURI: service/compute/servers/server/action etc."""
    type_uri = ""
    previous: str | None = None
    for segment in re.split("/", path.partition("?")[0]):
        key = _clean(segment)
        if key in PATH_KEYWORDS:
            type_uri += "/" + key
        elif previous is not None and previous in PATH_KEYWORDS:
            type_uri += "/" + str(PATH_KEYWORDS[previous])  # the resource it names
        previous = key
    return SERVICE_TYPE_URI + type_uri


def outcome(status: int | None) -> str:
    """success for 200-399 as keystonemiddleware decides it; pending with no answer."""
    if status is None:
        return str(cadftaxonomy.OUTCOME_PENDING)
    if 200 <= status < 400:
        return str(cadftaxonomy.OUTCOME_SUCCESS)
    return str(cadftaxonomy.OUTCOME_FAILURE)


def _cadf_time(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime(CADF_TIME_FORMAT)


def _initiator(record: Mapping[str, Any]) -> Any:
    who = record.get("initiator") or {}
    initiator = resource.Resource(
        typeURI=cadftaxonomy.ACCOUNT_USER,
        id=who.get("user_id") or cadftaxonomy.UNKNOWN,
        name=who.get("user_name") or who.get("user_id") or cadftaxonomy.UNKNOWN,
        host=host.Host(address=who.get("address") or None, agent=who.get("user_agent") or None),
    )
    # keystonemiddleware masks the caller's token into the event; the gateway never
    # records any part of it, so the credential carries only the identity status.
    cred = credential.Credential(token="")
    cred.token = "***"
    cred.identity_status = "Confirmed" if who.get("authenticated") else "Invalid"
    initiator.credential = cred
    initiator.project_id = who.get("project_id") or cadftaxonomy.UNKNOWN
    for key in ("domain_id", "user_domain_id", "project_domain_id", "system_scope"):
        if who.get(key):
            setattr(initiator, key, who[key])
    initiator.roles = list(who.get("roles") or [])
    initiator.request_id = record.get("request_id")
    if record.get("global_request_id"):
        initiator.global_request_id = record["global_request_id"]
    return initiator


def _target(record: Mapping[str, Any], path: str) -> Any:
    facts = record.get("target") or {}
    target = resource.Resource(
        typeURI=target_type_uri(path),
        id=facts.get("server_id") or "nova",
        name="nova",
    )
    if facts.get("project_id"):
        target.project_id = facts["project_id"]
    return target


def to_cadf(record: Mapping[str, Any]) -> dict[str, Any]:
    """The CADF event (as a dict) for a REQUEST record, or a DECISION record (pending)."""
    if record.get("event") == DECISION:
        return _event(record, None, record, pending=True)
    status = (record.get("decision") or {}).get("status")
    return _event(record, status, record)


def to_cadf_outcome(
    decision: Mapping[str, Any], outcome_record: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``audit.http.response`` event that follows a decision's ``audit.http.request``.

    As keystonemiddleware does, it is the same event (same id) with the outcome, the HTTP
    status and a reporter step; its attachment is the OUTCOME record.
    """
    return _event(
        decision, outcome_record.get("status"), outcome_record, at=str(outcome_record["time"])
    )


def _event(
    record: Mapping[str, Any],
    status: int | None,
    attached: Mapping[str, Any],
    *,
    pending: bool = False,
    at: str | None = None,
) -> dict[str, Any]:
    request = record.get("request") or {}
    decision = record.get("decision") or {}
    action = record.get("action") or {}
    path = str(request.get("path") or "")
    if pending:
        # keystonemiddleware's request event has no HTTP reason yet; the rule that
        # allowed the call is known, so it is kept.
        cause = None
        if decision.get("rule"):
            cause = reason.Reason(policyType="oslo.policy", policyId=decision["rule"])
    else:
        cause = reason.Reason(
            reasonType="HTTP", reasonCode=str(status if status is not None else 0)
        )
        if decision.get("rule"):
            cause.policyType = "oslo.policy"
            cause.policyId = decision["rule"]
    fields: dict[str, Any] = {}
    if cause is not None:
        fields["reason"] = cause
    event = eventfactory.EventFactory().new_event(
        eventType=cadftype.EVENTTYPE_ACTIVITY,
        id=str(uuid.uuid5(_NAMESPACE, str(record.get("request_id")))),
        eventTime=_cadf_time(str(record["time"])),
        outcome=outcome(None if pending else status),
        action=cadf_action(str(request.get("method", "")), path, action.get("key")),
        initiator=_initiator(record),
        target=_target(record, path),
        observer=resource.Resource(id="target"),
        **fields,
    )
    event.requestPath = path
    correlation = record.get("global_request_id") or record.get("request_id")
    event.add_tag(tag.generate_name_value_tag("correlation_id", str(correlation)))
    if not pending:
        event.add_reporterstep(
            reporterstep.Reporterstep(
                role=cadftype.REPORTER_ROLE_MODIFIER,
                reporter=resource.Resource(id="target"),
                reporterTime=_cadf_time(at or str(record["time"])),
            )
        )
    # The gateway's own record rides along so one stream serves CADF consumers and
    # `nova-gateway audit query|replay` alike.
    event.add_attachment(
        attachment.Attachment(
            typeURI="mime:application/json", content=dict(attached), name="nova_gateway"
        )
    )
    rendered: dict[str, Any] = _primitive(event)
    return rendered


def _primitive(value: Any) -> Any:
    """What pycadf's ``as_dict`` returns, without oslo's generic (and slow) to_primitive.

    A pycadf object keeps its attributes in its ``__dict__``; pycadf holds other objects
    only in lists (attachments, reporter chain, addresses). Dicts are the record's own
    plain JSON (an attachment's content) and are shared as they are, never walked.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_primitive(item) for item in value]
    if isinstance(value, cadftype.CADFAbstractType):
        return {key: _primitive(item) for key, item in vars(value).items()}
    return value


_PLAIN = frozenset({str, int, float, bool, type(None), dict})
