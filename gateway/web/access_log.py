"""Request lines: what one JSON line says about an answered request of the API listener.

Owns the fields of a request line (ids, method, path, status, time, caller, refusal); it
must never log headers, bodies, query strings or tokens (the audit trail records calls in
full, redacted).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateway.call import Call
from gateway.logs import RequestLines
from gateway.proxy.headers import RESPONSE_REQUEST_IDS

CALL = web.RequestKey("call", Call)  # set by the API handler on every request


def access_log_class(lines: RequestLines) -> type[AbstractAccessLogger]:
    """The aiohttp access logger that sends each answered request to ``lines``."""

    class JsonRequestLine(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            lines.emit(request_line(request, response, time))

    return JsonRequestLine


def request_line(
    request: web.BaseRequest, response: web.StreamResponse, seconds: float
) -> dict[str, object]:
    call = request.get(CALL)
    fields: dict[str, object] = {
        "request_id": call.request_id if call is not None else None,
        "method": request.method,
        # Without the query string: filters may name people, addresses or images.
        "path": request.raw_path.partition("?")[0],
        "status": response.status,
        "seconds": round(seconds, 6),
        "bytes": response.body_length,
        "peer": request.remote,
    }
    answered_id = response.headers.get(RESPONSE_REQUEST_IDS[0])
    if answered_id is not None and call is not None and answered_id != call.request_id:
        fields["upstream_request_id"] = answered_id  # Nova answered, with its own id
    if call is None:
        return fields
    if call.credentials is not None:
        fields["user_id"] = call.credentials.user_id
        fields["project_id"] = call.credentials.project_id
    if call.action is not None:
        fields["action"] = call.action.key
    fields["decision"] = call.decision
    if call.fault is not None:
        fields["reason"] = call.fault.reason
    return fields


def placeholder_logger() -> logging.Logger:
    """aiohttp wants a logger object beside the class; the lines never go through it."""
    return logging.getLogger("gateway.access")
