"""Compute API microversions as Nova 34 reads them: the version type, the range served,
the negotiation of the two version headers and the headers every answer carries.

Owns how a request's headers become a version or a 400/406 refusal; it must never look
at a path or a body, nor import the gateway (novasim is its independent counterpart).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from novasim.faults import Fault

STANDARD_HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SERVICE = "compute"
VARY = (STANDARD_HEADER, LEGACY_HEADER)


@dataclass(frozen=True, order=True)
class Version:
    """One microversion; ordered as Nova's APIVersionRequest compares them."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def next(self) -> Version:
        return Version(self.major, self.minor + 1)

    def previous(self) -> Version:
        return Version(self.major, self.minor - 1)


OLDEST = Version(2, 1)  # nova/api/openstack/api_version_request.py _MIN_API_VERSION
NEWEST = Version(2, 104)  # ... _MAX_API_VERSION (Nova 34)

# APIVersionRequest's own pattern. It is applied to header text decoded as latin-1, as a
# WSGI server hands it to Nova, where \d can only be an ASCII digit.
_NOVA_PATTERN = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


def parse(text: str) -> Version | None:
    """The version ``text`` names, or None where Nova raises InvalidAPIVersionString."""
    found = _NOVA_PATTERN.match(text)
    return Version(int(found.group(1)), int(found.group(2))) if found else None


class VersionRefused(Fault):
    """A 400 (unreadable) or 406 (outside the range); ``echoed`` is the version Nova puts
    in the refusal's headers (only the 406 has one)."""

    def __init__(self, status: int, message: str, echoed: Version | None) -> None:
        super().__init__(status, message)
        self.echoed = echoed


RawHeaders = Iterable[tuple[bytes, bytes]]


def negotiate(raw_headers: RawHeaders) -> Version:
    """The request's version (2.1 when it names none), or VersionRefused."""
    standard: list[str] = []
    legacy: list[str] = []
    for name, value in raw_headers:
        lowered = name.lower()
        if lowered == b"openstack-api-version":
            standard.append(value.decode("latin-1").strip())
        elif lowered == b"x-openstack-nova-api-version":
            legacy.append(value.decode("latin-1").strip())
    if not standard and not legacy:
        return OLDEST
    # An empty legacy header still counts: Nova reads "" and refuses it (400).
    return _negotiated(
        ",".join(standard) if standard else None, ",".join(legacy) if legacy else None
    )


@functools.lru_cache(maxsize=1024)  # refusals are raised again on each call, never cached
def _negotiated(standard: str | None, legacy: str | None) -> Version:
    text = _requested(standard, legacy)
    if text is None:
        return OLDEST
    if text == "latest":
        return NEWEST
    version = parse(text)
    if version is None:
        raise VersionRefused(
            400,
            f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum.",
            None,
        )
    if not OLDEST <= version <= NEWEST:
        raise VersionRefused(
            406,
            f"Version {version} is not supported by the API. Minimum is {OLDEST} and "
            f"maximum is {NEWEST}.",
            version,
        )
    return version


def _requested(standard: str | None, legacy: str | None) -> str | None:
    """microversion_parse.get_version on folded headers (repeated lines joined by ',')."""
    if standard is not None:
        # The last "compute <version>" entry wins; entries of other services are skipped.
        for entry in reversed(standard.split(",")):
            words = entry.split(None, 1)
            if len(words) == 2 and words[0].lower() == SERVICE:
                return words[1].strip()
    if legacy is not None:
        return legacy.split(",")[-1].strip()
    return None


def answer_headers(version: Version) -> list[tuple[str, str]]:
    """The version headers and Vary lines Nova adds to every answer of a version."""
    return [
        (STANDARD_HEADER, f"{SERVICE} {version}"),
        (LEGACY_HEADER, str(version)),
        *(("Vary", name) for name in VARY),
    ]
