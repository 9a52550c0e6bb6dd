"""Nova's default policy rules evaluated for a caller: the check strings the catalogue
names, when each rule applies, and the 403 Nova answers.

Owns rule evaluation (roles, project match, scope) and the catalogue's ``When``
conditions; it must never look a server up or apply an effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.nova.catalogue import PolicyRule, Target, When
from gateway.nova.faults import Fault
from gateway.nova.types import Version
from novasim.identity import Caller
from novasim.model import Server

ADMIN_CHECK = "rule:context_is_admin"
_V2_56 = Version(2, 56)
_V2_63 = Version(2, 63)
_V2_91 = Version(2, 91)


def _admin(caller: Caller, target_project: str | None) -> bool:
    return caller.is_admin


def _role_in_project(role: str) -> Callable[[Caller, str | None], bool]:
    def check(caller: Caller, target_project: str | None) -> bool:
        if caller.is_admin:
            return True
        # "project_id:%(project_id)s" is False when the target has no project_id.
        return (
            role in caller.roles
            and target_project is not None
            and caller.project_id == target_project
        )

    return check


# nova/policies/base.py defaults, by the check string the catalogue stores.
_CHECKS: Mapping[str, Callable[[Caller, str | None], bool]] = {
    "rule:context_is_admin": _admin,
    "rule:project_member_or_admin": _role_in_project("member"),
    "rule:project_manager_or_admin": _role_in_project("manager"),
    "rule:project_reader_or_admin": _role_in_project("reader"),
    "!": lambda caller, target: False,
    "@": lambda caller, target: True,
}


def allows(check: str, caller: Caller, target_project: str | None) -> bool:
    """Whether ``check`` passes; every Nova rule here is project-scoped, and oslo.policy
    (enforce_scope on) refuses system- and domain-scoped tokens on such rules."""
    if not caller.project_scoped:
        return False
    return _CHECKS[check](caller, target_project)


def enforce(name: str, check: str, caller: Caller, target_project: str | None) -> None:
    """Raise Nova's 403 unless ``check`` passes."""
    if not allows(check, caller, target_project):
        raise Fault(403, f"Policy doesn't allow {name} to be performed.", reason="policy")


def _host_given(key: str, value: Any, version: Version) -> bool:
    # Before 2.56 Nova reads no host from a migrate body (it has no schema then either).
    if key == "migrate" and version < _V2_56:
        return False
    return isinstance(value, dict) and bool(value.get("host"))


def applies(
    rule: PolicyRule,
    key: str,
    value: Any,
    version: Version,
    caller: Caller,
    server: Server | None,
) -> bool:
    """Whether Nova checks ``rule`` (fatally) for this call at the policy step."""
    when = rule.when
    if when is When.ALWAYS:
        return True
    if when is When.TRUSTED_CERTS_GIVEN:
        return (
            version >= _V2_63
            and isinstance(value, dict)
            and ("trusted_image_certificates" in value)
        )
    if when is When.HOST_ABSENT:
        return not _host_given(key, value, version)
    if when is When.HOST_GIVEN:
        return _host_given(key, value, version)
    if when is When.VOLUME_BACKED:
        return server is not None and server.volume_backed
    if when is When.LOCKED_BY_OTHER:
        return server is not None and server.locked_by not in (
            None,
            expected_locker(caller, server),
        )
    # UNSHELVE_TO_HOST is checked by the unshelve effect: Nova checks it inside the
    # compute API, after the lock and state checks. RESPONSE_VIEW never refuses.
    return False


def unshelve_to_host_requested(value: Any, version: Version) -> bool:
    return version >= _V2_91 and isinstance(value, dict) and bool(value.get("host"))


def expected_locker(caller: Caller, server: Server) -> str:
    """Nova's is_expected_locked_by: 'owner' inside the server's project, else 'admin'."""
    return "owner" if caller.project_id == server.project_id else "admin"


def target_project(rule: PolicyRule, caller: Caller, server: Server | None) -> str | None:
    """The ``project_id`` of the policy target Nova builds for ``rule``."""
    if rule.target is Target.CALLER:
        return caller.project_id
    return server.project_id if server is not None else None
