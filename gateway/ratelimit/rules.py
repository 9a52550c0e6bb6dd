"""Rate-limit rules: which calls each rule counts, at what cost, with per-project overrides.

Owns the rules file format, its parsing and checking (RuleSet); it must never count a call,
touch the storage, nor accept a file whose rule could never admit anything.

Rules file (``[rate_limit] rules_file``, YAML or JSON)
------------------------------------------------------
::

    rules:
      - name: reboots                 # unique; named in the 429 message and the metrics
        limit: 10 per minute          # the `limits` notation: 10/minute, 100 per hour,
                                      # 5 per 10 seconds
        actions: [reboot]             # action keys (the body key of POST .../action;
                                      # "delete"/"update" for DELETE/PUT /servers/{id})
      - name: server-actions
        limit: 60 per minute
        methods: [POST]
        path: /servers/*/action       # after /v2.1 and an optional /{project_id};
                                      # * is one path segment, ** any number of them
      - name: writes
        limit: 120 per minute
        methods: [POST, PUT, DELETE]
        per: user                     # project (default): one counter per project;
                                      # user: one per user within the project
    costs:                            # weight of an action in every rule it counts for
      rebuild: 5
      createImage: 3
    overrides:                        # per project id: rule name -> limit or "unlimited"
      0c4e8b1e3f2a4d5c9b7a6e5d4c3b2a10:
        server-actions: 600 per minute
        reboots: unlimited

A rule counts a call when every selector it has (``methods``, ``path``, ``actions``)
matches; a rule with none counts every authenticated API call. A call counts against every
rule it matches and is refused when any of them has less left than the call's cost (its
action's cost, else 1); a refused call consumes nothing. Callers for whom the policy rule
``nova_gateway:rate_limit:exempt`` passes (default: ``rule:context_is_admin``) are not
counted.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from limits import RateLimitItem, parse

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_RULE_KEYS = frozenset({"name", "limit", "methods", "path", "actions", "per"})
_FILE_KEYS = frozenset({"rules", "costs", "overrides"})
_UNLIMITED = "unlimited"
# The verb GET /limits shows for a rule that names actions but no methods.
_VERB_OF_ACTION = {"delete": "DELETE", "update": "PUT"}


class RuleError(ValueError):
    """The rules file cannot be used; the message names the file and the entry."""


class Per(enum.Enum):
    PROJECT = "project"
    USER = "user"


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    methods: frozenset[str] = frozenset()  # empty: any method
    path: str | None = None  # the pattern as written, shown in GET /limits
    actions: frozenset[str] = frozenset()  # empty: any call, action or not
    per: Per = Per.PROJECT
    path_regex: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, method: str, path: str, action: str | None) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.actions and action not in self.actions:
            return False
        return self.path_regex is None or self.path_regex.fullmatch(path) is not None

    @property
    def verbs(self) -> list[str]:
        if self.methods:
            return sorted(self.methods)
        if self.actions:
            return sorted({_VERB_OF_ACTION.get(action, "POST") for action in self.actions})
        return ["*"]

    @property
    def uri(self) -> str:
        """The rule as Nova's legacy limits view showed a URI, e.g. ``/servers/*/action
        (reboot)``."""
        uri = self.path or "*"
        if self.actions:
            uri += " (" + ", ".join(sorted(self.actions)) + ")"
        return uri


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    costs: Mapping[str, int] = field(default_factory=dict)
    # project id -> rule name -> limit (None: unlimited for that project)
    overrides: Mapping[str, Mapping[str, RateLimitItem | None]] = field(default_factory=dict)

    def matching(self, method: str, path: str, action: str | None) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(method, path, action)]

    def limit_for(self, rule: Rule, project_id: str | None) -> RateLimitItem | None:
        """The rule's limit for this project: its override, else the rule's own."""
        if project_id is not None:
            by_rule = self.overrides.get(project_id)
            if by_rule is not None and rule.name in by_rule:
                return by_rule[rule.name]
        return rule.limit

    def cost(self, action: str | None) -> int:
        return self.costs.get(action, 1) if action is not None else 1


def path_pattern(pattern: str) -> re.Pattern[str]:
    """``/servers/*/action`` → a regex over the API path; ``*`` one segment, ``**`` any."""
    if not pattern.startswith("/"):
        raise ValueError("must start with '/'")
    escaped = re.escape(pattern.rstrip("/") or "/")
    regex = escaped.replace(r"\*\*", ".*").replace(r"\*", "[^/]+")
    return re.compile(regex)


def _limit(text: Any, where: str) -> RateLimitItem:
    if not isinstance(text, str):
        raise RuleError(f"{where}: limit must be a string such as '10 per minute'")
    try:
        item = parse(text)
    except ValueError:
        raise RuleError(
            f"{where}: {text!r} is not a limit (write e.g. '10 per minute', '5/second', "
            "'100 per 2 hours')"
        ) from None
    if item.amount < 1:
        raise RuleError(f"{where}: {text!r} admits nothing; remove the rule or write a limit")
    return item


def _names(value: Any, where: str, what: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{where}: {what} must be a list of strings")
    return frozenset(value)


def _rule(entry: Any, index: int, source: str) -> Rule:
    where = f"{source}: rules[{index}]"
    if not isinstance(entry, dict):
        raise RuleError(f"{where}: each rule is a mapping with at least name and limit")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}: 'name' is required")
    where = f"{source}: rule {name!r}"
    methods = _names(entry.get("methods", []), where, "methods")
    methods = frozenset(method.upper() for method in methods)
    if methods - _METHODS:
        raise RuleError(f"{where}: unknown method(s) {sorted(methods - _METHODS)}")
    path = entry.get("path")
    regex = None
    if path is not None:
        if not isinstance(path, str):
            raise RuleError(f"{where}: path must be a string such as /servers/*/action")
        try:
            regex = path_pattern(path)
        except ValueError as exc:
            raise RuleError(f"{where}: path {path!r} {exc}") from None
    per_text = entry.get("per", Per.PROJECT.value)
    try:
        per = Per(per_text)
    except ValueError:
        raise RuleError(f"{where}: per must be 'project' or 'user', not {per_text!r}") from None
    return Rule(
        name=name,
        limit=_limit(entry.get("limit"), where),
        methods=methods,
        path=path,
        actions=_names(entry.get("actions", []), where, "actions"),
        per=per,
        path_regex=regex,
    )


def parse_rules(data: Any, source: str = "rules") -> RuleSet:
    """The RuleSet a parsed rules document describes; RuleError names what is wrong."""
    if data is None:
        return RuleSet()
    if not isinstance(data, dict):
        raise RuleError(f"{source}: expected a mapping with 'rules', 'costs', 'overrides'")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise RuleError(
            f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}"
        )
    entries = data.get("rules") or []
    if not isinstance(entries, list):
        raise RuleError(f"{source}: 'rules' must be a list")
    rules = tuple(_rule(entry, index, source) for index, entry in enumerate(entries))
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuleError(f"{source}: rule names must be unique: {duplicates}")
    costs = data.get("costs") or {}
    if not isinstance(costs, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 1 for k, v in costs.items()
    ):
        raise RuleError(f"{source}: 'costs' maps action keys to whole numbers >= 1")
    overrides: dict[str, dict[str, RateLimitItem | None]] = {}
    raw_overrides = data.get("overrides") or {}
    if not isinstance(raw_overrides, dict):
        raise RuleError(f"{source}: 'overrides' maps project ids to {{rule name: limit}}")
    for project, by_rule in raw_overrides.items():
        where = f"{source}: overrides[{project!r}]"
        if not isinstance(by_rule, dict):
            raise RuleError(f"{where}: expected a mapping of rule name to limit")
        overrides[str(project)] = {}
        for name, text in by_rule.items():
            if name not in names:
                raise RuleError(f"{where}: no rule named {name!r}")
            overrides[str(project)][name] = (
                None if text == _UNLIMITED else _limit(text, f"{where}[{name!r}]")
            )
    ruleset = RuleSet(rules, dict(costs), overrides)
    _check_costs(ruleset, source)
    return ruleset


def _check_costs(ruleset: RuleSet, source: str) -> None:
    # A cost above a limit could never pass: refuse the file rather than the caller forever.
    for action, cost in ruleset.costs.items():
        for rule in ruleset.rules:
            if rule.actions and action not in rule.actions:
                continue
            overridden = (by_rule.get(rule.name) for by_rule in ruleset.overrides.values())
            smallest = min(limit.amount for limit in (rule.limit, *overridden) if limit is not None)
            if cost > smallest:
                raise RuleError(
                    f"{source}: cost {cost} of {action!r} exceeds rule {rule.name!r}'s limit "
                    f"of {smallest}: that action could never pass"
                )


def load_rules(path: str | None) -> RuleSet:
    """Read and check a rules file (blocking; at start-up and on SIGHUP only)."""
    if not path:
        return RuleSet()
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not YAML or JSON: {exc}") from None
    return parse_rules(data, path)
