"""Who is calling: the credentials every identity mode produces, and header stripping.

Owns the Credentials shape, the identity headers a client may never send, and the
Authenticator protocol; it must never trust a client-sent identity header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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

    def policy_credentials(self) -> dict[str, object]:
        """The credential dict oslo.policy checks, shaped like RequestContext.to_policy_values()."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": sorted(self.roles),
            "domain_id": self.domain_id,
            "system_scope": self.system_scope,
            "user_domain_id": self.user_domain_id,
            "project_domain_id": self.project_domain_id,
            "is_admin_project": self.is_admin_project,
        }


class Authenticator(Protocol):
    """One identity mode: turns request headers into Credentials or a Fault (401/503)."""

    async def authenticate(self, headers: Sequence[tuple[str, str]]) -> Credentials: ...

    async def service_token(self) -> str:
        """The token the gateway sends upstream for its own reads (server lookups)."""
        ...

    async def close(self) -> None: ...
