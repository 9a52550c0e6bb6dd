"""Nova's default policy as the simulator applies it: the check strings it uses, the rules
an action checks and when each of them applies, and the 403 Nova answers.

Owns rule evaluation (roles, project match, scope) and the conditions under which Nova's
controllers call ``context.can``; it must never look a server up nor apply an effect.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from novasim.faults import Fault
from novasim.identity import Caller
from novasim.microversion import Version
from novasim.model import Server

ADMIN_CHECK = "rule:context_is_admin"
MEMBER_CHECK = "rule:project_member_or_admin"
MANAGER_CHECK = "rule:project_manager_or_admin"
READER_CHECK = "rule:project_reader_or_admin"


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


# nova/policies/base.py defaults, by the check string a rule registers.
_CHECKS: Mapping[str, Callable[[Caller, str | None], bool]] = {
    ADMIN_CHECK: _admin,
    MEMBER_CHECK: _role_in_project("member"),
    MANAGER_CHECK: _role_in_project("manager"),
    READER_CHECK: _role_in_project("reader"),
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
        raise Fault(403, f"Policy doesn't allow {name} to be performed.")


# --- when a controller checks a rule ---------------------------------------------------------


@dataclass(frozen=True)
class Situation:
    """What a controller has in hand when it decides which rule to check."""

    value: Any  # the action key's value, already validated
    version: Version
    caller: Caller
    server: Server | None


Condition = Callable[[Situation], bool]


def always(situation: Situation) -> bool:
    return True


def trusted_certs_given(situation: Situation) -> bool:
    """rebuild: from 2.63, whenever the key is in the body (even null)."""
    value = situation.value
    return situation.version >= Version(2, 63) and "trusted_image_certificates" in value


def migrate_host_given(situation: Situation) -> bool:
    """migrate: the host is read from 2.56 on, from a body that is not null."""
    value = situation.value
    return situation.version >= Version(2, 56) and value is not None and bool(value.get("host"))


def migrate_host_absent(situation: Situation) -> bool:
    return not migrate_host_given(situation)


def live_host_given(situation: Situation) -> bool:
    """os-migrateLive: ``host`` is required by every schema; null or "" means none."""
    return bool(situation.value["host"])


def live_host_absent(situation: Situation) -> bool:
    return not live_host_given(situation)


def volume_backed(situation: Situation) -> bool:
    return situation.server is not None and situation.server.volume_backed


def locked_by_other(situation: Situation) -> bool:
    """unlock: compute API's is_expected_locked_by is False."""
    server = situation.server
    if server is None or not server.locked_by:
        return False
    return server.locked_by != expected_locker(situation.caller, server)


def expected_locker(caller: Caller, server: Server) -> str:
    """Nova's is_expected_locked_by: 'owner' inside the server's project, else 'admin'."""
    return "owner" if caller.project_id == server.project_id else "admin"


class Whose(enum.Enum):
    """Whose project_id the controller passes as the policy target."""

    SERVER = "the server's"
    CALLER = "none passed: oslo defaults to the caller's own"


@dataclass(frozen=True)
class Rule:
    """One ``context.can(name)`` of a controller, and when the controller reaches it."""

    name: str
    check: str
    applies: Condition = always
    whose: Whose = Whose.SERVER

    def enforce(self, situation: Situation) -> None:
        if not self.applies(situation):
            return
        if self.whose is Whose.CALLER:
            project = situation.caller.project_id
        else:
            project = situation.server.project_id if situation.server is not None else None
        enforce(self.name, self.check, situation.caller, project)
