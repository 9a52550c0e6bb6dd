"""Who is calling: lab tokens turned into a caller, as keystonemiddleware + Nova's
context would (realnova's labauth token format, plus a scope suffix).

Owns token syntax, implied roles and ``is_admin``; it must never decide whether the
caller may do something (policy does) nor trust identity headers unless configured.

Token: ``<user>:<project>[:<roles,csv>[:<scope>]]``. No roles means ``member``
(``admin`` for user ``admin``); roles expand admin => manager => member => reader.
``<scope>`` is ``system`` (a system-scoped token, as ``OpenStack-System-Scope: all``
would be; the project may then be empty) or ``domain=<id>`` (domain-scoped). Nova's
action rules are project-scoped, so such tokens are refused (403) on every one of them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

# keystone's default implied roles, as labauth expands them into X-Roles.
_IMPLIES: Mapping[str, str] = {"admin": "manager", "manager": "member", "member": "reader"}

UNAUTHENTICATED = "The request you have made requires authentication."
INVALID_TOKEN = "Invalid lab token; use <user>:<project>[:<roles,csv>[:system|domain=<id>]]"
WWW_AUTHENTICATE = 'Keystone uri="http://127.0.0.1/identity"'


@dataclass(frozen=True)
class Caller:
    """The request context Nova builds from the validated token."""

    user_id: str
    project_id: str | None
    roles: frozenset[str]
    system_scope: str | None = None
    domain_id: str | None = None

    @property
    def is_admin(self) -> bool:
        # context_is_admin = role:admin, evaluated without scope checks at context
        # creation: it bypasses locks and widens lookups whatever the token's scope.
        return "admin" in self.roles

    @property
    def project_scoped(self) -> bool:
        return self.system_scope is None and self.domain_id is None


class Unauthenticated(Exception):
    """No usable credentials: keystonemiddleware's 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def expand_implied(roles: list[str]) -> frozenset[str]:
    expanded: set[str] = set()
    for role in roles:
        current: str | None = role.lower()  # oslo.policy compares roles case-insensitively
        while current and current not in expanded:
            expanded.add(current)
            current = _IMPLIES.get(current)
    return frozenset(expanded)


@functools.lru_cache(maxsize=4096)  # callers are immutable; refusals are not cached
def caller_from_token(token: str) -> Caller:
    parts = token.split(":")
    if len(parts) not in (2, 3, 4) or not parts[0]:
        raise Unauthenticated(INVALID_TOKEN)
    user, project = parts[0], parts[1]
    system_scope: str | None = None
    domain_id: str | None = None
    if len(parts) == 4:
        scope = parts[3]
        if scope == "system":
            system_scope = "all"
        elif scope.startswith("domain=") and len(scope) > len("domain="):
            domain_id = scope[len("domain=") :]
        else:
            raise Unauthenticated(INVALID_TOKEN)
    elif not project:
        raise Unauthenticated(INVALID_TOKEN)
    if len(parts) >= 3 and parts[2]:
        roles = [role.strip() for role in parts[2].split(",") if role.strip()]
    else:
        roles = ["admin" if user == "admin" else "member"]
    return Caller(
        user_id=user,
        project_id=(project or None) if system_scope is None and domain_id is None else None,
        roles=expand_implied(roles),
        system_scope=system_scope,
        domain_id=domain_id,
    )


def authenticate(headers: Mapping[str, str], trust_identity_headers: bool) -> Caller:
    """The caller of a request, or Unauthenticated (401)."""
    token = headers.get("X-Auth-Token", "").strip()
    if token:
        return caller_from_token(token)
    if trust_identity_headers:
        user = headers.get("X-User-Id", "")
        project = headers.get("X-Project-Id", "")
        if user and project:
            roles = [r.strip().lower() for r in headers.get("X-Roles", "").split(",")]
            return Caller(
                user_id=user,
                project_id=project,
                roles=frozenset(role for role in roles if role),
                system_scope=headers.get("OpenStack-System-Scope") or None,
                domain_id=headers.get("X-Domain-Id") or None,
            )
    raise Unauthenticated(UNAUTHENTICATED)
