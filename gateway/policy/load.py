"""Loading one policy generation: our strict read, oslo.policy's merge, then compilation.

oslo.policy's own merge applies deprecated names and new defaults as Nova would see them.

Owns LoadedPolicy, load_policy and the settings oslo's remote checks read; it must never
run on the event loop (it reads files), nor return a generation whose files changed
between our read and oslo's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from oslo_config import cfg
from oslo_policy import _checks, policy

from gateway.nova.policy_defaults import DEFAULTS
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
from gateway.policy.gateway_rules import REGISTERED

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RemoteChecks:
    """What oslo's ``http:``/``https:`` checks read from ``[oslo_policy]`` in Nova."""

    timeout: float = 60.0
    content_type: str = "application/x-www-form-urlencoded"
    verify_server_crt: bool = True
    ca_crt_file: str | None = None
    client_crt_file: str | None = None
    client_key_file: str | None = None

    def apply(self, conf: cfg.ConfigOpts) -> None:
        for name, value in (
            ("remote_timeout", self.timeout),
            ("remote_content_type", self.content_type),
            ("remote_ssl_verify_server_crt", self.verify_server_crt),
            ("remote_ssl_ca_crt_file", self.ca_crt_file),
            ("remote_ssl_client_crt_file", self.client_crt_file),
            ("remote_ssl_client_key_file", self.client_key_file),
        ):
            conf.set_override(name, value, group="oslo_policy")


class _Enforcer(policy.Enforcer):
    """oslo's Enforcer without its load-time rule survey.

    ``check_rules`` only logs undefined and cyclic references, but it walks every rule's
    references recursively and without memory: a deep chain overflows the stack and a
    wide one costs time quadratic in the file. The compiler refuses cycles and bounds
    depth and size itself (linear), and ``policy lint`` reports undefined references.
    """

    def check_rules(self, raise_on_violation: bool = False) -> bool:
        return True


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
    # Rules whose evaluation hands a check to oslo (http:, https:, plugins): such a check
    # may block on I/O, so decisions reaching them run off the event loop.
    by_oslo: frozenset[str] = frozenset()
    default_by_oslo: bool = False

    def blocks(self, rules: Iterable[str]) -> bool:
        """Whether deciding these rules may block (context_is_admin is always evaluated)."""
        by_oslo = self.by_oslo
        if not by_oslo and not self.default_by_oslo:
            return False
        if "context_is_admin" in by_oslo:
            return True
        predicates = self.predicates
        return any(
            name in by_oslo or (name not in predicates and self.default_by_oslo) for name in rules
        )

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


def load_policy(
    policy_dir: Path, *, enforce_new_defaults: bool = True, remote: RemoteChecks | None = None
) -> LoadedPolicy:
    """Read, check and compile the policy in ``policy_dir``; PolicyLoadError if unusable.

    Blocking (file reads); call it from a worker thread once the loop is running.
    """
    try:
        return _load(policy_dir, enforce_new_defaults, remote or RemoteChecks())
    except RecursionError:
        # Every known way to nest deeply is bounded before it recurses; this is the
        # backstop that keeps any other one a load error rather than a crash.
        raise PolicyLoadError([f"{policy_dir}: a rule is nested too deeply to evaluate"]) from None


def _load(policy_dir: Path, enforce_new_defaults: bool, remote: RemoteChecks) -> LoadedPolicy:
    stamp = fingerprint(policy_dir)
    files = tuple(read_policy_file(path) for path in policy_paths(policy_dir))
    problems: list[str] = []
    merged: dict[str, Any] = {}
    defined_in: dict[str, str] = {}  # rule -> the file whose value oslo keeps (the last)
    for policy_file in files:
        where = str(policy_file.path.relative_to(policy_dir))
        if policy_file.error:
            problems.append(f"{where}: {policy_file.error}")
            continue
        for name, value in policy_file.rules.items():
            problems.extend(f"{where}: {name}: {problem}" for problem in value_problems(value))
            merged[name] = value
            defined_in[name] = where
    if problems:
        raise PolicyLoadError(problems)

    conf = _private_conf()
    enforcer = _Enforcer(conf, policy_file=str(policy_dir / POLICY_FILE))
    conf.set_override("policy_dirs", [str(policy_dir / POLICY_SUBDIR)], group="oslo_policy")
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="oslo_policy")
    remote.apply(conf)
    # oslo.policy warns through the warnings module (process-global, not thread-safe to
    # capture); we log the same facts ourselves below.
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    enforcer.register_defaults(REGISTERED)
    try:
        enforcer.load_rules(force_reload=True)
    except Exception as exc:
        # oslo reads the files again: one replaced since our read may hold anything.
        if fingerprint(policy_dir) != stamp:
            raise ChangedWhileLoading() from exc
        raise PolicyLoadError([f"oslo.policy could not load the files: {exc!r}"]) from exc
    # From here on oslo never looks at the files again: no stat per enforce().
    enforcer.use_conf = False
    loaded_raw = {name: rule.check_str for name, rule in enforcer.file_rules.items()}
    if loaded_raw != merged:
        raise ChangedWhileLoading()

    compiler = Compiler(enforcer.rules, enforcer)
    predicates: dict[str, Predicate] = {}
    by_oslo: set[str] = set()
    for name in enforcer.rules:
        try:
            compiled = compiler.compiled(name)
        except PolicyLoadError as exc:
            # The compiler names the rule; say which file it comes from.
            source = defined_in.get(exc.rule or "")
            if source is None:
                raise
            raise PolicyLoadError([f"{source}: {p}" for p in exc.problems], exc.rule) from None
        if compiled is not None:
            predicates[name], shape = compiled
            if shape.by_oslo:
                by_oslo.add(name)
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
        by_oslo=frozenset(by_oslo),
        default_by_oslo=isinstance(default_name, str) and default_name in by_oslo,
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
