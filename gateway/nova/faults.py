"""Nova's error bodies, and the one exception type every refusal raises.

Owns how each layer of Nova's stack writes a refusal: Nova's fault wrapper
(nova.api.openstack.wsgi.Fault), the WSGI layer's webob errors (router, sizelimit) and
keystonemiddleware's 401; it must never decide *whether* to refuse, only how a refusal
looks on the wire.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass

import webob
import webob.exc

from gateway.nova.types import Version

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


class Shape(enum.Enum):
    """Which layer of Nova's stack makes this refusal, and so how it is written."""

    # Nova's fault wrapper: {"<name>": {"code": N, "message": "..."}}, always JSON.
    FAULT = "fault"
    # The WSGI layer around Nova's API (the router's 404, oslo.middleware's sizelimit
    # 413, keystonemiddleware's 503): a webob error page, HTML, JSON or plain text as
    # the request's Accept header asks, without microversion headers.
    WEBOB = "webob"
    # keystonemiddleware's auth_token 401: {"error": {"code", "title", "message"}}.
    KEYSTONE = "keystone"


@dataclass(frozen=True)
class Rendered:
    """A refusal as it goes on the wire: its content type, body and Content-Length (which
    differs from the body's only for a HEAD, whose answer has no body)."""

    content_type: str | None
    body: bytes
    content_length: int


class Fault(Exception):
    """A refusal: the status and message Nova would answer with.

    ``reason`` names the gate that refused, for audit and metrics; ``headers`` are
    extra response headers (Retry-After); ``version_headers`` is False where Nova
    sends no microversion headers (malformed version, size limit, auth); ``shape`` is
    the layer of Nova's stack that answers this way, and ``detail`` the second line a
    webob error carries after its message.
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
        shape: Shape = Shape.FAULT,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or fault_name(status)
        self.headers = dict(headers or {})
        self.retry_after = retry_after
        # Only Nova's API application writes microversion headers, never the layers around it.
        self.version_headers = version_headers and shape is Shape.FAULT
        self.shape = shape
        self.detail = detail
        # The microversion its headers name though none was negotiated (Nova's 406 names
        # the version it refuses, Vary lines and all).
        self.version: Version | None = None
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(retry_after))

    @property
    def name(self) -> str:
        return fault_name(self.status)

    def body(self) -> bytes:
        """Nova's fault body (whatever the shape: for records and logs)."""
        return render_fault(self.status, self.message, self.retry_after)

    def render(self, method: str, accept: str | None) -> Rendered:
        """The refusal as its layer of Nova's stack answers ``method`` with ``accept``."""
        if self.shape is Shape.FAULT:
            body = self.body()
            return Rendered(FAULT_CONTENT_TYPE, body, len(body))
        page: webob.exc.WSGIHTTPException
        if self.shape is Shape.KEYSTONE:
            # keystonemiddleware's own call (auth_token/__init__.py, process_request).
            error = {"code": self.status, "title": "Unauthorized", "message": self.message}
            page = webob.exc.HTTPUnauthorized(
                body=json.dumps({"error": error}), charset="UTF-8", content_type="application/json"
            )
        else:
            page = webob.exc.status_map[self.status](explanation=self.message, detail=self.detail)
        # webob writes the page for this very request: its method (a HEAD gets no body)
        # and Accept header choose the form, exactly as in front of Nova.
        headers = {} if accept is None else {"Accept": accept}
        answer = webob.Request.blank("/", method=method, headers=headers).get_response(page)
        return Rendered(answer.headers.get("Content-Type"), answer.body, answer.content_length or 0)


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


def not_routed(reason: str = "not_routed") -> Fault:
    """Nova's router for a path or method it routes nowhere: webob's 404."""
    return Fault(404, NOT_FOUND, reason=reason, shape=Shape.WEBOB)


def malformed_body(reason: str = "malformed_body") -> Fault:
    return Fault(400, MALFORMED_BODY, reason=reason)
