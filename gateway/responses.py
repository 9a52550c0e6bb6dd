"""Headers of every answer and the wire form of the gateway's own refusals.

Owns request-id and version headers on answers; it must never decide a status.
"""

from __future__ import annotations

from aiohttp import web

from gateway.call import Call
from gateway.nova import microversion
from gateway.nova.faults import Fault
from gateway.proxy.headers import RESPONSE_REQUEST_IDS


def answer_headers(call: Call) -> list[tuple[str, str]]:
    """Request ids, and the version headers once a version was decided (as Nova does)."""
    headers = [(name, call.request_id) for name in RESPONSE_REQUEST_IDS]
    if call.version is not None:
        headers.extend(microversion.response_headers(call.version).items())
    headers.extend(call.answer_headers)
    return headers


def fault_response(call: Call, fault: Fault) -> web.Response:
    """The refusal as the layer of Nova's stack it stands for writes it (Nova's fault,
    webob's page in the form Accept asks for, keystonemiddleware's 401), with the ids."""
    rendered = fault.render(call.method, call.header("Accept"))
    response = web.Response(status=fault.status, body=rendered.body, content_type=None)
    if rendered.content_type is not None:
        response.headers["Content-Type"] = rendered.content_type
    if call.method == "HEAD":
        # webob's Content-Length for a HEAD (aiohttp sends no body after it).
        response.headers["Content-Length"] = str(rendered.content_length)
    for name in RESPONSE_REQUEST_IDS:
        response.headers[name] = call.request_id
    version = call.version if fault.version_headers else fault.version
    if version is not None:
        for key, value in microversion.response_headers(version).items():
            response.headers[key] = value
        for value in microversion.VARY_VALUES:
            response.headers.add("Vary", value)
    for key, value in call.answer_headers:
        response.headers[key] = value
    for key, value in fault.headers.items():
        response.headers[key] = value
    return response
