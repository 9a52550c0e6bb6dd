"""The refusals every identity mode shares, and how a token is read from the headers.

Owns the 401/503 faults and token well-formedness; it must never echo a token anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.nova.faults import Fault

AUTH_REQUIRED = "The request you have made requires authentication."
IDENTITY_UNAVAILABLE = "The identity service is temporarily unavailable."
MAX_TOKEN_LENGTH = 8192  # Fernet tokens are ~200 bytes, JWTs a few KiB; beyond is abuse


def unauthorized(reason: str, www_authenticate: str | None = None) -> Fault:
    """keystonemiddleware's 401, in Nova's fault shape; no microversion headers (as Nova)."""
    headers = {"WWW-Authenticate": www_authenticate} if www_authenticate else None
    return Fault(401, AUTH_REQUIRED, reason=reason, headers=headers, version_headers=False)


def unavailable() -> Fault:
    """Identity could not be established: refuse (503), never let the request through."""
    return Fault(503, IDENTITY_UNAVAILABLE, reason="identity_unavailable", version_headers=False)


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
