"""The request pipeline: the ordered list of stages every request passes, in one place.

Owns the order of the gate (Nova's order for checks Nova also makes) and the hand-off
to the upstream; it must never forward anything other than what the stages decided on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from gateway import body, microversion, routing
from gateway.call import Call
from gateway.catalogue import BY_KEY
from gateway.faults import Fault, not_found
from gateway.headers import REQUEST_ID, ForwardingPolicy, end_to_end
from gateway.proxy import Upstream
from gateway.responses import answer_headers, fault_response
from gateway.validation import validate_action
from gateway.versions import UpstreamVersions


@dataclass
class Gate:
    """Everything the stages consult, built once per worker."""

    upstream: Upstream
    versions: UpstreamVersions
    forwarding: ForwardingPolicy
    max_body: int
    max_path: int


Stage = Callable[[Gate, Call, web.BaseRequest], Awaitable[None]]


async def receive_body(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Nova's sizelimit runs first, before authentication; compressed bodies are refused."""
    if request.content_length is not None and request.content_length > gate.max_body:
        raise _too_large(gate)
    body.check_content_encoding(request.headers.get("Content-Encoding"))
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
        # The low-level server leaves Expect to us; answer it only once the size passed.
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        size += len(chunk)
        if size > gate.max_body:
            raise _too_large(gate)
        chunks.append(chunk)
    call.body = b"".join(chunks)


def _too_large(gate: Gate) -> Fault:
    return Fault(
        413,
        f"Request is too large. Larger than max_request_body_size ({gate.max_body}).",
        reason="body_too_large",
        version_headers=False,
    )


async def route(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    path, query = routing.split_target(call.target, gate.max_path)
    call.route = routing.classify(call.method, path, query)


async def negotiate_version(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.route is None or call.route.kind is routing.RouteKind.VERSIONS:
        return  # the version list lives outside the v2.1 application: no negotiation
    supported = gate.versions.range
    call.version = microversion.negotiate(call.headers, supported.minimum, supported.maximum)


def _is_action(call: Call) -> bool:
    return call.route is not None and call.route.kind is routing.RouteKind.SERVER_ACTION


async def check_content_type(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if _is_action(call):
        body.check_content_type(call.header("Content-Type"))


async def dispatch_action(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if not _is_action(call):
        return
    value = body.parse_json(call.body)
    call.action, _ = body.dispatch_action(value, BY_KEY)
    call.action_body = value


async def check_action_version(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Outside its range an action is Nova's 404, before any validation."""
    if call.action is None or call.version is None:
        return
    if not call.action.supports(call.version):
        raise not_found("action_version")
    removed = call.action.removed
    if removed is not None:
        raise Fault(removed.status, removed.message, reason="action_removed")


async def validate_body(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.action is None or call.version is None or call.action_body is None:
        return
    validate_action(call.action, call.version, call.action_body)


# The gate, in Nova's order (nova-actions.md §0) for the checks Nova also makes.
STAGES: Sequence[Stage] = (
    receive_body,
    route,
    negotiate_version,
    check_content_type,
    dispatch_action,
    check_action_version,
    validate_body,
)


def upstream_headers(gate: Gate, call: Call) -> list[tuple[str, str]]:
    """The client's headers, cleaned, plus the concrete version and the global id."""
    headers = gate.forwarding.upstream_headers(
        end_to_end(call.headers), call.peer, call.scheme, call.host
    )
    if call.version is not None:
        headers.extend(microversion.forwarded_headers(call.version).items())
    headers.append((REQUEST_ID, call.global_request_id or call.request_id))
    return headers


async def handle(gate: Gate, call: Call, request: web.BaseRequest) -> web.StreamResponse:
    """Decide, then forward exactly what was decided, or answer the refusal."""
    try:
        for stage in STAGES:
            await stage(gate, call, request)
        call.decided_seconds = time.monotonic() - call.started
        call.decision = "allow"
        response = await gate.upstream.forward(
            request,
            call.method,
            call.target,
            upstream_headers(gate, call),
            call.body,
            answer_headers(call),
            call.exchange,
        )
    except Fault as fault:
        if call.decision == "pending":
            call.decided_seconds = time.monotonic() - call.started
            call.decision = "deny"
        else:
            call.decision = "error"
        call.fault = fault
        response = fault_response(call, fault)
    call.status = response.status
    return response
