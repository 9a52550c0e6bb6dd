"""Who is calling: the credentials every identity mode produces, and header stripping.

Owns the Credentials shape, the identity headers a client may never send, and the
Authenticator protocol; it must never trust a client-sent identity header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Protocol

# Headers keystonemiddleware sets for Nova (and their legacy spellings). A client's copy
# is removed before anything reads the request, whatever its case or underscore form.
IDENTITY_HEADERS = frozenset(
    {
        "x-identity-status",
        "x-service-identity-status",
        "x-domain-id",
        "x-domain-name",
        "x-project-id",
        "x-project-name",
        "x-project-domain-id",
        "x-project-domain-name",
        "x-user-id",
        "x-user-name",
        "x-user-domain-id",
        "x-user-domain-name",
        "x-roles",
        "x-role",
        "x-service-catalog",
        "x-is-admin-project",
        "x-system-scope",
        "openstack-system-scope",
        "x-tenant-id",
        "x-tenant-name",
        "x-tenant",
        "x-user",
        "x-auth-user",
        "x-auth-project-id",
        "x-service-roles",
        "x-service-user-id",
        "x-service-user-name",
        "x-service-user-domain-id",
        "x-service-user-domain-name",
        "x-service-project-id",
        "x-service-project-name",
        "x-service-project-domain-id",
        "x-service-project-domain-name",
        "x-service-is-admin-project",
        "x-trust-id",
        "x-trustee-user-id",
        "x-trustor-user-id",
        "x-oauth-access-token-id",
        "x-app-cred-id",
    }
)
_IDENTITY_PREFIXES = ("x-service-", "x-domain-", "x-user-", "x-project-", "x-tenant-")


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-")


# Tokens, not assertions: Nova's keystonemiddleware validates them itself.
_TOKENS = frozenset({"x-auth-token", "x-service-token"})


@lru_cache(maxsize=1024)  # clients send the same few header names on every request
def is_identity_header(name: str) -> bool:
    normal = _normal(name)
    if normal in _TOKENS:
        return False
    return normal in IDENTITY_HEADERS or normal.startswith(_IDENTITY_PREFIXES)


def strip_identity_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers without any identity header a client tried to send."""
    return [(key, value) for key, value in headers if not is_identity_header(key)]


@dataclass(frozen=True)
class Credentials:
    """A verified caller, as Nova's RequestContext would see it."""

    user_id: str
    project_id: str | None
    roles: frozenset[str]  # lower-case; implied roles already expanded by the issuer
    domain_id: str | None = None
    system_scope: str | None = None
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    expires_at: float | None = None  # epoch seconds
    is_admin_project: bool = True
    mode: str = ""  # keystone | jwt | noauth, for the audit record
    extra: dict[str, str] = field(default_factory=dict)
    # The role names as the issuer spelled and ordered them (keystonemiddleware's X-Roles,
    # Nova's creds['roles']); empty when the issuer's spelling is ``roles`` itself.
    role_names: tuple[str, ...] = ()
    # What other concerns derive from this caller once and keep with it (the policy
    # engine's subject per policy generation): a cached caller's values live and die
    # with its cache entry. Not part of the caller's identity (no compare, no repr).
    memo: dict[str, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def policy_credentials(self) -> dict[str, object]:
        """Nova's policy credentials but ``is_admin``: oslo.context's to_policy_values(),
        key for key and in its order (a remote check receives them as they are).

        Nova adds ``is_admin`` (computed from ``context_is_admin`` when the request
        arrives); the policy engine adds it, since only the policy can compute it. The
        gateway does not validate service tokens: the service_* values stay empty, as
        Nova's are for a request that carries none.
        """
        return self._policy_values()

    @cached_property
    def nova_context_values(self) -> MappingProxyType[str, object]:
        """Nova's context values while Nova builds the context: ``is_admin`` None first
        (oslo.context lists the keys Nova adds first; the policy engine computes it), then
        policy_credentials(). Read-only, built once per (cached) caller; ``.copy()`` is
        a fresh dict."""
        return MappingProxyType({"is_admin": None, **self._policy_values()})

    @cached_property
    def policy_roles(self) -> frozenset[str]:
        """The roles lower-cased, as oslo's role: check compares them."""
        return frozenset(role.lower() for role in self.roles)

    def _policy_values(self) -> dict[str, object]:
        return {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "system_scope": self.system_scope,
            "domain_id": self.domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project_domain_id,
            "roles": list(self.role_names) if self.role_names else sorted(self.roles),
            "is_admin_project": self.is_admin_project,
            "service_user_id": None,
            "service_user_domain_id": None,
            "service_project_id": None,
            "service_project_domain_id": None,
            "service_roles": [],
        }


class Authenticator(Protocol):
    """One identity mode: turns request headers into Credentials or a Fault (401/503)."""

    async def authenticate(self, headers: Sequence[tuple[str, str]]) -> Credentials: ...

    async def service_token(self) -> str:
        """The token the gateway sends upstream for its own reads (server lookups)."""
        ...

    async def close(self) -> None: ...
