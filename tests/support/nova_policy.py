"""Nova's way of asking oslo.policy, for differential tests: a stock Enforcer, Nova's context.

Owns a transcription of what Nova 34 does around oslo.policy (nova/policy.py: init,
authorize, check_is_admin, IsAdminCheck; nova/context.py: RequestContext.is_admin and
to_policy_values) and of the identity headers keystonemiddleware hands Nova. Rule
defaults come from ../shared/nova/policy-defaults.json (what Nova registers). It must
never import the gateway's policy package: tests compare the gateway with it.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_policy import _checks, policy

ALLOW, DENY = "allow", "deny"  # an evaluation error is "error:<exception type>"


class NovaIsAdminCheck(policy.Check):
    """nova.policy.IsAdminCheck, as Nova 34 has it."""

    def __init__(self, kind: str, match: str) -> None:
        self.expected = match.lower() == "true"
        super().__init__(kind, str(self.expected))

    def __call__(  # type: ignore[override]  # Nova's three-argument form, as written
        self, target: Mapping[str, Any], creds: MutableMapping[str, Any], enforcer: Any
    ) -> bool:
        return bool(creds["is_admin"] == self.expected)


@contextmanager
def is_admin_kind(check_class: type[policy.Check] | None) -> Iterator[None]:
    """Parse with ``is_admin:`` meaning ``check_class`` (None: a generic check).

    oslo's registry of check kinds is process-wide; whatever else registered is_admin
    (the gateway does) is put back afterwards.
    """
    registry = _checks.registered_checks
    saved = registry.get("is_admin")
    if check_class is None:
        registry.pop("is_admin", None)
    else:
        registry["is_admin"] = check_class
    try:
        yield
    finally:
        if saved is None:
            registry.pop("is_admin", None)
        else:
            registry["is_admin"] = saved


def nova_defaults(shared_dir: Path) -> list[policy.RuleDefault]:
    """Every rule Nova 34 registers, parsed as Nova parses them: nova.policies is imported
    before nova.policy registers IsAdminCheck, so its defaults hold generic checks."""
    rows = json.loads((shared_dir / "nova" / "policy-defaults.json").read_text())
    defaults = []
    with is_admin_kind(None), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in rows:
            old = row.get("deprecated_rule")
            deprecated = (
                policy.DeprecatedRule(
                    old["name"],
                    old["check_str"],
                    deprecated_reason="superseded",
                    deprecated_since="21.0.0",
                )
                if old
                else None
            )
            defaults.append(
                policy.RuleDefault(
                    row["name"],
                    row["check_str"],
                    row.get("description") or "",
                    deprecated_rule=deprecated,
                    scope_types=row.get("scope_types"),
                )
            )
    return defaults


def nova_enforcer(
    policy_dir: Path,
    defaults: list[policy.RuleDefault],
    *,
    enforce_new_defaults: bool = True,
    oslo_policy_options: Mapping[str, Any] | None = None,
) -> policy.Enforcer:
    """nova.policy.init(): a stock Enforcer on policy.yaml and policy.d of ``policy_dir``,
    Nova's defaults registered, file rules parsed with Nova's IsAdminCheck."""
    conf = cfg.ConfigOpts()
    conf([], project="nova-reference", default_config_files=[], default_config_dirs=[])
    enforcer = policy.Enforcer(conf, policy_file=str(policy_dir / "policy.yaml"))
    conf.set_override("policy_dirs", [str(policy_dir / "policy.d")], group="oslo_policy")
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
    for name, value in (oslo_policy_options or {}).items():
        conf.set_override(name, value, group="oslo_policy")
    enforcer.suppress_default_change_warnings = True
    enforcer.suppress_deprecation_warnings = True  # Nova warns; the verdicts are the same
    enforcer.register_defaults(defaults)
    with is_admin_kind(NovaIsAdminCheck), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enforcer.load_rules()
    # The files do not change during a test: never re-read (and re-parsed) them later.
    enforcer.use_conf = False
    return enforcer


def keystone_environ(token: Mapping[str, Any]) -> dict[str, str]:
    """The identity headers keystonemiddleware's auth_token sets from a validated v3 token
    (keystonemiddleware/auth_token/_request.py: set_user_headers), as a WSGI environ."""
    body = token["token"]
    user, project, domain, system = (
        body.get(key) for key in ("user", "project", "domain", "system")
    )
    environ = {
        "HTTP_X_USER_ID": user["id"],
        "HTTP_X_USER_DOMAIN_ID": user["domain"]["id"],
        "HTTP_X_ROLES": ",".join(role["name"] for role in body.get("roles") or []),
        "HTTP_X_IS_ADMIN_PROJECT": "True" if body.get("is_admin_project", True) else "False",
    }
    if project:
        environ["HTTP_X_PROJECT_ID"] = project["id"]
        environ["HTTP_X_PROJECT_DOMAIN_ID"] = project["domain"]["id"]
    if domain:
        environ["HTTP_X_DOMAIN_ID"] = domain["id"]
    if system and system.get("all"):
        environ["HTTP_OPENSTACK_SYSTEM_SCOPE"] = "all"
    return environ


class NovaContext(oslo_context.RequestContext):
    """nova.context.RequestContext, its policy part: ``is_admin`` from check_is_admin."""

    enforcer: policy.Enforcer

    def __init__(self, is_admin: bool | None = None, **kwargs: Any) -> None:
        super().__init__(is_admin=is_admin, **kwargs)
        if self.is_admin is None:
            self.is_admin = check_is_admin(self.enforcer, self)

    def to_policy_values(self) -> Any:
        values = super().to_policy_values()
        values["is_admin"] = self.is_admin
        return values


def check_is_admin(enforcer: policy.Enforcer, context: NovaContext) -> bool:
    """nova.policy.check_is_admin: context_is_admin on the caller's own project and user."""
    target = {"project_id": context.project_id, "user_id": context.user_id}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oslo.context warns when is_admin is read
        return bool(enforcer.authorize("context_is_admin", target, context))


class _Forbidden(Exception):
    """Nova's PolicyNotAuthorized stand-in: authorize() passes ``action=`` to it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args)


def nova_decides(
    enforcer: policy.Enforcer, environ: Mapping[str, str], rule: str, target: Mapping[str, Any]
) -> str:
    """A request's context built (NovaKeystoneContext), then ``context.can(rule, target,
    fatal=False)``: "allow", "deny", or "error:<type>" where Nova raises (an HTTP 500)."""
    context_class: type[NovaContext] = type(
        "BoundNovaContext", (NovaContext,), {"enforcer": enforcer}
    )
    try:
        context = context_class.from_environ(dict(environ))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            allowed = enforcer.authorize(
                rule, target, context, do_raise=True, exc=_Forbidden, action=rule
            )
    except (_Forbidden, policy.InvalidScope):
        return DENY
    except Exception as exc:
        return f"error:{type(exc).__name__}"
    return ALLOW if allowed else DENY


def nova_credentials(enforcer: policy.Enforcer, environ: Mapping[str, str]) -> dict[str, Any]:
    """The credentials Nova's enforce() evaluates (and a remote check receives)."""
    context_class: type[NovaContext] = type(
        "BoundNovaContext", (NovaContext,), {"enforcer": enforcer}
    )
    context = context_class.from_environ(dict(environ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        creds = dict(context.to_policy_values().items())
    if creds.get("system_scope"):
        creds["system"] = creds["system_scope"]
    return creds
