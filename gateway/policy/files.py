"""Strict reading of policy files: which files, in oslo's order, and are their rules valid.

Owns the file list, its fingerprint and the check-string validation; it must never decide a
call, nor let oslo.policy log an unparsable check string and quietly turn it into "deny".

oslo.policy logs a check string it cannot parse and turns it into "deny"; the gateway
refuses the whole file instead and keeps the last good policy. Hostile files are bounded
before oslo's recursive parser sees them: a file's size, and how deeply a check string nests.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_policy import _checks, _parser, policy

from gateway.watch import Marks, marks

POLICY_FILE = "policy.yaml"
POLICY_SUBDIR = "policy.d"

# Bounds on what one policy may hold (README "Policy"). Nova's own rules nest 5 levels (8
# with the deprecated defaults OR'd in) and evaluate at most 10 checks; oslo.policy itself
# fails (raises) somewhere beyond ~340 levels, depending on the caller's stack, so the
# depth bound keeps every accepted rule far inside what oslo evaluates as written.
MAX_RULE_DEPTH = 100  # nested checks from a rule's root to a leaf, through rule: references
MAX_RULE_CHECKS = 10_000  # checks one decision may evaluate, each rule: reference in full
MAX_FILE_BYTES = 1 << 20  # one policy file
# PyYAML scans nested flow collections ([ and {) in time quadratic in their depth, and
# composes them recursively; a policy file needs three levels (the legacy list form).
MAX_YAML_NESTING = 64

Fingerprint = Marks


class PolicyLoadError(Exception):
    """The policy files cannot be used as they are; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[str], rule: str | None = None) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)
        self.rule = rule  # the one rule at fault, when there is one


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


def fingerprint(policy_dir: Path) -> Fingerprint:
    """What changes when a policy file is edited, added or removed (no file is read)."""
    return marks(policy_paths(policy_dir))


def read_policy_file(path: Path) -> PolicyFile:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        data = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return PolicyFile(path, {}, f"cannot read: {exc}")
    if len(raw) > MAX_FILE_BYTES:
        return PolicyFile(path, {}, f"larger than {MAX_FILE_BYTES} bytes")
    if _flow_nesting(data) > MAX_YAML_NESTING:
        return PolicyFile(
            path, {}, f"YAML error: collections nested more than {MAX_YAML_NESTING} deep"
        )
    try:
        parsed = policy.parse_file_contents(data)
    except ValueError as exc:
        return PolicyFile(path, {}, f"YAML error: {exc}")
    except RecursionError:  # PyYAML composes nested collections recursively
        return PolicyFile(path, {}, "YAML error: collections nested too deeply")
    if not isinstance(parsed, dict) or not all(isinstance(key, str) for key in parsed):
        return PolicyFile(path, {}, "not a mapping of rule names to check strings")
    return PolicyFile(path, parsed)


_BRACKETS = re.compile(r"[\[\]{}]")


def _flow_nesting(text: str) -> int:
    """How deeply ``[`` and ``{`` nest, quotes and comments not understood: an upper bound
    (an unclosed bracket in a comment counts too), taken before PyYAML scans the text."""
    depth = deepest = 0
    for found in _BRACKETS.finditer(text):
        char = found.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


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


def parser_nesting(text: str) -> int:
    """An upper bound on how deeply oslo's parser (and the tree it builds) nests ``text``.

    oslo's shift-reduce parser recurses once per pending reduction; what can be pending is
    the ``not`` waiting for their operand and up to three items per open parenthesis. This
    scan counts those, without recursion, so nothing unbounded reaches the parser.
    """
    pending_nots = [0]  # per open parenthesis level
    deepest = 0
    for raw in text.split():
        token = raw
        while token.startswith("("):
            pending_nots.append(0)
            token = token[1:]
        closing = len(token) - len(token.rstrip(")"))
        token = token[: len(token) - closing]
        if token.lower() == "not":
            pending_nots[-1] += 1
        elif token and token.lower() not in ("and", "or"):
            pending_nots[-1] = 0  # a check: the nots before it reduce onto it
        deepest = max(deepest, sum(pending_nots) + 3 * len(pending_nots))
        for _ in range(closing):
            if len(pending_nots) > 1:
                pending_nots.pop()
            pending_nots[-1] = 0  # the group is a check of the enclosing level
    return deepest


# The scan counts three items per level of parentheses (the outermost included), where the
# tree usually nests one or two: a few levels of slack. oslo.policy itself recurses over
# the parsed tree (str(), ==) at load: the bound keeps that far from the stack's end.
_PARSER_NESTING_LIMIT = MAX_RULE_DEPTH + 10


def _text_problems(text: str) -> list[str]:
    problems: list[str] = []
    if parser_nesting(text) > _PARSER_NESTING_LIMIT:
        # Refused before oslo's recursive parser sees it.
        return [f"nests 'not' and parentheses more than {MAX_RULE_DEPTH} levels deep"]
    tokens = text.split()
    checks = sum(token.strip("()").lower() not in ("", "and", "or", "not") for token in tokens)
    if checks > MAX_RULE_CHECKS:
        return [f"holds more than {MAX_RULE_CHECKS} checks"]
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
        # YAML aliases can repeat one list many times: count before walking them.
        sizes = (len(inner) if isinstance(inner, list) else 1 for inner in value)
        if sum(sizes) > MAX_RULE_CHECKS:
            return [f"holds more than {MAX_RULE_CHECKS} checks"]
        for inner in value:
            items = [inner] if isinstance(inner, str) else inner
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                return [f"{value!r}: the list form holds strings or lists of strings"]
            for item in items:
                problems.extend(_token_problems(item))
        return problems
    return [f"{value!r} is not a check string"]
