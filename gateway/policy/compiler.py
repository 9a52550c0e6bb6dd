"""Compilation of oslo.policy's check trees into plain closures with oslo's semantics.

Owns the closures (role, rule, generic, and/or/not) and the hand-off of other checks to
oslo; it must never read files nor answer differently from oslo's own checks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, cast

from oslo_policy import _checks, policy

from gateway.policy.files import PolicyLoadError

Predicate = Callable[[Mapping[str, Any], MutableMapping[str, Any], frozenset[str]], bool]


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


class Compiler:
    """Turns ``Rules`` into predicates ``(target, creds, lowered roles) -> bool``.

    oslo.policy spends most of an enforce() in ``inspect.getfullargspec`` for every node;
    the closures below do what each built-in check's ``__call__`` does, nothing else.
    """

    def __init__(self, rules: policy.Rules, enforcer: policy.Enforcer) -> None:
        self._rules = rules
        self._enforcer = enforcer
        self._done: dict[str, Predicate] = {}
        self._active: list[str] = []

    def rule(self, name: str) -> Predicate | None:
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

    def node(self, check: _checks.BaseCheck, current: str) -> Predicate:
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

    def _by_oslo(self, check: _checks.BaseCheck, current: str) -> Predicate:
        # http:/https: checks and plugin checks: let oslo evaluate them as it would.
        enforcer = self._enforcer

        def pred(
            target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
        ) -> bool:
            return bool(_checks._check(check, target, creds, enforcer, current))

        return pred


def _all_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r: first(t, c, r) and second(t, c, r)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        return all(part(target, creds, roles) for part in parts)

    return pred


def _any_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r: first(t, c, r) or second(t, c, r)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str]
    ) -> bool:
        return any(part(target, creds, roles) for part in parts)

    return pred


def _not(inner: Predicate) -> Predicate:
    return lambda t, c, r: not inner(t, c, r)


def _role(match: str) -> Predicate:
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


def _generic(kind: str, match: str) -> Predicate:
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
