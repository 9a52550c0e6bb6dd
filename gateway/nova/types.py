"""Small value types shared by every concern of the gateway.

Owns only plain data shapes; must never import another gateway module.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# ASCII digits only: Nova reads headers as latin-1 (WSGI), where no other digit exists;
# a bare \d would take "2.4\u0663" (an Arabic-Indic 3) as 2.43 where Nova answers 400.
_VERSION_RE = re.compile(r"^([1-9][0-9]*)\.([1-9][0-9]*|0)$")


class Version(NamedTuple):
    """A compute API microversion such as 2.73, ordered numerically."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``X.Y`` exactly as Nova's APIVersionRequest does; ValueError otherwise."""
        match = _VERSION_RE.match(text)
        if match is None:
            raise ValueError(text)
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def v(text: str) -> Version:
    """Shorthand for literal versions in data tables."""
    return Version.parse(text)
