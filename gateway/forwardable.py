"""What may go upstream: only requests every HTTP and JSON reader on the way reads alike.

Owns the forwarding rules (the methods Nova's router routes per path, no method
overrides, no body where the method has none, bodies as application/json only); it must
never rewrite a request into another one: what breaks a rule is refused, not repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote_plus

from gateway.nova import body
from gateway.nova.faults import Fault, Shape, not_routed
from gateway.nova.routing import Route, RouteKind

# Version documents answer any method at Nova; only reading them is forwarded.
VERSION_DOCUMENT_METHODS = frozenset({"GET", "HEAD"})
# Methods whose requests carry no body: a body there is what request smuggling hides in
# (one server reads it as a body, another as the next request).
BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})
# Headers (any case) and query parameters with which web frameworks, middlewares and
# load balancers let a request claim another method than its request line's.
OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
OVERRIDE_PARAMETERS = OVERRIDE_HEADERS | {"_method"}
JSON_MEDIA_TYPE = "application/json"
_UTF8_CHARSETS = frozenset({"utf-8", '"utf-8"'})
FRAMING_HEADERS = frozenset({"transfer-encoding"})


def check_method(method: str, route: Route) -> None:
    """Only a method Nova's router routes at the path: its 404 otherwise (the version
    documents, which answer any method, are forwarded for GET and HEAD only: 405)."""
    if route.kind in (RouteKind.VERSIONS, RouteKind.VERSION_DOCUMENT):
        if method not in VERSION_DOCUMENT_METHODS:
            raise Fault(
                405,
                f"The method {method} is not allowed for this resource.",
                reason="method_not_allowed",
                headers={"Allow": ", ".join(sorted(VERSION_DOCUMENT_METHODS))},
                shape=Shape.WEBOB,
            )
        return
    if method not in route.methods:
        raise not_routed("method_not_routed" if route.methods else "path_not_routed")


def check_no_override(headers: Sequence[tuple[str, str]], query: str) -> None:
    """A request names its method once: an override header or parameter is refused."""
    named = {name.lower() for name, _ in headers} & OVERRIDE_HEADERS
    named |= _query_names(query) & OVERRIDE_PARAMETERS
    if named:
        raise Fault(
            400,
            f"Method override refused ({', '.join(sorted(named))}): send the method on the "
            "request line and nothing else.",
            reason="method_override",
        )


def _query_names(query: str) -> set[str]:
    """Every parameter name, decoded and lower-cased (';' counts as a separator too, as
    some frameworks read it)."""
    names: set[str] = set()
    for pair in query.replace(";", "&").split("&"):
        names.add(unquote_plus(pair.partition("=")[0]).strip().lower())
    return names


def check_no_body(method: str, headers: Sequence[tuple[str, str]], received: bytes) -> None:
    """GET, HEAD and DELETE carry no body (an empty one announced by chunking included)."""
    if method not in BODILESS_METHODS:
        return
    framed = any(name.lower() in FRAMING_HEADERS for name, _ in headers)
    if received or framed:
        raise Fault(
            400,
            f"A {method} request carries no body: send it without one.",
            reason="body_on_bodiless_method",
        )


def check_body_media_type(content_type: str | None, received: bytes) -> None:
    """A body goes up as ``application/json`` (``; charset=utf-8`` at most): Nova's 415
    for what Nova refuses, the gateway's for what Nova would also read as JSON (no type,
    text/plain, its vendor type, other charsets) but other readers may not."""
    if not received:
        return
    body.check_content_type(content_type)
    media, *parameters = [part.strip() for part in (content_type or "").split(";")]
    strict = media == JSON_MEDIA_TYPE and all(
        name.strip().lower() == "charset" and value.strip().lower() in _UTF8_CHARSETS
        for name, _, value in (parameter.partition("=") for parameter in parameters)
    )
    if not strict:
        raise Fault(
            415,
            "Unsupported Content-Type: the body must be sent as application/json.",
            reason="content_type_not_json",
        )
