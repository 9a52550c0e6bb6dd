"""Demo identity: realnova's lab tokens ``<user>:<project>[:<roles>[:<scope>]]`` as Credentials.

Owns the lab token syntax (labauth's, plus novasim's scope suffix); it must never be
reachable without ``[identity] allow_noauth`` nor be mistaken for authentication.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from gateway.identity.credentials import Credentials
from gateway.identity.refusals import MAX_TOKEN_LENGTH, header_values, unauthorized

# keystone-manage bootstrap's implied roles, as labauth and keystone expand them.
IMPLIES: Mapping[str, str] = {"admin": "manager", "manager": "member", "member": "reader"}
LAB_DOMAIN = "default"  # labauth sets X-User-Domain-Id / X-Project-Domain-Id to this


def expand_implied(roles: Sequence[str]) -> frozenset[str]:
    expanded: set[str] = set()
    for role in roles:
        current: str | None = role.lower()  # oslo.policy compares roles case-insensitively
        while current and current not in expanded:
            expanded.add(current)
            current = IMPLIES.get(current)
    return frozenset(expanded)


def parse_token(token: str) -> Credentials:
    """The caller a lab token names, or a 401 Fault (the token is never quoted).

    Same forms as novasim: ``alice:p1`` (member), ``carol:p1:reader``, ``admin:admin``
    (admin), ``sysreader::reader:system`` (system scope "all", no project) and
    ``dom::admin:domain=d1`` (domain-scoped). No roles means ``member`` (``admin`` for
    user ``admin``); roles expand admin => manager => member => reader, as keystone's.
    """
    parts = token.split(":")
    # labauth is lenient (spaces around roles are stripped); only control characters
    # and absurd lengths are refused, so tokens mean the same to realnova and to us.
    sane = len(token) <= MAX_TOKEN_LENGTH and token.isprintable()
    if not sane or len(parts) not in (2, 3, 4) or not parts[0]:
        raise unauthorized("token_invalid")
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
            raise unauthorized("token_invalid")
    elif not project:
        raise unauthorized("token_invalid")
    if len(parts) >= 3 and parts[2]:
        roles = [role.strip() for role in parts[2].split(",") if role.strip()]
    else:
        roles = ["admin" if user == "admin" else "member"]
    project_scoped = system_scope is None and domain_id is None
    return Credentials(
        user_id=user,
        # A system- or domain-scoped keystone token carries no project: match that.
        project_id=project if project_scoped else None,
        roles=expand_implied(roles),
        domain_id=domain_id,
        system_scope=system_scope,
        user_domain_id=LAB_DOMAIN,
        project_domain_id=LAB_DOMAIN if project_scoped else None,
        mode="noauth",
    )


# A lab token means the same caller every time: its Credentials (frozen) are built once
# and shared, as Keystone's token cache shares them. A refused token is never remembered.
_credentials_of = lru_cache(maxsize=1024)(parse_token)


class NoAuthAuthenticator:
    """Believes the token: for demos and tests against novasim/realnova only."""

    def __init__(self, service_token: str) -> None:
        self._service_token = service_token

    async def authenticate(self, headers: Sequence[tuple[str, str]]) -> Credentials:
        tokens = header_values(headers, "X-Auth-Token")
        if not tokens or not tokens[0].strip():
            raise unauthorized("token_missing")
        if len(tokens) > 1:
            raise unauthorized("token_ambiguous")
        return _credentials_of(tokens[0].strip())

    async def service_token(self) -> str:
        return self._service_token

    async def close(self) -> None:
        return None
