"""Which of an action's catalogue rules apply to a call, and the target those rules see.

Owns rules_for, build_target and remote_target (pure functions of the call); it must never
decide a rule, touch oslo.policy or credentials, nor do I/O: the pipeline and the CLI
reuse them as-is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.nova.catalogue import ActionSpec, PolicyRule, When
from gateway.nova.types import Version, v

SERVER_KEYS = ("status", "vm_state", "task_state", "locked", "flavor", "image")

_TRUSTED_CERTS_FROM = v("2.63")
_UNSHELVE_TO_HOST_FROM = v("2.91")


def _declares_host(spec: ActionSpec, version: Version) -> bool:
    # Nova reads ``host`` only where the version's schema declares it (migrate from 2.56;
    # before that the migrate value is not even validated and a host in it is ignored).
    schema_range = spec.schema_for(version)
    if schema_range is None or schema_range.schema is None:
        return False
    value_schema = schema_range.schema.get("properties", {}).get(spec.key, {})
    return isinstance(value_schema, Mapping) and "host" in value_schema.get("properties", {})


def _host_given(spec: ActionSpec, body_value: Any, version: Version) -> bool:
    return (
        isinstance(body_value, Mapping)
        and bool(body_value.get("host"))
        and _declares_host(spec, version)
    )


def rules_for(
    spec: ActionSpec,
    body_value: Any,
    version: Version,
    server_image: Any,
    locked_by: str | None,
    caller_project: str | None,
    server_project: str | None,
    *,
    include_response_view: bool = False,
) -> list[PolicyRule]:
    """The catalogue rules Nova checks for this call, in Nova's order.

    ``server_image`` is the server's ``image`` as GET returns it ("" when volume-backed;
    an unknown image counts as volume-backed so the stricter rule set applies).
    ``locked_by`` is "owner", "admin" or None. Response-view rules never refuse; they are
    listed only with ``include_response_view``.
    """
    rules = spec.policies
    if all(rule.when is When.ALWAYS for rule in rules):
        return list(rules)  # most actions: nothing about the call to look at
    host: bool | None = None  # read from the body only if a rule asks

    def applies(when: When) -> bool:
        nonlocal host
        if when is When.ALWAYS:
            return True
        if when is When.HOST_ABSENT or when is When.HOST_GIVEN:
            if host is None:
                host = _host_given(spec, body_value, version)
            return host is (when is When.HOST_GIVEN)
        if when is When.TRUSTED_CERTS_GIVEN:
            return (
                version >= _TRUSTED_CERTS_FROM
                and isinstance(body_value, Mapping)
                and "trusted_image_certificates" in body_value
            )
        if when is When.UNSHELVE_TO_HOST:
            return (
                version >= _UNSHELVE_TO_HOST_FROM
                and isinstance(body_value, Mapping)
                and bool(body_value.get("host"))
            )
        if when is When.VOLUME_BACKED:
            return not server_image
        if when is When.LOCKED_BY_OTHER:
            # Nova's is_expected_locked_by: the unlocker must match who locked it.
            return bool(locked_by) and locked_by != (
                "owner" if caller_project == server_project else "admin"
            )
        if when is When.RESPONSE_VIEW:
            return include_response_view
        raise AssertionError(f"unknown condition {when}")

    return [rule for rule in rules if applies(rule.when)]


def build_target(
    spec: ActionSpec,
    body_value: Any,
    version: Version,
    *,
    project_id: str | None,
    user_id: str | None,
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The policy target: Nova's keys plus the flat keys site rules use (gateway.policy.engine's
    docstring).

    ``server`` holds any of SERVER_KEYS; a key left out stays out of the target (checks on
    it are False), a None value is the text ``None``. ``project_id``/``user_id`` that are
    None are left out, as Nova passes ``{}`` for a floating IP with no server.
    """
    target: dict[str, Any] = {"action": spec.key, "microversion": str(version)}
    if project_id is not None:
        target["project_id"] = project_id
    if user_id is not None:
        target["user_id"] = user_id
    if server:
        for key in SERVER_KEYS:
            if key in server:
                target[f"server.{key}"] = server[key]
    if isinstance(body_value, Mapping):
        upper_field = spec.states_by[0] if spec.states_by else None
        for field_name, value in body_value.items():
            if field_name == upper_field and isinstance(value, str):
                value = value.upper()
            target[f"action.{field_name}"] = value
    return target


# Body fields that hold secrets (the audit trail redacts the same): rebuild's and
# changePassword's adminPass, rebuild's user_data, personality file contents.
_SECRET_PARTS = ("password", "passwd", "secret", "token")
_SECRET_NAMES = frozenset({"adminpass", "admin_pass", "user_data", "userdata", "contents"})
WITHHELD = "***"
_MAX_DEPTH = 32  # validated bodies nest a few levels; deeper values are not sent at all


def _secret(name: str) -> bool:
    lower = name.lower()
    return lower in _SECRET_NAMES or any(part in lower for part in _SECRET_PARTS)


def _withheld(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return WITHHELD
    if isinstance(value, Mapping):
        return {
            key: WITHHELD if _secret(str(key)) else _withheld(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_withheld(item, depth + 1) for item in value]
    return value


def remote_target(target: Mapping[str, Any]) -> dict[str, Any]:
    """The target a check handed to oslo (an ``http:`` decision point) receives.

    Nova's own targets never hold request bodies; the gateway's ``action.<field>`` keys
    do, so secrets in them (adminPass, user_data, personality contents, any *password*,
    *secret*, *token* key) are replaced by ``***``: they must not leave for a decision
    point that may log what it is asked.
    """
    return {
        key: WITHHELD
        if key.startswith("action.") and _secret(key[len("action.") :])
        else _withheld(value, 0)
        for key, value in target.items()
    }
