"""The request pipeline: the ordered list of stages every request passes, in one place.

Owns the order of the gate (Nova's order for checks Nova also makes) and the hand-off
to the upstream; it must never forward anything other than what the stages decided on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway import forwardable, gates
from gateway.audit.trail import AuditTrail
from gateway.call import Call
from gateway.identity.credentials import Authenticator
from gateway.nova import body, microversion, routing
from gateway.nova.catalogue import (
    BY_KEY,
    SERVER_RESOURCE_ACTIONS,
    ActionSpec,
    Lookup,
    PolicyRule,
    Target,
    When,
)
from gateway.nova.faults import Fault, Shape, not_found
from gateway.nova.validation import validate_action_bytes
from gateway.policy.engine import Decision, Outcome, PolicyEngine, build_target, rules_for
from gateway.proxy.headers import REQUEST_ID, ForwardingPolicy, end_to_end
from gateway.proxy.upstream import Upstream
from gateway.proxy.versions import UpstreamVersions
from gateway.ratelimit.limiter import RateLimiter
from gateway.responses import answer_headers, fault_response
from gateway.servers.facts import Grade, ReadReason
from gateway.servers.store import FactsStore

log = structlog.get_logger(__name__)


@dataclass
class Gate:
    """Everything the stages consult, built once per worker."""

    upstream: Upstream
    versions: UpstreamVersions
    forwarding: ForwardingPolicy
    identity: Authenticator
    policy: PolicyEngine
    servers: FactsStore
    max_body: int
    max_path: int
    body_timeout: float = 60.0
    server_header: str = "nova-api"
    strict_locks: bool = False
    observers: list[CallObserver] = field(default_factory=list)
    rate_limiter: RateLimiter | None = None
    audit: AuditTrail | None = None


# A stage refuses by raising a Fault. One that may wait (identity, storage, a read of
# Nova) hands back what to await; one that never waits is a plain function (no
# coroutine to make and run for it on every call).
Stage = Callable[[Gate, Call, web.BaseRequest], Awaitable[None] | None]


class CallObserver(Protocol):
    """Sees every finished Call (audit, metrics); must never change it or raise."""

    def observe(self, call: Call) -> None: ...


async def receive_body(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Nova's sizelimit runs first, before authentication; compressed bodies are refused."""
    if request.content_length is not None and request.content_length > gate.max_body:
        raise _too_large(gate)
    # Every line: aiohttp's parser decodes by the last, so checking only the first would
    # let "identity" + "gzip" through, inflated behind the gate's back (or a 500).
    for encoding in request.headers.getall("Content-Encoding", ()):
        body.check_content_encoding(encoding)
    if request.headers.get("Expect", "").lower() == "100-continue" and request.version >= (1, 1):
        # The low-level server leaves Expect to us; answer it only once the size passed.
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    content = request.content
    if content.is_eof():
        # The whole body is here already (none, or one that came with its headers): take
        # it as it is, with no deadline to set and no read to wait on.
        try:
            whole = content.read_nowait(-1)
        except RequestPayloadError:
            raise _unreadable() from None
        if len(whole) > gate.max_body:
            raise _too_large(gate)
        call.body = whole
        return
    chunks: list[bytes] = []
    size = 0
    try:
        # One deadline for the whole body: a per-read timeout would let a client that
        # trickles a byte at a time hold the request, its buffer and a connection for ever.
        async with asyncio.timeout(gate.body_timeout):
            while True:
                chunk = await request.content.read(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > gate.max_body:
                    raise _too_large(gate)
                chunks.append(chunk)
    except TimeoutError:
        raise Fault(
            408,
            f"The request body did not arrive within {gate.body_timeout:g} seconds.",
            reason="body_timeout",
            version_headers=False,
        ) from None
    except RequestPayloadError:
        raise _unreadable() from None
    call.body = b"".join(chunks)


def _unreadable() -> Fault:
    # The client's framing or encoding broke off mid-body: its fault, not ours (no 500).
    return Fault(400, "Malformed request body", reason="body_unreadable", version_headers=False)


# oslo.middleware's sizelimit hands webob this text as it is: Nova's 413 says "(%s)".
TOO_LARGE = "Request is too large. Larger than max_request_body_size (%s)."


def _too_large(gate: Gate) -> Fault:
    return Fault(413, TOO_LARGE, reason="body_too_large", shape=Shape.WEBOB)


async def check_audit_ready(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Fail-closed audit: no new request is served while its record could not be kept
    (a sink failing, or the queue still full after the back-pressure wait): 503."""
    if gate.audit is not None:
        await gate.audit.admit(call)


def route(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    call.route = routing.route_of(call.method, call.target, gate.max_path)


_UNAUTHENTICATED = (routing.RouteKind.VERSIONS, routing.RouteKind.VERSION_DOCUMENT)


async def authenticate(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Every API request needs a valid token; version documents do not, as in Nova."""
    if call.route is None or call.route.kind in _UNAUTHENTICATED:
        return
    call.credentials = await gate.identity.authenticate(call.headers)
    # Nova's is_admin decides server lookups and lock checks (actions, PUT and DELETE of
    # a server) and is part of the audit record; a call that is only proxied skips it.
    route = call.route
    if gate.audit is not None or _is_action(call) or route.server_resource:
        admin = gate.policy.is_admin_inline(call.credentials)
        if admin is None:  # context_is_admin reaches a remote check: off the loop
            admin = await gate.policy.is_admin_async(call.credentials)
        call.is_admin = admin


def check_forwardable(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Only what every reader sees alike goes up: a method Nova's router routes at the
    path (its 404 otherwise, after authentication as at Nova), named once (no override),
    with a body only where the method has one."""
    assert call.route is not None
    forwardable.check_method(call.method, call.route)
    forwardable.check_no_override(call.headers, call.route.query)
    forwardable.check_no_body(call.method, call.headers, call.body)


def negotiate_version(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.route is None or call.route.kind is routing.RouteKind.VERSIONS:
        return  # the version list lives outside the v2.1 application: no negotiation
    supported = gate.versions.range
    call.version = microversion.negotiate(call.headers, supported.minimum, supported.maximum)


def _is_action(call: Call) -> bool:
    return call.route is not None and call.route.kind is routing.RouteKind.SERVER_ACTION


def check_content_type(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Nova's 415 for an action (even without a body); every body as application/json."""
    content_type = call.header("Content-Type")
    if _is_action(call):
        body.check_content_type(content_type)
    forwardable.check_body_media_type(content_type, call.body)


def dispatch_action(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Every body is read by the one strict reader (what other readers could take
    differently is refused); an action's is then dispatched as Nova's action_peek."""
    if call.route is not None and call.route.server_resource:
        call.action = SERVER_RESOURCE_ACTIONS.get(call.method)
    if not _is_action(call):
        if call.body:
            body.parse_json(call.body)
        return
    value = body.parse_json(call.body)
    call.action, _ = body.dispatch_action(value, BY_KEY)
    call.action_body = value


def check_url_project(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """A project id in the URL must be the token's (Nova's 400, before the version gate)."""
    url_project = call.route.url_project_id if call.route is not None else None
    if url_project is None or call.credentials is None:
        return
    if url_project != call.credentials.project_id:
        raise Fault(
            400,
            f"Malformed request URL: URL's project_id '{url_project}' doesn't match "
            f"Context's project_id '{call.credentials.project_id}'",
            reason="url_project_id",
        )


def check_action_version(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Outside its range an action is Nova's 404, before any validation."""
    if call.action is None or call.version is None:
        return
    if not call.action.supports(call.version):
        raise not_found("action_version")
    removed = call.action.removed
    if removed is not None:
        raise Fault(removed.status, removed.message, reason="action_removed")


def rate_limit(gate: Gate, call: Call, request: web.BaseRequest) -> Awaitable[None] | None:
    """Gateway-only: before the schema, policy and the server read, so a flood costs
    Nova nothing; after the checks that need no storage."""
    limiter = gate.rate_limiter
    if limiter is None or not limiter.rules.rules:
        return None  # no rules (SIGHUP may add some): nothing to count, nothing to await
    return limiter.check(call)


def validate_body(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.action is None or call.version is None or call.action_body is None:
        return
    validate_action_bytes(call.action, call.version, call.body, call.action_body)


def _authorize(gate: Gate, call: Call, rules: list[PolicyRule]) -> Awaitable[None] | None:
    """Nova's ``context.can`` for each rule; the first enforced refusal is a 403. Decided
    at once unless a rule reaches a remote check (then what to await, off the loop)."""
    assert call.action is not None and call.credentials is not None
    if not rules:
        return None
    version = call.version or microversion.DEFAULT_VERSION
    server = call.server
    target = build_target(
        call.action,
        call.action_value,
        version,
        project_id=server.project_id if server else call.credentials.project_id,
        user_id=server.user_id if server else call.credentials.user_id,
        server=server.policy_attributes() if server else None,
    )
    caller_target = (
        build_target(
            call.action,
            call.action_value,
            version,
            project_id=call.credentials.project_id,
            user_id=call.credentials.user_id,
        )
        if any(rule.target is Target.CALLER for rule in rules)
        else None
    )
    decision = gate.policy.decide_all_inline(
        rules, target, call.credentials, caller_target=caller_target
    )
    if decision is not None:
        _enforce(call, decision)
        return None
    return _authorize_off_loop(gate, call, rules, target, caller_target)


async def _authorize_off_loop(
    gate: Gate,
    call: Call,
    rules: list[PolicyRule],
    target: dict[str, Any],
    caller_target: dict[str, Any] | None,
) -> None:
    assert call.credentials is not None
    decision = await gate.policy.decide_all_async(
        rules, target, call.credentials, caller_target=caller_target
    )
    _enforce(call, decision)


def _enforce(call: Call, decision: Decision) -> None:
    call.verdicts.extend((verdict.rule, verdict.outcome.value) for _, verdict in decision.each)
    if decision.verdict.outcome is Outcome.DENIED:
        raise Fault(
            403,
            f"Policy doesn't allow {decision.verdict.rule} to be performed.",
            reason="policy",
        )


def _rules(call: Call, *, after_state: bool, caller_target: bool) -> list[PolicyRule]:
    assert call.action is not None and call.credentials is not None
    server = call.server
    rules = rules_for(
        call.action,
        call.action_value,
        call.version or microversion.DEFAULT_VERSION,
        server.image if server else None,
        call.locked_by,
        call.credentials.project_id,
        server.project_id if server else None,
    )
    return [
        rule
        for rule in rules
        if rule.after_state == after_state and (rule.target is Target.CALLER) == caller_target
    ]


def authorize_without_server(
    gate: Gate, call: Call, request: web.BaseRequest
) -> Awaitable[None] | None:
    """Console actions: Nova checks policy with the caller's own target before the lookup."""
    if call.action is not None and call.action.lookup is Lookup.AFTER_POLICY:
        return _authorize(gate, call, _rules(call, after_state=False, caller_target=True))
    return None


async def look_up_server(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """The server the call names; another project's server is Nova's 404 for non-admins."""
    if call.action is None or call.action.lookup is Lookup.NONE or call.route is None:
        return
    server_id = call.route.server_id or ""
    assert call.credentials is not None
    needs_holder = _reads_lock_holder(call.action)
    known = await gate.servers.known(
        server_id,
        not_before=call.started,
        locked_by=needs_holder,
        read=call.read_server,
        reads=call.server_reads,
    )
    call.facts_grade = known.grade
    call.server = gates.check_visible(
        call.action, server_id, known.facts, call.credentials, call.is_admin
    )
    call.locked_by = known.locked_by
    if known.grade is Grade.CACHED and _decides_beyond_nova(gate, call):
        # A copy may back an allow only where Nova checks the same again (README,
        # "Server facts"); this call also has checks Nova does not make.
        call.read_server = ReadReason.GATEWAY_RULE
        await look_up_server(gate, call, request)


def _reads_lock_holder(spec: ActionSpec) -> bool:
    return any(rule.when is When.LOCKED_BY_OTHER for rule in spec.policies)


def _decides_beyond_nova(gate: Gate, call: Call) -> bool:
    """Checks only the gateway makes on the server: site rules reading ``server.*``, and
    strict locks (Nova lets an admin act on a locked server)."""
    assert call.action is not None and call.credentials is not None
    if gate.strict_locks and call.is_admin and call.action.lock_checked:
        return True
    rules = _rules(call, after_state=False, caller_target=False) + _rules(
        call, after_state=True, caller_target=False
    )
    return gate.policy.reads_server(rules)


def authorize(gate: Gate, call: Call, request: web.BaseRequest) -> Awaitable[None] | None:
    if call.action is not None and call.action.lookup is not Lookup.AFTER_POLICY:
        return _authorize(gate, call, _rules(call, after_state=False, caller_target=False))
    return None


def check_lock(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.action is not None and call.server is not None:
        gates.check_lock(call.action, call.server, call.is_admin, gate.strict_locks)


def check_state(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    if call.action is not None and call.server is not None:
        gates.check_state(call.action, call.server, call.action_value)


def authorize_after_state(
    gate: Gate, call: Call, request: web.BaseRequest
) -> Awaitable[None] | None:
    """Rules Nova checks inside the compute API, after lock and state (unshelve to host)."""
    if call.action is not None and call.credentials is not None:
        return _authorize(gate, call, _rules(call, after_state=True, caller_target=False))
    return None


# The gate, in Nova's order (nova-actions.md §0) for the checks Nova also makes.
STAGES: Sequence[Stage] = (
    receive_body,  # Nova's sizelimit runs before authentication
    check_audit_ready,  # 503 while the audit trail cannot take the record (fail-closed)
    route,  # refuse non-canonical targets; what is this request?
    authenticate,  # 401 / 503; version documents need no token
    check_forwardable,  # Nova's router: 404 (405 on version documents); 400 override, body
    negotiate_version,  # 400 / 406
    check_content_type,  # 415: Nova's, and bodies as application/json only
    dispatch_action,  # one strict JSON reader (400); Nova's action_peek: 400 / 404
    check_url_project,  # 400
    check_action_version,  # 404 outside the action's range; removed actions
    rate_limit,  # 429 (503 if the shared counters are down and so configured)
    validate_body,  # 400 with Nova's schema message
    authorize_without_server,  # console actions: policy before lookup
    look_up_server,  # 404 for servers the caller may not see
    authorize,  # 403
    check_lock,  # 409
    check_state,  # 409
    authorize_after_state,  # 403 from inside the compute API
)
# From here on the stages decide on the server's facts (and only they do): a refusal among
# them is confirmed on a fresh read when the facts were a copy (``decide``).
ON_SERVER_FACTS = STAGES.index(look_up_server)


def upstream_headers(gate: Gate, call: Call) -> list[tuple[str, str]]:
    """The client's headers, cleaned, plus the concrete version and the global id."""
    headers = gate.forwarding.upstream_headers(
        end_to_end(call.headers), call.peer, call.scheme, call.host
    )
    if call.version is not None:
        headers.extend(microversion.forwarded_headers(call.version).items())
    headers.append((REQUEST_ID, call.global_request_id or call.request_id))
    return headers


async def write_ahead(gate: Gate, call: Call) -> None:
    """Audit write-ahead: the decision record is stored (and synced) before forwarding;
    503 audit_unavailable, fail-closed, if it cannot be in time."""
    if gate.audit is not None:
        await gate.audit.write_ahead(call)


def after_forward(gate: Gate, call: Call, status: int) -> None:
    """What Nova's answer means for the facts this worker holds (the row's facts effect)."""
    if call.action is None or call.route is None or call.route.server_id is None:
        return
    gate.servers.forwarded(
        call.route.server_id,
        call.action.facts_effect,
        status,
        call.exchange.request_id,
        caller_project=call.credentials.project_id if call.credentials else None,
    )


async def decide(gate: Gate, call: Call, request: web.BaseRequest) -> None:
    """Run the stages; a refusal decided on a copy of the server is decided again on a
    fresh read before it is answered (a stale refusal is a wrong answer)."""
    for stage in STAGES[:ON_SERVER_FACTS]:
        if (waiting := stage(gate, call, request)) is not None:
            await waiting
    verdicts = len(call.verdicts)
    try:
        for stage in STAGES[ON_SERVER_FACTS:]:
            if (waiting := stage(gate, call, request)) is not None:
                await waiting
    except Fault:
        if call.facts_grade in (None, Grade.FRESH):
            raise
        del call.verdicts[verdicts:]
        call.server = call.locked_by = call.facts_grade = None
        call.read_server = ReadReason.CONFIRM
        call.refusal_confirmation = "stood"
        for stage in STAGES[ON_SERVER_FACTS:]:
            if (waiting := stage(gate, call, request)) is not None:
                await waiting
        call.refusal_confirmation = "overturned"


async def handle(gate: Gate, call: Call, request: web.BaseRequest) -> web.StreamResponse:
    """Decide, then forward exactly what was decided, or answer the refusal."""
    try:
        await decide(gate, call, request)
        call.decided_seconds = time.monotonic() - call.started
        call.decision = "allow"
        await write_ahead(gate, call)  # the decision is on record before the call leaves
        response = await gate.upstream.forward(
            request,
            call.method,
            call.target,
            upstream_headers(gate, call),
            call.body,
            answer_headers(call),
            call.exchange,
            call.response_rewrite,
        )
        after_forward(gate, call, response.status)
    except Fault as fault:
        if call.decision == "pending":
            call.decided_seconds = time.monotonic() - call.started
            call.decision = "deny"
        else:
            call.decision = "error"
        call.fault = fault
        response = fault_response(call, fault)
    except asyncio.CancelledError:
        # The client went away; if the call was forwarded Nova may still act on it, so
        # the observers (audit) must hear of it.
        call.status = CLIENT_CLOSED
        _observe(gate, call)
        raise
    except Exception as exc:
        log.exception("unexpected_error", request_id=call.request_id)
        call.decision = "error"
        call.fault = Fault(
            500,
            f"Unexpected API Error. Please report it with the request id.\n{type(exc)}",
            reason="gateway_error",
        )
        response = fault_response(call, call.fault)
    call.status = response.status
    _observe(gate, call)
    return response


CLIENT_CLOSED = 499  # nginx's convention for "the client closed the connection"


def _observe(gate: Gate, call: Call) -> None:
    for observer in gate.observers:
        observer.observe(call)
