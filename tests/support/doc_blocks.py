"""Shell examples of the documentation, as tests run them: the ``sh`` blocks between two
markers, each followed (optionally) by the ``text`` block it must print.

Owns reading and matching those blocks; it must never run anything itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BLOCK = re.compile(r"```(sh|text)\n(.*?)```", re.DOTALL)


@dataclass
class Step:
    commands: str
    expected: str | None


def steps(text: str, start: str, end: str) -> list[Step]:
    """Every sh block between the markers, with the text block that follows it."""
    section = text.split(start, 1)[1].split(end, 1)[0]
    found: list[Step] = []
    for match in BLOCK.finditer(section):
        kind, body = match.groups()
        if kind == "sh":
            found.append(Step(body, None))
        else:
            assert found and found[-1].expected is None, "a text block follows its sh block"
            found[-1].expected = body
    return found


def matches(expected: str, actual: str) -> bool:
    """Line by line, ``...`` standing for any text within a line."""
    wanted, seen = expected.rstrip("\n").splitlines(), actual.rstrip("\n").splitlines()
    if len(wanted) != len(seen):
        return False
    for pattern, line in zip(wanted, seen, strict=True):
        regex = ".*".join(re.escape(part) for part in pattern.split("..."))
        if not re.fullmatch(regex, line):
            return False
    return True
