"""Nova's error body format, and the one exception type every refusal raises.

Owns the mapping from status code to Nova's fault name (nova.api.openstack.wsgi.Fault);
it must never decide *whether* to refuse, only how a refusal looks on the wire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

# nova/api/openstack/wsgi.py Fault._fault_names; anything else is computeFault.
FAULT_NAMES: Mapping[int, str] = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

FAULT_CONTENT_TYPE = "application/json; charset=UTF-8"


def fault_name(status: int) -> str:
    return FAULT_NAMES.get(status, "computeFault")


class Fault(Exception):
    """A refusal: the status and message Nova would answer with.

    ``reason`` names the gate that refused, for audit and metrics; ``headers`` are
    extra response headers (Retry-After); ``version_headers`` is False where Nova
    sends no microversion headers (malformed version, size limit, auth).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str = "",
        headers: Mapping[str, str] | None = None,
        retry_after: int | None = None,
        version_headers: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or fault_name(status)
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        self.version_headers = version_headers
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(retry_after))

    @property
    def name(self) -> str:
        return fault_name(self.status)

    def body(self) -> bytes:
        return render_fault(self.status, self.message, self.retry_after)


def render_fault(status: int, message: str, retry_after: int | None = None) -> bytes:
    """Nova's ``{"<name>": {"code": N, "message": "..."}}`` body, as bytes."""
    detail: dict[str, object] = {"code": status, "message": message}
    if retry_after is not None and status in (413, 429):
        detail["retryAfter"] = str(retry_after)
    return json.dumps({fault_name(status): detail}).encode()


# Messages Nova uses in more than one place, so callers never retype them.
MALFORMED_BODY = "Malformed request body"
NOT_FOUND = "The resource could not be found."
UNSUPPORTED_MEDIA = "Unsupported Content-Type"


def not_found(reason: str = "not_found") -> Fault:
    return Fault(404, NOT_FOUND, reason=reason)


def malformed_body(reason: str = "malformed_body") -> Fault:
    return Fault(400, MALFORMED_BODY, reason=reason)
