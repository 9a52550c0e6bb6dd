"""Random policies, targets and Keystone tokens for the policy differential tests.

Owns the generator (every check kind oslo.policy and Nova know, remote checks, deep
rules); it must never decide anything: the gateway and the reference do, and are compared.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Nova's base rules (nova/policies/base.py) and deprecated names operators still override.
BASE_RULES = (
    "context_is_admin",
    "admin_or_owner",
    "admin_api",
    "project_manager_api",
    "project_member_api",
    "project_reader_api",
    "service_api",
    "project_manager_or_admin",
    "project_member_or_admin",
    "project_reader_or_admin",
    "service_or_admin",
)
DEPRECATED_NAMES = ("rule:admin_api", "rule:admin_or_owner", "os_compute_api:os-rescue")
HELPERS = tuple(f"site_{i}" for i in range(5))  # site rules other rules refer to

ROLES = ("admin", "manager", "member", "reader", "service", "Admin", "MEMBER", "auditor")
PROJECTS = ("p1", "p2", "p-admin")
USERS = ("u1", "u2", "admin")
DOMAINS = ("default", "d1")
TARGET_KEYS = ("project_id", "user_id", "server.status", "action.type", "server.locked")
WORDS = ("p1", "p2", "u1", "ACTIVE", "HARD", "True", "False", "None", "admin", "all", "d1")
CREDENTIAL_PATHS = (
    "project_id",
    "user_id",
    "domain_id",
    "system_scope",
    "system",
    "user_domain_id",
    "project_domain_id",
    "is_admin_project",
    "is_admin",
    "roles",
    "service_roles",
    "service_user_id",
    "missing.key",
    "roles.x",  # walks into a role name: oslo raises (a fail-closed error on both sides)
)


@dataclass
class Policy:
    """A policy directory's worth of rules: policy.yaml, then policy.d/site.yaml."""

    main: dict[str, Any] = field(default_factory=dict)
    site: dict[str, Any] = field(default_factory=dict)
    enforce_new_defaults: bool = True
    depth: int = 0  # the deepest nesting built on purpose (0: none)
    deep_rule: str = ""  # the rule nested that deep

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        if self.main:
            (directory / "policy.yaml").write_text(yaml.safe_dump(self.main), encoding="utf-8")
        if self.site:
            (directory / "policy.d").mkdir(exist_ok=True)
            (directory / "policy.d" / "site.yaml").write_text(
                yaml.safe_dump(self.site), encoding="utf-8"
            )
        return directory


class Corpus:
    """Draws from ``rng``; ``enforced`` are rule names both sides register."""

    def __init__(
        self,
        rng: random.Random,
        enforced: tuple[str, ...],
        remote_url: str | None = None,
        slow: float = 0.0,
    ) -> None:
        self.rng = rng
        self.enforced = enforced
        self.remote_url = remote_url  # "//127.0.0.1:port" of a decision point, if any
        self.slow = slow  # how often a remote check is answered after remote_timeout
        self.names = (*BASE_RULES, *enforced[:40], *HELPERS, "undefined_rule", "default")

    # -- check strings ---------------------------------------------------------------

    def leaf(self) -> str:
        rng = self.rng
        kind = rng.randrange(12)
        if kind == 0:
            return rng.choice(("@", "!"))
        if kind == 1:
            return f"role:{rng.choice(ROLES)}"
        if kind == 2:
            return f"role:%({rng.choice(TARGET_KEYS)})s"
        if kind in (3, 4):
            return f"rule:{rng.choice(self.names)}"
        if kind == 5:
            return f"'{rng.choice(WORDS)}':%({rng.choice(TARGET_KEYS)})s"
        if kind == 6:
            return f"{rng.choice(('True', 'None', '1', 'False'))}:%({rng.choice(TARGET_KEYS)})s"
        if kind == 7:
            return f"{rng.choice(CREDENTIAL_PATHS)}:%({rng.choice(TARGET_KEYS)})s"
        if kind == 8:
            return f"{rng.choice(CREDENTIAL_PATHS)}:{rng.choice(WORDS)}"
        if kind == 9:
            return "is_admin:" + rng.choice(("True", "False", "true", "1", "%(project_id)s"))
        if kind == 10 and self.remote_url:
            path = "slow" if rng.random() < self.slow else rng.choice(("decide", "%(project_id)s"))
            return f"http:{self.remote_url}/{path}"
        return f"project_id:%({rng.choice(('project_id', 'project_id', 'user_id'))})s"

    def check(self, depth: int = 3) -> str:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.35:
            return self.leaf()
        inner = depth - 1
        form = rng.randrange(5)
        if form == 0:
            return f"not {self.check(inner)}"
        if form == 1:
            return f"({self.check(inner)} and {self.check(inner)})"
        if form == 2:
            return f"({self.check(inner)} or {self.check(inner)})"
        if form == 3:
            return f"({self.check(inner)} or {self.check(inner)} and {self.check(inner)})"
        return f"{self.check(inner)} and {self.check(inner)}"

    def value(self) -> Any:
        """A check string, now and then oslo's legacy list form."""
        if self.rng.random() < 0.05:
            return [[self.leaf() for _ in range(self.rng.randrange(1, 3))] for _ in range(2)]
        return self.check()

    # -- policies --------------------------------------------------------------------

    def policy(self, deep_levels: tuple[int, ...] = ()) -> Policy:
        """Overrides of base rules, enforced rules, deprecated names and site helpers.

        ``deep_levels``: now and then one rule nests that deep, by ``not`` chains or by a
        chain of rules each referring to the next.
        """
        rng = self.rng
        result = Policy(enforce_new_defaults=rng.random() < 0.8)
        pool = (*BASE_RULES, *self.enforced, *DEPRECATED_NAMES, *HELPERS, "default")
        for name in rng.sample(pool, rng.randrange(1, 9)):
            where = result.main if rng.random() < 0.6 else result.site
            where[name] = self.value()
        if rng.random() < 0.1:
            name = rng.choice(self.enforced)
            result.site[name] = result.main.get(name, self.check())  # policy.d wins
            result.main[name] = self.check()
        if deep_levels and rng.random() < 0.15:
            self.deep_rule(result, rng.choice(deep_levels), chained=rng.random() < 0.5)
        return result

    def deep_rule(self, result: Policy, levels: int, *, chained: bool) -> None:
        """Make one enforced rule nest exactly ``levels`` checks deep: ``not`` after
        ``not``, or a chain of rules each referring to the next."""
        # An action's rule: Nova's defaults refer only to base rules, never to one.
        name = self.rng.choice([rule for rule in self.enforced if rule not in BASE_RULES])
        result.depth, result.deep_rule = levels, name
        leaf = self.leaf()
        while leaf.startswith(("rule:", "http:")):  # a leaf of depth 1, decided locally
            leaf = self.leaf()
        if not chained:
            result.site[name] = "not " * (levels - 1) + leaf
            return
        chain = [f"chain_{i}" for i in range(levels - 1)]
        result.site[name] = f"rule:{chain[0]}"
        for here, after in itertools.pairwise(chain):
            result.site[here] = f"rule:{after}"
        result.site[chain[-1]] = leaf

    # -- who asks, about what --------------------------------------------------------

    def target(self) -> dict[str, Any]:
        rng = self.rng
        values: dict[str, tuple[Any, ...]] = {
            "project_id": PROJECTS,
            "user_id": USERS,
            "server.status": ("ACTIVE", "SHUTOFF"),
            "action.type": ("HARD", "SOFT"),
            "server.locked": (True, False, None),
        }
        return {key: rng.choice(values[key]) for key in TARGET_KEYS if rng.random() < 0.8}

    def token(self) -> dict[str, Any]:
        """A validated Keystone v3 token body, as GET /v3/auth/tokens returns it."""
        rng = self.rng
        user = rng.choice(USERS)
        roles = rng.sample(ROLES, rng.randrange(0, 4))
        body: dict[str, Any] = {
            "user": {"id": user, "name": user, "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": f"id-{role}", "name": role} for role in roles],
            "methods": ["password"],
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "is_admin_project": rng.random() < 0.8,
        }
        scope = rng.choice(("project", "project", "project", "domain", "system"))
        if scope == "project":
            project = rng.choice(PROJECTS)
            domain = rng.choice(DOMAINS)
            body["project"] = {
                "id": project,
                "name": project,
                "domain": {"id": domain, "name": domain},
            }
        elif scope == "domain":
            body["domain"] = {"id": "d1", "name": "d1"}
        else:
            body["system"] = {"all": True}
        return {"token": body}


def _domain(domain_id: str) -> dict[str, str]:
    return {"id": domain_id, "name": domain_id}


def role_tokens() -> list[dict[str, Any]]:
    """Every persona for Nova's defaults: each role set in each scope, own or other project."""
    personas = [
        [],
        ["reader"],
        ["member", "reader"],
        ["manager", "member", "reader"],
        ["admin", "manager", "member", "reader"],
        ["service"],
        ["admin"],
    ]
    tokens = []
    for roles in personas:
        for scope in ("p1", "p2", "domain", "system"):
            for is_admin_project in (True, False):
                body: dict[str, Any] = {
                    "user": {"id": "u1", "name": "u1", "domain": {"id": "default", "name": "D"}},
                    "roles": [{"id": f"id-{role}", "name": role} for role in roles],
                    "methods": ["password"],
                    "issued_at": "2026-01-01T00:00:00.000000Z",
                    "expires_at": "2099-01-01T00:00:00.000000Z",
                    "is_admin_project": is_admin_project,
                }
                if scope == "domain":
                    body["domain"] = {"id": "d1", "name": "d1"}
                elif scope == "system":
                    body["system"] = {"all": True}
                else:
                    body["project"] = {
                        "id": scope,
                        "name": scope,
                        "domain": {"id": "default", "name": "D"},
                    }
                tokens.append({"token": body})
    return tokens


DEFAULT_TARGETS: tuple[dict[str, str], ...] = (
    {"project_id": "p1", "user_id": "u1"},
    {"project_id": "p2", "user_id": "u2"},
    {"project_id": "p1"},
    {},
)
