"""Site policy: Nova's rules with oslo.policy semantics, decided per call, reloaded from files.

Owns loading policy.yaml + policy.d (Nova's file format), which rules apply to a call and the
decision; it must never read or stat a file per decision nor block the event loop on I/O.

Decisions use a compiled form of the rules oslo.policy loaded (same tree, same semantics,
without oslo's per-node ``inspect`` cost); checks oslo defines beyond role/rule/generic
(``http:``, plugins) are still evaluated by oslo itself.

Writing site rules (in ``policy.d/*.yaml``, or ``policy.yaml``)
----------------------------------------------------------------
The target a rule sees holds Nova's keys plus flat, dotted keys the gateway adds:

* ``project_id``, ``user_id``: the server's (Nova's own target). For the console actions,
  which Nova checks before reading the server, the caller's own.
* ``server.status``, ``server.vm_state``, ``server.task_state``, ``server.locked``,
  ``server.flavor``, ``server.image``: the server as the gateway read it.
* ``action``: the body key (``reboot``); ``microversion``: the request's, e.g. ``2.73``.
* ``action.<field>``: each top-level field of the action's value, as sent (``action.type``
  for reboot, ``action.flavorRef`` for resize). The field Nova upper-cases before use
  (reboot's ``type``) is upper-cased here too, so ``hard`` cannot dodge a ``'HARD'`` rule.

How to compare a target value: put the literal on the LEFT, the target key on the right::

    'HARD':%(action.type)s          'ACTIVE':%(server.status)s       True:%(server.locked)s

* The left side is never interpolated. ``%(server.status)s:ACTIVE`` is not a comparison:
  oslo.policy evaluates it by ``ast.literal_eval('%(server.status)s')``, which raises
  (Nova answers 500). The loader refuses such a file; ``policy lint`` explains the fix.
* A left side that is not a literal is a path into the caller's credentials:
  ``project_id:%(project_id)s`` compares the caller's project with the server's.
* Values compare as text, case-sensitively: ``True``/``None``/``5`` for JSON true/null/5.
* A check naming a key the target lacks is False, so ``not <check>`` on it is True: prefer
  allow-lists, or test presence. ``'':%(action.locked_reason).0s`` is true exactly when the
  key is present (``.0s`` formats any value as the empty string).
* Tokens are split on whitespace and parentheses at their ends group, so a literal can hold
  neither a space nor a leading ``(`` / trailing ``)``.
* Overriding a rule's deprecated name (e.g. ``os_compute_api:os-rescue``, the old name of
  ``os-unrescue``) also overrides the new rule unless the file sets it too (oslo.policy).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import enum
import os
import threading
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import structlog
from oslo_config import cfg
from oslo_policy import _checks, _parser, policy

from gateway.catalogue import ActionSpec, PolicyRule, Target, When
from gateway.identity import Credentials
from gateway.policy_defaults import DEFAULTS, GATEWAY_RULES
from gateway.types import Version, v

log = structlog.get_logger(__name__)

POLICY_FILE = "policy.yaml"
POLICY_SUBDIR = "policy.d"
SERVER_KEYS = ("status", "vm_state", "task_state", "locked", "flavor", "image")

_TRUSTED_CERTS_FROM = v("2.63")
_UNSHELVE_TO_HOST_FROM = v("2.91")


class Outcome(enum.Enum):
    ALLOWED = "allowed"
    DENIED = "denied"
    WOULD_DENY = "would_deny"  # a dry-run rule refused: reported, not enforced


class Reason(enum.Enum):
    """Why a rule refused (None on a verdict that allowed)."""

    POLICY = "the check string did not match"
    SCOPE = "the token's scope (system or domain) is not one the rule allows"
    UNKNOWN_RULE = "no such rule and no 'default' rule"
    ERROR = "the check raised while being evaluated"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    rule: str  # the rule that decided
    reason: Reason | None = None

    @property
    def allowed(self) -> bool:
        """True unless enforced: a dry-run "would deny" lets the call through."""
        return self.outcome is not Outcome.DENIED

    def __bool__(self) -> bool:
        # A verdict object is always truthy; ``if verdict:`` would silently allow.
        raise TypeError("use Verdict.allowed (or .outcome), not the verdict's truth value")


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on a whole call: the first refusal among the fatal rules, else an allow."""

    verdict: Verdict
    each: tuple[tuple[PolicyRule, Verdict], ...]

    @property
    def allowed(self) -> bool:
        return self.verdict.allowed

    def __bool__(self) -> bool:
        raise TypeError("use Decision.allowed, not the decision's truth value")


class PolicyLoadError(Exception):
    """The policy files cannot be used as they are; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


class _ChangedWhileLoading(Exception):
    """A file changed between our read and oslo.policy's; the next poll tries again."""


# --------------------------------------------------------------------------------------
# Which rules apply to a call, and the target they see (pure; the pipeline reuses them).


def _declares_host(spec: ActionSpec, version: Version) -> bool:
    # Nova reads ``host`` only where the version's schema declares it (migrate from 2.56;
    # before that the migrate value is not even validated and a host in it is ignored).
    schema_range = spec.schema_for(version)
    if schema_range is None or schema_range.schema is None:
        return False
    value_schema = schema_range.schema.get("properties", {}).get(spec.key, {})
    return isinstance(value_schema, Mapping) and "host" in value_schema.get("properties", {})


def _host_given(spec: ActionSpec, body_value: Any, version: Version) -> bool:
    return (
        isinstance(body_value, Mapping)
        and bool(body_value.get("host"))
        and _declares_host(spec, version)
    )


def rules_for(
    spec: ActionSpec,
    body_value: Any,
    version: Version,
    server_image: Any,
    locked_by: str | None,
    caller_project: str | None,
    server_project: str | None,
    *,
    include_response_view: bool = False,
) -> list[PolicyRule]:
    """The catalogue rules Nova checks for this call, in Nova's order.

    ``server_image`` is the server's ``image`` as GET returns it ("" when volume-backed;
    an unknown image counts as volume-backed so the stricter rule set applies).
    ``locked_by`` is "owner", "admin" or None. Response-view rules never refuse; they are
    listed only with ``include_response_view``.
    """
    host = _host_given(spec, body_value, version)
    conditions = {
        When.ALWAYS: True,
        When.TRUSTED_CERTS_GIVEN: version >= _TRUSTED_CERTS_FROM
        and isinstance(body_value, Mapping)
        and "trusted_image_certificates" in body_value,
        When.HOST_ABSENT: not host,
        When.HOST_GIVEN: host,
        When.UNSHELVE_TO_HOST: version >= _UNSHELVE_TO_HOST_FROM
        and isinstance(body_value, Mapping)
        and bool(body_value.get("host")),
        When.VOLUME_BACKED: not server_image,
        # Nova's is_expected_locked_by: the unlocker must match who locked it.
        When.LOCKED_BY_OTHER: bool(locked_by)
        and locked_by != ("owner" if caller_project == server_project else "admin"),
        When.RESPONSE_VIEW: include_response_view,
    }
    return [rule for rule in spec.policies if conditions[rule.when]]


def build_target(
    spec: ActionSpec,
    body_value: Any,
    version: Version,
    *,
    project_id: str | None,
    user_id: str | None,
    server: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The policy target: Nova's keys plus the flat keys site rules use (module docstring).

    ``server`` holds any of SERVER_KEYS; a key left out stays out of the target (checks on
    it are False), a None value is the text ``None``. ``project_id``/``user_id`` that are
    None are left out, as Nova passes ``{}`` for a floating IP with no server.
    """
    target: dict[str, Any] = {"action": spec.key, "microversion": str(version)}
    if project_id is not None:
        target["project_id"] = project_id
    if user_id is not None:
        target["user_id"] = user_id
    if server:
        for key in SERVER_KEYS:
            if key in server:
                target[f"server.{key}"] = server[key]
    if isinstance(body_value, Mapping):
        upper_field = spec.states_by[0] if spec.states_by else None
        for field_name, value in body_value.items():
            if field_name == upper_field and isinstance(value, str):
                value = value.upper()
            target[f"action.{field_name}"] = value
    return target


# --------------------------------------------------------------------------------------
# Strict reading of policy files. oslo.policy logs an unparsable check string and turns it
# into "deny"; the gateway refuses the whole file instead and keeps the last good policy.


@dataclass(frozen=True)
class PolicyFile:
    path: Path
    rules: Mapping[str, Any]  # rule name -> check string (or oslo's legacy list form)
    error: str | None = None  # the file could not be read or is not a YAML mapping


def policy_paths(policy_dir: Path) -> list[Path]:
    """The files oslo.policy reads, in its order: policy.yaml, then every non-hidden file
    of policy.d (any extension, as oslo does), sorted by name."""
    paths = []
    main = policy_dir / POLICY_FILE
    if main.is_file():
        paths.append(main)
    subdir = policy_dir / POLICY_SUBDIR
    if subdir.is_dir():
        names = sorted(next(os.walk(subdir))[2])
        paths.extend(subdir / name for name in names if not name.startswith("."))
    return paths


def _fingerprint(policy_dir: Path) -> tuple[tuple[str, int, int, int], ...]:
    entries = []
    for path in policy_paths(policy_dir):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(entries)


def read_policy_file(path: Path) -> PolicyFile:
    try:
        data = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return PolicyFile(path, {}, f"cannot read: {exc}")
    try:
        parsed = policy.parse_file_contents(data)
    except ValueError as exc:
        return PolicyFile(path, {}, f"YAML error: {exc}")
    if not isinstance(parsed, dict) or not all(isinstance(key, str) for key in parsed):
        return PolicyFile(path, {}, "not a mapping of rule names to check strings")
    return PolicyFile(path, parsed)


def _token_problems(token: str) -> list[str]:
    # Mirrors oslo's _parse_check: a check is '!', '@' or kind:match; anything else is
    # logged by oslo and silently becomes "deny".
    if token in ("!", "@"):
        return []
    if ":" not in token:
        return [f"{token!r} is not a check (expected kind:match, '@' or '!')"]
    kind, match = token.split(":", 1)
    problems = []
    try:
        match % _AnyTarget()
    except (ValueError, TypeError) as exc:
        # oslo formats the right side with the target at every check and would raise.
        problems.append(f"right side of {token!r} is not a %(key)s template: {exc}")
    if kind in _checks.registered_checks or kind in _checks.get_extensions():
        return problems
    try:
        ast.literal_eval(kind)
    except ValueError:
        pass  # a credential path such as project_id or user.domain_id
    except (SyntaxError, TypeError, MemoryError, RecursionError):
        problems.append(
            f"left side {kind!r} of {token!r} is neither a literal nor a credential path "
            f"(oslo.policy raises on it); put the literal first, e.g. 'VALUE':%(key)s"
        )
    return problems


class _AnyTarget(dict[str, int]):
    """A target with every key; 0 formats under every conversion (%s, %d, %x...), so
    only a malformed template fails, not one that expects a number."""

    def __missing__(self, key: str) -> int:
        return 0


def _text_problems(text: str) -> list[str]:
    problems: list[str] = []
    tokens = text.split()
    for raw in tokens:
        token = raw.lstrip("(")
        # Quoted tokens are string tokens to oslo's tokenizer, not checks.
        if len(token) >= 2 and (token[0], token[-1]) in (('"', '"'), ("'", "'")):
            continue
        token = token.rstrip(")")
        if token and token.lower() not in ("and", "or", "not"):
            problems.extend(_token_problems(token))
    if problems or not tokens:
        return problems
    # The grammar: oslo's own parser, driven directly so a failure is reported to us
    # rather than logged by oslo and replaced with "deny".
    state = _parser.ParseState()
    for parsed_token in _parser._parse_tokenize(text):
        state.shift(parsed_token)
    try:
        state.result  # noqa: B018 - the property raises when the rule does not reduce
    except ValueError:
        problems.append(f"cannot parse {text!r} (unbalanced parentheses or operators?)")
    return problems


def value_problems(value: Any) -> list[str]:
    """Why oslo.policy would not understand this check string; [] when it would."""
    if value is None:
        return []  # oslo reads an empty value as "" = allow everyone; lint warns about it
    if isinstance(value, str):
        return _text_problems(value)
    if isinstance(value, list):
        # oslo's legacy list form: OR of ANDs of single checks, never tokenized.
        problems = []
        for inner in value:
            items = [inner] if isinstance(inner, str) else inner
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                return [f"{value!r}: the list form holds strings or lists of strings"]
            for item in items:
                problems.extend(_token_problems(item))
        return problems
    return [f"{value!r} is not a check string"]


# --------------------------------------------------------------------------------------
# Compilation of oslo's check trees into plain closures with the same semantics.

_Pred = Callable[[Mapping[str, Any], MutableMapping[str, Any], frozenset[str]], bool]


def _allow(
    target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
) -> bool:
    return True


def _deny(
    target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
) -> bool:
    return False


class PolicyEvaluationError(Exception):
    """A check cannot be evaluated (oslo.policy would raise too); the call is refused."""


class _Compiler:
    """Turns ``Rules`` into predicates ``(target, creds, lowered roles) -> bool``.

    oslo.policy spends most of an enforce() in ``inspect.getfullargspec`` for every node;
    the closures below do what each built-in check's ``__call__`` does, nothing else.
    """

    def __init__(self, rules: policy.Rules, enforcer: policy.Enforcer) -> None:
        self._rules = rules
        self._enforcer = enforcer
        self._done: dict[str, _Pred] = {}
        self._active: list[str] = []

    def rule(self, name: str) -> _Pred | None:
        """The named rule as oslo's ``Rules[name]`` resolves it (incl. the default rule)."""
        if name in self._done:
            return self._done[name]
        if name not in self._rules:
            default = self._rules.default_rule
            if isinstance(default, _checks.BaseCheck):
                return self.node(default, name)
            if isinstance(default, str) and default in self._rules and default != name:
                return self.rule(default)
            return None
        if name in self._active:
            cycle = " -> ".join([*self._active[self._active.index(name) :], name])
            raise PolicyLoadError([f"rules refer to each other in a cycle: {cycle}"])
        self._active.append(name)
        try:
            pred = self.node(self._rules[name], name)
        finally:
            self._active.pop()
        self._done[name] = pred
        return pred

    def node(self, check: _checks.BaseCheck, current: str) -> _Pred:
        # Exact types only: a subclass may change __call__, so it goes to oslo.
        kind = type(check)
        if kind is _checks.TrueCheck:
            return _allow
        if kind is _checks.FalseCheck:
            return _deny
        if kind is _checks.AndCheck or kind is _checks.OrCheck:
            branches = cast("_checks.AndCheck | _checks.OrCheck", check).rules
            parts = tuple(self.node(part, current) for part in branches)
            return _all_of(parts) if kind is _checks.AndCheck else _any_of(parts)
        if kind is _checks.NotCheck:
            return _not(self.node(cast(_checks.NotCheck, check).rule, current))
        if kind is _checks.RuleCheck:
            return self.rule(cast(_checks.RuleCheck, check).match) or _deny
        if kind is _checks.RoleCheck:
            return _role(cast(_checks.RoleCheck, check).match)
        if kind is _checks.GenericCheck:
            generic = cast(_checks.GenericCheck, check)
            return _generic(generic.kind, generic.match)
        return self._by_oslo(check, current)

    def _by_oslo(self, check: _checks.BaseCheck, current: str) -> _Pred:
        # http:/https: checks and plugin checks: let oslo evaluate them as it would.
        enforcer = self._enforcer

        def pred(
            target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
        ) -> bool:
            return bool(_checks._check(check, target, creds, enforcer, current))

        return pred


def _all_of(parts: tuple[_Pred, ...]) -> _Pred:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r: first(t, c, r) and second(t, c, r)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        return all(part(target, creds, roles) for part in parts)

    return pred


def _any_of(parts: tuple[_Pred, ...]) -> _Pred:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r: first(t, c, r) or second(t, c, r)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        return any(part(target, creds, roles) for part in parts)

    return pred


def _not(inner: _Pred) -> _Pred:
    return lambda t, c, r: not inner(t, c, r)


def _role(match: str) -> _Pred:
    if "%" not in match:
        wanted = match.lower()
        return lambda t, c, r: wanted in r

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        try:
            wanted = match % target
        except KeyError:
            return False
        return wanted.lower() in roles

    return pred


def _generic(kind: str, match: str) -> _Pred:
    formatted = "%" in match
    try:
        literal: str | None = str(ast.literal_eval(kind))
    except ValueError:
        literal = None
    except Exception as exc:  # SyntaxError & co: oslo raises at every evaluation
        failure = exc

        def broken(
            target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
        ) -> bool:
            if formatted:
                try:
                    match % target
                except KeyError:
                    return False
            raise PolicyEvaluationError(f"{kind}:{match}: {failure}")

        return broken

    if literal is not None:
        if not formatted:
            return _allow if match == literal else _deny
        expected = literal

        def compare(
            target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
        ) -> bool:
            try:
                return bool(match % target == expected)
            except KeyError:
                return False

        return compare

    path = kind.split(".")
    find = _checks.GenericCheck._find_in_dict

    def lookup(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        if formatted:
            try:
                value = match % target
            except KeyError:
                return False
        else:
            value = match
        return find(creds, path, value)

    return lookup


# --------------------------------------------------------------------------------------
# Loading: our strict read, then oslo.policy's own merge (deprecated names, new defaults).


@dataclass(frozen=True)
class LoadedPolicy:
    """One immutable policy generation; decisions read it without locks."""

    enforcer: policy.Enforcer
    predicates: Mapping[str, _Pred]
    scope_types: Mapping[str, frozenset[str]]
    fingerprint: tuple[tuple[str, int, int, int], ...]
    files: tuple[PolicyFile, ...]
    default: _Pred | None  # the 'default' rule, for names no rule defines

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
    fingerprint = _fingerprint(policy_dir)
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
        raise _ChangedWhileLoading()

    compiler = _Compiler(enforcer.rules, enforcer)
    predicates: dict[str, _Pred] = {}
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
    return LoadedPolicy(
        enforcer=enforcer,
        predicates=predicates,
        scope_types=scope_types,
        fingerprint=fingerprint,
        files=files,
        default=predicates.get(default_name) if isinstance(default_name, str) else None,
    )


# --------------------------------------------------------------------------------------


def _policy_values(credentials: Credentials) -> tuple[dict[str, Any], frozenset[str]]:
    creds: dict[str, Any] = credentials.policy_credentials()
    # What Enforcer.enforce() adds before checking: scope reads creds['system'].
    if creds.get("system_scope"):
        creds["system"] = creds["system_scope"]
    # RoleCheck compares lower-cased; lowering once per call, not per node.
    return creds, frozenset(role.lower() for role in credentials.roles)


def _token_scope(creds: Mapping[str, Any]) -> str:
    # oslo.policy's Enforcer._enforce_scope, which reads creds['system'] (set from
    # system_scope by enforce()) before domain_id.
    if creds.get("system"):
        return "system"
    if creds.get("domain_id"):
        return "domain"
    return "project"


class PolicyEngine:
    """Decides rules for the gateway; reloads its files in the background when they change.

    Construction loads the policy synchronously and raises PolicyLoadError if it is broken:
    starting with Nova's defaults instead of the operator's stricter site rules would
    silently open what the site closed.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        group = conf.policy
        self._conf = conf
        self._dir = Path(group.policy_dir).expanduser().absolute()
        self._enforce_scope = bool(group.enforce_scope)
        self._enforce_new_defaults = bool(group.enforce_new_defaults)
        self._interval = float(group.reload_interval)
        self._dry_run = frozenset(group.dry_run_rules)
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._failed_fingerprint: tuple[tuple[str, int, int, int], ...] | None = None
        self.reload_failures = 0
        self.reloads = 0
        self.last_reload_ok = True
        self.last_error: str | None = None
        if not self._dir.is_dir():
            log.warning(
                "policy directory missing: Nova's defaults apply", policy_dir=str(self._dir)
            )
        self._policy = self._initial_load()

    def _initial_load(self, attempts: int = 3) -> LoadedPolicy:
        for _ in range(attempts):
            try:
                return load_policy(self._dir, enforce_new_defaults=self._enforce_new_defaults)
            except _ChangedWhileLoading:
                continue  # being written right now; read it again
        raise PolicyLoadError([f"{self._dir}: the policy files kept changing while read"])

    @property
    def policy_dir(self) -> Path:
        return self._dir

    @property
    def loaded(self) -> LoadedPolicy:
        return self._policy

    @property
    def dry_run_rules(self) -> frozenset[str]:
        return self._dry_run

    # -- decisions ---------------------------------------------------------------------

    def decide(self, rule: str, target: Mapping[str, Any], credentials: Credentials) -> Verdict:
        """Nova's ``context.can(rule, target)``, as a verdict instead of an exception."""
        creds, roles = _policy_values(credentials)
        return self._decide(self._policy, rule, target, creds, roles)

    def _decide(
        self,
        loaded: LoadedPolicy,
        rule: str,
        target: Mapping[str, Any],
        creds: MutableMapping[str, Any],
        roles: frozenset[str],
    ) -> Verdict:
        reason: Reason | None = None
        pred = loaded.predicates.get(rule) or loaded.default
        scopes = loaded.scope_types.get(rule)
        if pred is None:
            reason = Reason.UNKNOWN_RULE
        elif scopes is not None and _token_scope(creds) not in scopes:
            if self._enforce_scope:
                reason = Reason.SCOPE
            else:
                log.warning(
                    "policy scope mismatch not enforced", rule=rule, scope=_token_scope(creds)
                )
        if reason is None and pred is not None:
            try:
                if not pred(target, creds, roles):
                    reason = Reason.POLICY
            except Exception as exc:  # fail closed, whatever a check raised
                log.error("policy check failed to evaluate", rule=rule, error=str(exc))
                reason = Reason.ERROR
        if reason is None:
            return Verdict(Outcome.ALLOWED, rule)
        if rule in self._dry_run:
            return Verdict(Outcome.WOULD_DENY, rule, reason)
        return Verdict(Outcome.DENIED, rule, reason)

    def decide_all(
        self,
        rules: Iterable[PolicyRule],
        target: Mapping[str, Any],
        credentials: Credentials,
        *,
        caller_target: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Every rule's verdict, and the one that decides the call.

        Rules with Target.CALLER see ``caller_target`` (default: ``target``). The deciding
        verdict is the first fatal denial (Nova stops there), else the first "would deny",
        else the last fatal allow. Response-view rules are reported but never decide.
        """
        each = tuple(
            (
                rule,
                self.decide(
                    rule.name,
                    caller_target
                    if rule.target is Target.CALLER and caller_target is not None
                    else target,
                    credentials,
                ),
            )
            for rule in rules
        )
        fatal = [verdict for rule, verdict in each if rule.fatal]
        deciding = Verdict(Outcome.ALLOWED, fatal[-1].rule if fatal else "")
        for outcome in (Outcome.DENIED, Outcome.WOULD_DENY):
            first = next((verdict for verdict in fatal if verdict.outcome is outcome), None)
            if first is not None:
                deciding = first
                break
        return Decision(deciding, each)

    def is_admin(self, credentials: Credentials) -> bool:
        """Nova's ``context.is_admin``: the ``context_is_admin`` rule with the caller's own
        values as the target (as nova.policy.check_is_admin does). Never dry-run."""
        creds, roles = _policy_values(credentials)
        pred = self._policy.predicates.get("context_is_admin")
        if pred is None:
            return False
        try:
            return pred(creds, creds, roles)
        except Exception as exc:
            log.error("policy check failed to evaluate", rule="context_is_admin", error=str(exc))
            return False

    # -- reloading ---------------------------------------------------------------------

    def poll(self) -> bool:
        """Blocking: reload if a policy file changed (mtime, size, inode, added, removed).

        True when a new policy was applied. A broken file keeps the last good policy,
        counts once in ``reload_failures`` and sets ``last_reload_ok`` False until a good
        load. Run it in a worker thread (``maybe_reload``) once the loop is running.
        """
        with self._lock:
            self._dry_run = frozenset(self._conf.policy.dry_run_rules)
            fingerprint = _fingerprint(self._dir)
            if fingerprint in (self._policy.fingerprint, self._failed_fingerprint):
                return False
            try:
                loaded = load_policy(self._dir, enforce_new_defaults=self._enforce_new_defaults)
            except _ChangedWhileLoading:
                return False  # not recorded: the next poll sees a new fingerprint
            except PolicyLoadError as exc:
                self._failed_fingerprint = fingerprint
                self.reload_failures += 1
                self.last_reload_ok = False
                self.last_error = str(exc)
                log.error(
                    "policy reload failed; keeping the last good policy",
                    policy_dir=str(self._dir),
                    problems=list(exc.problems),
                    reload_failures=self.reload_failures,
                )
                return False
            self._policy = loaded
            self._failed_fingerprint = None
            self.reloads += 1
            self.last_reload_ok = True
            self.last_error = None
            log.info(
                "policy reloaded",
                policy_dir=str(self._dir),
                files=[str(f.path.name) for f in loaded.files],
                overrides=len(loaded.enforcer.file_rules),
            )
            return True

    async def maybe_reload(self) -> bool:
        """``poll`` off the event loop."""
        return await asyncio.to_thread(self.poll)

    async def start(self) -> None:
        """Check the files every ``reload_interval`` seconds until ``stop``."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="policy-reload")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.maybe_reload()
            except Exception:  # the watcher must outlive any surprise
                log.exception("policy reload check crashed", policy_dir=str(self._dir))
