"""Compute microversion negotiation, exactly as Nova (microversion-parse 2.x) does it.

Owns reading the version headers and the version headers of the answer; it must never
look at the body or the path.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.nova.faults import Fault
from gateway.nova.types import Version

STANDARD_HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
DEFAULT_VERSION = Version(2, 1)
SERVICE_TYPE = "compute"


def _as_wsgi(value: str) -> str:
    """A header value as a WSGI server hands it to Nova: its raw bytes read as latin-1.

    aiohttp decodes header bytes as UTF-8 (surrogateescape); read that way, a UTF-8
    no-break space would separate "compute" from "2.43" where Nova sees "computeÂ".
    """
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def _folded(values: list[str]) -> str | None:
    """Repeated headers folded with ',' as a WSGI server hands them to Nova."""
    return ",".join(_as_wsgi(value).strip() for value in values) if values else None


_STANDARD = STANDARD_HEADER.lower()
_LEGACY = LEGACY_HEADER.lower()


def requested_version_string(headers: Iterable[tuple[str, str]]) -> str | None:
    """The raw version string Nova would read, or None when no header names one."""
    standard_values: list[str] = []
    legacy_values: list[str] = []
    for key, value in headers:  # one pass for both headers
        lower = key.lower()
        if lower == _STANDARD:
            standard_values.append(value)
        elif lower == _LEGACY:
            legacy_values.append(value)
    standard = _folded(standard_values)
    if standard is not None:
        # The last entry for our service wins; entries without a version are skipped.
        for entry in reversed(standard.split(",")):
            parts = entry.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == SERVICE_TYPE:
                version = parts[1].strip()
                if version:
                    return version
    legacy = _folded(legacy_values)
    if legacy is not None:
        return legacy.split(",")[-1].strip()
    return None


def negotiate(headers: Iterable[tuple[str, str]], minimum: Version, maximum: Version) -> Version:
    """The concrete version of a request, or the Fault Nova answers (400/406)."""
    text = requested_version_string(headers)
    if text is None:
        return DEFAULT_VERSION
    if text == "latest":
        return maximum
    try:
        version = Version.parse(text)
    except ValueError:
        raise Fault(
            400,
            f"API Version String {text} is of invalid format. Must be of format MajorNum.MinorNum.",
            reason="microversion_malformed",
            version_headers=False,
        ) from None
    if not minimum <= version <= maximum:
        fault = Fault(
            406,
            f"Version {version} is not supported by the API. "
            f"Minimum is {minimum} and maximum is {maximum}.",
            reason="microversion_unsupported",
        )
        # Nova names the rejected version in its headers (its request's attribute is set
        # before the range check), with the two Vary lines as on any of its answers.
        fault.headers.update(response_headers(version))
        fault.version_headers = False  # the call has no negotiated version to name
        fault.version = version
        raise fault
    return version


def response_headers(version: Version) -> dict[str, str]:
    """The version headers Nova puts on every answer of the v2.1 application."""
    return {STANDARD_HEADER: f"{SERVICE_TYPE} {version}", LEGACY_HEADER: str(version)}


VARY_VALUES = (STANDARD_HEADER, LEGACY_HEADER)


def forwarded_headers(version: Version) -> dict[str, str]:
    """Headers that pin the upstream to the version the gateway decided on."""
    return {STANDARD_HEADER: f"{SERVICE_TYPE} {version}", LEGACY_HEADER: str(version)}
