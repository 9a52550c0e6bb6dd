"""Loading one policy generation: our strict read, oslo.policy's merge, then compilation.

oslo.policy's own merge applies deprecated names and new defaults as Nova would see them.

Owns LoadedPolicy and load_policy; it must never run on the event loop (it reads files), nor
return a generation whose files changed between our read and oslo's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from oslo_config import cfg
from oslo_policy import _checks, policy

from gateway.nova.policy_defaults import DEFAULTS, GATEWAY_RULES
from gateway.policy.compiler import Compiler, Predicate
from gateway.policy.files import (
    POLICY_FILE,
    POLICY_SUBDIR,
    Fingerprint,
    PolicyFile,
    PolicyLoadError,
    fingerprint,
    policy_paths,
    read_policy_file,
    value_problems,
)

log = structlog.get_logger(__name__)


class ChangedWhileLoading(Exception):
    """A file changed between our read and oslo.policy's; the next poll tries again."""


@dataclass(frozen=True)
class LoadedPolicy:
    """One immutable policy generation; decisions read it without locks."""

    enforcer: policy.Enforcer
    predicates: Mapping[str, Predicate]
    scope_types: Mapping[str, frozenset[str]]
    fingerprint: Fingerprint
    files: tuple[PolicyFile, ...]
    default: Predicate | None  # the 'default' rule, for names no rule defines
    # Rules whose check reads a ``server.*`` key of the target (directly or through the
    # rules they name): decisions on them need current server facts.
    server_rules: frozenset[str] = frozenset()

    def check_str(self, rule: str) -> str:
        """The effective check string of ``rule`` (after overrides), as oslo prints it."""
        check = self.enforcer.rules.get(rule)
        return "" if check is None else str(check)


def _private_conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    # oslo.policy resolves its files through find_file, which needs a parsed ConfigOpts;
    # no argv and no default files so nothing outside policy_dir is ever read.
    conf([], project="nova-gateway-policy", default_config_files=[], default_config_dirs=[])
    return conf


def load_policy(policy_dir: Path, *, enforce_new_defaults: bool = True) -> LoadedPolicy:
    """Read, check and compile the policy in ``policy_dir``; PolicyLoadError if unusable.

    Blocking (file reads); call it from a worker thread once the loop is running.
    """
    stamp = fingerprint(policy_dir)
    files = tuple(read_policy_file(path) for path in policy_paths(policy_dir))
    problems: list[str] = []
    merged: dict[str, Any] = {}
    for policy_file in files:
        where = policy_file.path.relative_to(policy_dir)
        if policy_file.error:
            problems.append(f"{where}: {policy_file.error}")
            continue
        for name, value in policy_file.rules.items():
            problems.extend(f"{where}: {name}: {problem}" for problem in value_problems(value))
            merged[name] = value
    if problems:
        raise PolicyLoadError(problems)

    conf = _private_conf()
    enforcer = policy.Enforcer(conf, policy_file=str(policy_dir / POLICY_FILE))
    conf.set_override("policy_dirs", [str(policy_dir / POLICY_SUBDIR)], group="oslo_policy")
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
    # oslo.policy warns through the warnings module (process-global, not thread-safe to
    # capture); we log the same facts ourselves below.
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    enforcer.register_defaults(DEFAULTS + GATEWAY_RULES)
    try:
        enforcer.load_rules(force_reload=True)
    except (ValueError, TypeError, OSError, cfg.Error) as exc:
        raise PolicyLoadError([f"oslo.policy could not load the files: {exc}"]) from exc
    # From here on oslo never looks at the files again: no stat per enforce().
    enforcer.use_conf = False
    loaded_raw = {name: rule.check_str for name, rule in enforcer.file_rules.items()}
    if loaded_raw != merged:
        raise ChangedWhileLoading()

    compiler = Compiler(enforcer.rules, enforcer)
    predicates: dict[str, Predicate] = {}
    for name in enforcer.rules:
        pred = compiler.rule(name)
        if pred is not None:
            predicates[name] = pred
    scope_types = {
        name: frozenset(default.scope_types)
        for name, default in enforcer.registered_rules.items()
        if default.scope_types
    }
    for default in DEFAULTS:
        old = default.deprecated_rule
        if old is not None and old.name in merged and default.name not in merged:
            log.warning(
                "policy override of a deprecated name",
                deprecated=old.name,
                applies_to=default.name,
                effective=str(enforcer.rules[default.name]),
            )
    # oslo's Rules answer a name no rule defines with the 'default' rule, if defined.
    default_name = enforcer.rules.default_rule
    server_rules = frozenset(
        name for name in enforcer.rules if _reads_server(enforcer.rules[name], enforcer.rules)
    )
    return LoadedPolicy(
        enforcer=enforcer,
        predicates=predicates,
        scope_types=scope_types,
        fingerprint=stamp,
        files=files,
        default=predicates.get(default_name) if isinstance(default_name, str) else None,
        server_rules=server_rules,
    )


SERVER_KEY_MARK = "%(server."


def _reads_server(
    check: _checks.BaseCheck, rules: policy.Rules, seen: frozenset[str] = frozenset()
) -> bool:
    """Does evaluating ``check`` read a ``server.*`` key of the target?

    Checks oslo evaluates itself (``http:``, plugins) may read anything: counted as yes.
    """
    kind = type(check)
    if kind in (_checks.TrueCheck, _checks.FalseCheck):
        return False
    if kind in (_checks.AndCheck, _checks.OrCheck):
        return any(_reads_server(part, rules, seen) for part in check.rules)  # type: ignore[attr-defined]
    if kind is _checks.NotCheck:
        return _reads_server(check.rule, rules, seen)  # type: ignore[attr-defined]
    if kind is _checks.RuleCheck:
        name = check.match  # type: ignore[attr-defined]
        if name in seen or name not in rules:
            return False  # a cycle is refused by the compiler; an unknown rule is False
        return _reads_server(rules[name], rules, seen | {name})
    if kind in (_checks.RoleCheck, _checks.GenericCheck):
        return SERVER_KEY_MARK in str(check.match)  # type: ignore[attr-defined]
    return True
