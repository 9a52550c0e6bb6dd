"""The aiohttp application: every request passes Nova's outer pipeline here, in Nova's
order (body size, authentication, route, microversion, content type), is recorded,
and is handed to its resource.

Owns that order, the version documents and the application's typed keys; it must never
hold resource or action behaviour (resources, actions and effects do).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from novasim import actions, control, resources, routing, views, wire
from novasim.call import ApiCall
from novasim.config import SimConfig
from novasim.faults import Fault
from novasim.identity import Caller, Unauthenticated, authenticate
from novasim.microversion import Version, VersionRefused, negotiate
from novasim.recorder import Recorder
from novasim.routing import Resource
from novasim.sim import Sim

SIM = web.AppKey("novasim.sim", Sim)
RECORDER = web.AppKey("novasim.recorder", Recorder)

_ACCEPTED_MEDIA = frozenset({"application/json", "application/vnd.openstack.compute+json"})
_BLOB_PATH = "/_sim/blob"


def create_app(config: SimConfig | None = None) -> web.Application:
    """A simulated Nova compute API; see novasim/__init__.py for what it offers."""
    sim = Sim(config or SimConfig())
    # The body limit is enforced by the front handler (Nova's webob 413, not aiohttp's).
    app = web.Application(client_max_size=2**63)
    app[SIM] = sim
    app[RECORDER] = sim.recorder
    app.router.add_route("*", "/{tail:.*}", _front)

    async def cleanup(app: web.Application) -> None:
        sim.lifecycle.cancel_all()
        sim.notifier.close()

    app.on_cleanup.append(cleanup)
    return app


async def _read_body(request: web.Request, limit: int) -> tuple[bytes, bool]:
    """The body, and whether it exceeds ``limit`` (oslo sizelimit: declared or read)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


async def _front(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    path = request.path
    if path.startswith("/_sim/") and path != _BLOB_PATH:
        return await control.handle(request, sim)
    request_id = wire.new_request_id()
    body, too_large = b"", False
    if request.can_read_body:
        body, too_large = await _read_body(request, sim.config.max_body_size)
    record = sim.recorder.record(
        request.method, request.raw_path, request.raw_headers, body, request_id
    )
    if path == _BLOB_PATH:
        response = await control.handle(request, sim)
    elif too_large:
        accept = request.headers.get("Accept", "")
        response = wire.webob_error(request_id, 413, wire.TOO_LARGE_TEXT, accept)
    else:
        response = _respond(request, sim, request_id, body)
    record.status = response.status
    return response


def _respond(request: web.Request, sim: Sim, request_id: str, body: bytes) -> web.Response:
    path = request.path
    host_url = f"http://{request.host}"
    if path == "/":
        return wire.json_response(request_id, None, views.versions_document(host_url))
    if path in ("/v2.1", "/v2.1/", "/v2", "/v2/"):
        return _version_document(request, request_id, host_url)
    if not path.startswith("/v2.1/"):
        if path.startswith("/v2/"):
            return _not_found(request, request_id)  # the legacy v2 API is not simulated
        return wire.json_response(
            request_id, None, views.choices_document(host_url, path), status=300
        )
    try:
        caller = authenticate(request.headers, sim.config.trust_identity_headers)
    except Unauthenticated as exc:
        return wire.unauthorized_response(request_id, exc.message)
    match = routing.match(request.method, path[len("/v2.1") :])
    if match is None:
        return _not_found(request, request_id)
    try:
        version = negotiate(request.raw_headers)
    except VersionRefused as refused:
        return wire.fault_response(request_id, refused.echoed, refused)
    try:
        _check_content_type(request)
        call = ApiCall(
            sim=sim,
            request_id=request_id,
            caller=caller,
            version=version,
            method=request.method,
            body=body,
            query=request.query,
            url_project=match.url_project,
            view=_view_context(caller, version, host_url, request),
            global_request_id=wire.global_request_id(request.headers.get("X-OpenStack-Request-ID")),
        )
        return _dispatch(call, match)
    except Fault as fault:
        return wire.fault_response(request_id, version, fault)


def _not_found(request: web.Request, request_id: str) -> web.Response:
    accept = request.headers.get("Accept", "")
    return wire.webob_error(request_id, 404, wire.NOT_FOUND_TEXT, accept)


def _version_document(request: web.Request, request_id: str, host_url: str) -> web.Response:
    if request.method != "GET":
        return _not_found(request, request_id)
    if request.path.startswith("/v2.1"):
        try:
            version = negotiate(request.raw_headers)
        except VersionRefused as refused:
            return wire.fault_response(request_id, refused.echoed, refused)
        return wire.json_response(request_id, version, views.version_document(host_url))
    # The legacy /v2 endpoint strips every microversion header.
    return wire.json_response(request_id, None, views.version_document(host_url, legacy=True))


def _check_content_type(request: web.Request) -> None:
    """Nova's get_content_type: absent, empty or text/plain mean none; JSON types pass."""
    raw = request.headers.get("Content-Type")
    if raw is None:
        return
    media = raw.split(";", 1)[0]  # webob keeps surrounding spaces, and so does Nova's test
    if media and media != "text/plain" and media not in _ACCEPTED_MEDIA:
        raise Fault(415, "Unsupported Content-Type")


def _view_context(
    caller: Caller, version: Version, host_url: str, request: web.Request
) -> views.ViewContext:
    url = host_url + request.raw_path
    return views.ViewContext(version, caller, host_url, views.project_prefix(caller, url))


def _dispatch(call: ApiCall, match: routing.Match) -> web.Response:
    resource, params = match.resource, match.params
    if resource is Resource.SERVER_ACTION:
        outcome = actions.run_action(call, params[0])
        if outcome.body is None:
            return wire.empty_response(
                call.request_id,
                call.version,
                outcome.status,
                outcome.content_type,
                outcome.headers,
            )
        return wire.json_response(
            call.request_id, call.version, outcome.body, outcome.status, outcome.headers
        )
    reply = _RESOURCES[resource](call, *params)
    if reply.payload is None:
        return wire.empty_response(call.request_id, call.version, reply.status, extra=reply.headers)
    return wire.json_response(
        call.request_id, call.version, reply.payload, reply.status, reply.headers
    )


_RESOURCES: dict[Resource, Callable[..., resources.Reply]] = {
    Resource.SERVER_LIST: lambda call: resources.list_servers(call, detail=False),
    Resource.SERVER_DETAIL: lambda call: resources.list_servers(call, detail=True),
    Resource.SERVER_CREATE: resources.create_server,
    Resource.SERVER_SHOW: resources.show_server,
    Resource.SERVER_UPDATE: resources.update_server,
    Resource.SERVER_DELETE: resources.delete_server,
    Resource.INSTANCE_ACTIONS: resources.list_instance_actions,
    Resource.INSTANCE_ACTION: resources.show_instance_action,
    Resource.FLAVOR_LIST: lambda call: resources.list_flavors(call, detail=False),
    Resource.FLAVOR_DETAIL: lambda call: resources.list_flavors(call, detail=True),
    Resource.FLAVOR_SHOW: resources.show_flavor,
    Resource.LIMITS: resources.show_limits,
}
