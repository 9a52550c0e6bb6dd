"""Compilation of oslo.policy's check trees into plain closures with oslo's semantics.

Owns the closures (role, rule, generic, is_admin, and/or/not), the hand-off of other
checks to oslo, and the bounds on a rule's depth and size; it must never read files nor
answer differently from oslo's own checks.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

from oslo_policy import _checks, policy

from gateway.policy.files import MAX_RULE_CHECKS, MAX_RULE_DEPTH, PolicyLoadError

# Importing it registers Nova's is_admin check kind, before any policy file is parsed.
from gateway.policy.nova_checks import IsAdminCheck
from gateway.policy.target import remote_target

# (target, creds, lower-cased roles, the name of the rule being enforced) -> allowed.
# The enforced rule's name travels down the whole tree, as oslo's current_rule does: a
# remote check receives it, wherever in the tree (or in which referenced rule) it sits.
Predicate = Callable[[Mapping[str, Any], MutableMapping[str, Any], frozenset[str], str], bool]


def _allow(
    target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
) -> bool:
    return True


def _deny(
    target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
) -> bool:
    return False


class PolicyEvaluationError(Exception):
    """A check cannot be evaluated (oslo.policy would raise too); the call is refused."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What a compiled tree is: its depth, how many checks it may evaluate, whether it
    hands a check to oslo (remote ``http:`` checks, plugins: possibly blocking I/O)."""

    depth: int
    checks: int
    by_oslo: bool


_LEAF = Shape(1, 1, False)


class _TooDeep(Exception):
    """Raised while descending, before Python's own stack could run out."""


class Compiler:
    """Turns ``Rules`` into predicates ``(target, creds, lowered roles, rule) -> bool``.

    oslo.policy spends most of an enforce() in ``inspect.getfullargspec`` for every node;
    the closures below do what each built-in check's ``__call__`` does, nothing else.
    Every rule is bounded: at most MAX_RULE_DEPTH nested checks from its root to a leaf
    and at most MAX_RULE_CHECKS checks in one evaluation, ``rule:`` references followed
    (and counted in full each time). A rule beyond either bound is a PolicyLoadError
    naming it, raised before the recursion could exhaust the stack.
    """

    def __init__(self, rules: policy.Rules, enforcer: policy.Enforcer) -> None:
        self._rules = rules
        self._enforcer = enforcer
        self._done: dict[str, tuple[Predicate, Shape]] = {}
        self._active: list[str] = []  # rules being compiled, outermost first

    def rule(self, name: str) -> Predicate | None:
        """The named rule as oslo's ``Rules[name]`` resolves it (incl. the default rule)."""
        compiled = self.compiled(name)
        return None if compiled is None else compiled[0]

    def shape(self, name: str) -> Shape | None:
        compiled = self.compiled(name)
        return None if compiled is None else compiled[1]

    def compiled(self, name: str) -> tuple[Predicate, Shape] | None:
        try:
            return self._rule(name, 0)
        except _TooDeep:
            chain = self._active or [name]
            raise PolicyLoadError([_too_deep(chain)], rule=chain[0]) from None
        finally:
            self._active.clear()

    def _rule(self, name: str, depth: int) -> tuple[Predicate, Shape] | None:
        """``name`` compiled; ``depth`` is how deep its root sits in the outermost rule."""
        if name in self._done:
            pred, shape = self._done[name]
            if depth + shape.depth > MAX_RULE_DEPTH:
                self._active.append(name)
                raise _TooDeep()
            return pred, shape
        if name not in self._rules:
            default = self._rules.default_rule
            if isinstance(default, _checks.BaseCheck):
                return self._node(default, depth)
            if isinstance(default, str) and default in self._rules and default != name:
                return self._rule(default, depth)
            return None
        if name in self._active:
            cycle = " -> ".join([*self._active[self._active.index(name) :], name])
            raise PolicyLoadError([f"rules refer to each other in a cycle: {cycle}"], rule=name)
        self._active.append(name)
        compiled = self._node(self._rules[name], depth)
        self._active.pop()
        shape = compiled[1]
        if shape.checks > MAX_RULE_CHECKS:
            raise PolicyLoadError(
                [
                    f"{name}: may evaluate more than {MAX_RULE_CHECKS} checks in one decision "
                    "(each rule: reference counts in full)"
                ],
                rule=name,
            )
        self._done[name] = compiled
        return compiled

    def _node(self, check: _checks.BaseCheck, depth: int) -> tuple[Predicate, Shape]:
        depth += 1
        if depth > MAX_RULE_DEPTH:
            raise _TooDeep()
        # Exact types only: a subclass may change __call__, so it goes to oslo.
        kind = type(check)
        if kind is _checks.TrueCheck:
            return _allow, _LEAF
        if kind is _checks.FalseCheck:
            return _deny, _LEAF
        if kind is _checks.AndCheck or kind is _checks.OrCheck:
            branches = cast("_checks.AndCheck | _checks.OrCheck", check).rules
            compiled = [self._node(part, depth) for part in branches]
            preds = tuple(pred for pred, _ in compiled)
            shape = Shape(
                1 + max((s.depth for _, s in compiled), default=0),
                min(sum(s.checks for _, s in compiled), MAX_RULE_CHECKS + 1),
                any(s.by_oslo for _, s in compiled),
            )
            return (_all_of(preds) if kind is _checks.AndCheck else _any_of(preds)), shape
        if kind is _checks.NotCheck:
            inner, shape = self._node(cast(_checks.NotCheck, check).rule, depth)
            return _not(inner), Shape(shape.depth + 1, shape.checks, shape.by_oslo)
        if kind is _checks.RuleCheck:
            found = self._rule(cast(_checks.RuleCheck, check).match, depth)
            if found is None:
                return _deny, _LEAF  # oslo: an undefined rule fails closed
            pred, shape = found
            if shape.by_oslo:
                # oslo's RuleCheck turns a KeyError from anywhere inside the referenced
                # rule into False (meant for an undefined name, it also catches an http:
                # URL naming a key the target lacks). Compiled checks never raise one.
                pred = _key_error_is_false(pred)
            return pred, Shape(shape.depth + 1, shape.checks, shape.by_oslo)
        if kind is _checks.RoleCheck:
            return _role(cast(_checks.RoleCheck, check).match), _LEAF
        if kind is _checks.GenericCheck:
            generic = cast(_checks.GenericCheck, check)
            return _generic(generic.kind, generic.match), _LEAF
        if kind is IsAdminCheck:
            return _is_admin(cast(IsAdminCheck, check).expected), _LEAF
        return self._by_oslo(check), Shape(1, 1, True)

    def _by_oslo(self, check: _checks.BaseCheck) -> Predicate:
        # http:/https: checks and plugin checks: oslo evaluates them as it would, with the
        # name of the rule being enforced (oslo's current_rule), not the one they sit in,
        # and the target without the request body's secrets.
        enforcer = self._enforcer

        def pred(
            target: Mapping[str, Any],
            creds: MutableMapping[str, Any],
            roles: frozenset[str],
            rule: str,
        ) -> bool:
            return bool(_checks._check(check, remote_target(target), creds, enforcer, rule))

        return pred


def _too_deep(chain: list[str]) -> str:
    problem = f"{chain[0]}: nested more than {MAX_RULE_DEPTH} levels deep"
    if len(chain) == 1:
        return problem
    through = [f"rule:{name}" for name in chain[1:]]
    if len(through) > 5:
        through = [*through[:2], f"... {len(through) - 4} more ...", *through[-2:]]
    return f"{problem} (through {' -> '.join(through)})"


def _all_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r, n: first(t, c, r, n) and second(t, c, r, n)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
    ) -> bool:
        return all(part(target, creds, roles, rule) for part in parts)

    return pred


def _any_of(parts: tuple[Predicate, ...]) -> Predicate:
    if len(parts) == 2:
        first, second = parts
        return lambda t, c, r, n: first(t, c, r, n) or second(t, c, r, n)

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
    ) -> bool:
        return any(part(target, creds, roles, rule) for part in parts)

    return pred


def _key_error_is_false(inner: Predicate) -> Predicate:
    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
    ) -> bool:
        try:
            return inner(target, creds, roles, rule)
        except KeyError:
            return False

    return pred


def _not(inner: Predicate) -> Predicate:
    return lambda t, c, r, n: not inner(t, c, r, n)


def _is_admin(expected: bool) -> Predicate:
    # nova.policy.IsAdminCheck: a KeyError when the credentials lack is_admin (fails closed).
    return lambda t, c, r, n: bool(c["is_admin"] == expected)


def _role(match: str) -> Predicate:
    if "%" not in match:
        wanted = match.lower()
        return lambda t, c, r, n: wanted in r

    def pred(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
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
            target: Mapping[str, Any],
            creds: MutableMapping[str, Any],
            roles: frozenset[str],
            rule: str,
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
            target: Mapping[str, Any],
            creds: MutableMapping[str, Any],
            roles: frozenset[str],
            rule: str,
        ) -> bool:
            try:
                return bool(match % target == expected)
            except KeyError:
                return False

        return compare

    path = kind.split(".")
    find = _checks.GenericCheck._find_in_dict

    def lookup(
        target: Mapping[str, Any], creds: MutableMapping[str, Any], roles: frozenset[str], rule: str
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
