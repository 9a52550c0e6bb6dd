"""The refusals every identity mode shares, and how a token is read from the headers.

Owns the 401/503 faults and token well-formedness; it must never echo a token anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.nova.faults import Fault, Shape

AUTH_REQUIRED = "The request you have made requires authentication."
# keystonemiddleware's 503 is webob's page: webob's explanation, then its own detail.
UNAVAILABLE = "The server is currently unavailable. Please try again at a later time."
IDENTITY_UNAVAILABLE = "The Keystone service is temporarily unavailable."
# The gateway's own identity (for its server reads) is missing: its fault, Nova's shape.
SERVICE_IDENTITY_UNAVAILABLE = "The identity service is temporarily unavailable."
MAX_TOKEN_LENGTH = 8192  # Fernet tokens are ~200 bytes, JWTs a few KiB; beyond is abuse


def unauthorized(reason: str, www_authenticate: str | None = None) -> Fault:
    """keystonemiddleware's 401 ({"error": {...}}); no microversion headers (as Nova)."""
    headers = {"WWW-Authenticate": www_authenticate} if www_authenticate else None
    return Fault(401, AUTH_REQUIRED, reason=reason, headers=headers, shape=Shape.KEYSTONE)


def unavailable() -> Fault:
    """Identity could not be established: refuse (503), never let the request through;
    keystonemiddleware's answer when Keystone cannot be reached."""
    return Fault(
        503,
        UNAVAILABLE,
        reason="identity_unavailable",
        shape=Shape.WEBOB,
        detail=IDENTITY_UNAVAILABLE,
    )


def service_unavailable() -> Fault:
    """The gateway's own identity (for its server reads) cannot be had: 503, never a
    read without it."""
    return Fault(
        503,
        SERVICE_IDENTITY_UNAVAILABLE,
        reason="service_identity_unavailable",
        version_headers=False,
    )


def header_values(headers: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Every value of ``name``, matching case and underscore spellings alike.

    A WSGI upstream maps ``X_Auth_Token`` onto ``X-Auth-Token``, so a second spelling
    could make Nova read another token than the one checked here; callers refuse >1.
    """
    wanted = name.lower().replace("_", "-")
    return [v for k, v in headers if k.strip().lower().replace("_", "-") == wanted]


def well_formed(token: str) -> bool:
    """Printable ASCII without spaces and of sane length: anything else is refused unseen."""
    return (
        0 < len(token) <= MAX_TOKEN_LENGTH
        and token.isascii()
        and token.isprintable()
        and (" " not in token)
    )
