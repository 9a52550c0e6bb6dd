"""Strict reading of policy files: which files, in oslo's order, and are their rules valid.

Owns the file list, its fingerprint and the check-string validation; it must never decide a
call, nor let oslo.policy log an unparsable check string and quietly turn it into "deny".

oslo.policy logs a check string it cannot parse and turns it into "deny"; the gateway
refuses the whole file instead and keeps the last good policy.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_policy import _checks, _parser, policy

POLICY_FILE = "policy.yaml"
POLICY_SUBDIR = "policy.d"

Fingerprint = tuple[tuple[str, int, int, int], ...]


class PolicyLoadError(Exception):
    """The policy files cannot be used as they are; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


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
