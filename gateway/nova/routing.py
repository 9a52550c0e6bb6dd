"""Request targets: refuse non-canonical paths, and recognise the routes the gate decides.

Owns which paths the gateway serves and what each one is; it must never rewrite a path
into another one (what is matched is exactly what is forwarded).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from gateway.nova import route_table
from gateway.nova.faults import Fault, not_routed

API_PREFIX = "/v2.1"
_UNRESERVED_ESCAPE = re.compile(r"%(?:[46][1-9A-Fa-f]|[57][0-9Aa]|3[0-9]|2[DEde]|5[Ff]|7[Ee])")
_ANY_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_FORBIDDEN_ESCAPES = frozenset({"%2f", "%5c", "%00", "%2e", "%3b", "%23", "%3f", "%25"})
_PROJECT_ID = re.compile(r"^[0-9a-f-]+$")


class RouteKind(enum.Enum):
    VERSIONS = "versions"  # GET / : the version list, outside the v2.1 application
    VERSION_DOCUMENT = "version_document"  # /v2.1 and /v2.1/: no token needed, as in Nova
    API = "api"  # anything under /v2.1 that is not a server action
    SERVER_ACTION = "server_action"  # POST /v2.1[/{project_id}]/servers/{id}/action


@dataclass(frozen=True)
class Route:
    kind: RouteKind
    path: str
    query: str
    server_id: str | None = None
    url_project_id: str | None = None
    # Lock semantics also cover DELETE and PUT of the server itself, as in Nova.
    server_resource: bool = False
    # The methods Nova's router routes at this path (API kinds); none: not routed at all.
    methods: frozenset[str] = frozenset()


# Anything but visible ASCII (0x21-0x7E): one regex scan instead of a test per character.
_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")


def _refuse(message: str) -> Fault:
    return Fault(
        400, f"Non-canonical request path: {message}", reason="path", version_headers=False
    )


def split_target(target: str, max_length: int) -> tuple[str, str]:
    """The origin-form path and query of a request target, refused if not canonical."""
    if not target.startswith("/"):
        # Absolute-form and authority-form targets are for forward proxies only.
        raise _refuse("only origin-form request targets are accepted")
    path, _, query = target.partition("?")
    if len(path) > max_length:
        raise Fault(414, "Request-URI Too Long", reason="path_length", version_headers=False)
    if "#" in target:
        raise _refuse("fragments are not sent in requests")
    if _NOT_VISIBLE_ASCII.search(path) is not None:
        raise _refuse("raw control, space or non-ASCII characters")
    if "\\" in path or ";" in path:
        raise _refuse("';' parameters and backslashes are not used by the compute API")
    if "//" in path:
        raise _refuse("empty path segment")
    segments = path.split("/")[1:]
    if any(segment in (".", "..") for segment in segments):
        raise _refuse("dot segments")
    for escape in _ANY_ESCAPE.findall(path):
        if escape.lower() in _FORBIDDEN_ESCAPES or _UNRESERVED_ESCAPE.fullmatch(escape):
            raise _refuse(f"percent-encoded {escape!r} must be sent as is or not at all")
    if len(_ANY_ESCAPE.findall(path)) != path.count("%"):
        raise _refuse("a '%' that starts no escape")
    return path, query


# Routes by (method, target, path limit): clients repeat the same few targets, and a
# Route is a function of exactly these (frozen; the route table is fixed). Only short
# targets, and only those that passed, are remembered; forgotten all at once when full.
_ROUTE_MAX_TARGET = 256
_ROUTES_REMEMBERED = 4096
_routes: dict[tuple[str, str, int], Route] = {}


def route_of(method: str, target: str, max_length: int) -> Route:
    """split_target then classify, remembered for short targets; the same Faults."""
    key = (method, target, max_length)
    found = _routes.get(key)
    if found is None:
        path, query = split_target(target, max_length)
        found = classify(method, path, query)
        if len(target) <= _ROUTE_MAX_TARGET:
            if len(_routes) >= _ROUTES_REMEMBERED:
                _routes.clear()
            _routes[key] = found
    return found


def classify(method: str, path: str, query: str) -> Route:
    """What the request is, from its canonical path; 404 for paths outside the API.

    Paths under /v2.1 that Nova's router does not route are refused later, after
    authentication (as Nova's router runs after keystonemiddleware)."""
    if path == "/":
        return Route(RouteKind.VERSIONS, path, query)
    segments = path.split("/")[1:]
    head = segments[0]
    if head != API_PREFIX[1:]:
        # Only /v2.1 is served: the legacy /v2 application (or a /V2.1 spelling) would
        # route actions through a path the gate does not decide.
        raise not_routed("unserved_prefix")
    rest = segments[1:]
    if rest in ([], [""]):
        return Route(RouteKind.VERSION_DOCUMENT, path, query)
    if rest[-1] == "" and len(rest) > 1:
        rest = rest[:-1]
        trailing_slash = True
    else:
        trailing_slash = False
    methods = route_table.served_methods(path[len(API_PREFIX) :])
    url_project_id = None
    if len(rest) >= 2 and rest[0].lower() != "servers" and rest[1].lower() == "servers":
        url_project_id, rest = rest[0], rest[1:]
    is_server_path = len(rest) >= 2 and rest[0].lower() == "servers"
    looks_like_action = (
        is_server_path and len(rest) == 3 and rest[2].lower().split(".", 1)[0] == "action"
    )
    if looks_like_action:
        exact = rest[0] == "servers" and rest[2] == "action" and not trailing_slash
        project_ok = url_project_id is None or _PROJECT_ID.match(url_project_id)
        if not exact or method != "POST" or not project_ok:
            # Nova routes no other form, and no other method, to the action handler;
            # whatever the route table says, no spelling of an action passes undecided.
            only_post = methods & {"POST"} if exact and project_ok else frozenset()
            return Route(
                RouteKind.API, path, query, url_project_id=url_project_id, methods=only_post
            )
        return Route(
            RouteKind.SERVER_ACTION,
            path,
            query,
            server_id=rest[1],
            url_project_id=url_project_id,
            methods=methods,
        )
    server_resource = (
        is_server_path
        and len(rest) == 2
        and rest[0] == "servers"
        and rest[1] not in ("detail",)
        and method in ("PUT", "DELETE")
    )
    return Route(
        RouteKind.API,
        path,
        query,
        server_id=rest[1] if server_resource else None,
        url_project_id=url_project_id,
        server_resource=server_resource,
        methods=methods,
    )
