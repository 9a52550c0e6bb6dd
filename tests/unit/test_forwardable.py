"""The forwarding rules: methods per route, overrides, bodies on bodiless methods, media types."""

from __future__ import annotations

import pytest

from gateway.forwardable import (
    check_body_media_type,
    check_method,
    check_no_body,
    check_no_override,
)
from gateway.nova.faults import Fault, Shape
from gateway.nova.routing import Route, classify, split_target

SID = "9b0c8d2e-1111-4222-8333-444455556666"
PAUSE = b'{"pause": null}'


def route(method: str, target: str) -> Route:
    path, query = split_target(target, 2048)
    return classify(method, path, query)


def refusal(check: object, *args: object) -> Fault:
    with pytest.raises(Fault) as caught:
        check(*args)  # type: ignore[operator]
    return caught.value


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("POST", f"/v2.1/servers/{SID}/action"),
        ("GET", "/v2.1/servers/detail?limit=1"),
        ("DELETE", f"/v2.1/servers/{SID}"),
        ("PUT", f"/v2.1/servers/{SID}/tags/web"),
        ("GET", "/"),
        ("HEAD", "/v2.1/"),
    ],
)
def test_routed_methods_pass(method: str, target: str) -> None:
    check_method(method, route(method, target))


@pytest.mark.parametrize(
    ("method", "target", "reason"),
    [
        ("GET", f"/v2.1/servers/{SID}/action", "method_not_routed"),
        ("HEAD", "/v2.1/servers", "method_not_routed"),
        ("OPTIONS", "/v2.1/servers", "method_not_routed"),
        ("PATCH", f"/v2.1/servers/{SID}", "method_not_routed"),
        ("POST", f"/v2.1/servers/{SID}/Action", "path_not_routed"),
        ("GET", "/v2.1/servers/", "path_not_routed"),
        ("GET", "/v2.1/nothing", "path_not_routed"),
    ],
)
def test_unrouted_is_the_routers_404(method: str, target: str, reason: str) -> None:
    fault = refusal(check_method, method, route(method, target))
    assert (fault.status, fault.reason, fault.shape) == (404, reason, Shape.WEBOB)
    assert not fault.version_headers


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("target", ["/", "/v2.1", "/v2.1/"])
def test_version_documents_are_read_only(method: str, target: str) -> None:
    fault = refusal(check_method, method, route(method, target))
    assert (fault.status, fault.shape) == (405, Shape.WEBOB)
    assert fault.headers == {"Allow": "GET, HEAD"}


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ([("X-HTTP-Method-Override", "DELETE")], ""),
        ([("x-http-method", "GET")], ""),
        ([("X-METHOD-OVERRIDE", "POST")], ""),
        ([], "_method=DELETE"),
        ([], "a=1&X-HTTP-Method-Override=PUT"),
        ([], "%5Fmethod=DELETE"),  # decoded as a framework decodes it
        ([], "a=1;_method=DELETE"),
        ([], "_METHOD"),
    ],
)
def test_method_overrides_are_refused(headers: list[tuple[str, str]], query: str) -> None:
    fault = refusal(check_no_override, headers, query)
    assert (fault.status, fault.reason, fault.name) == (400, "method_override", "badRequest")


def test_ordinary_parameters_pass() -> None:
    check_no_override([("X-Auth-Token", "t")], "limit=1&marker=x&method=GET&name=_method")


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_bodiless_methods_carry_no_body(method: str) -> None:
    fault = refusal(check_no_body, method, [], b"x")
    assert (fault.status, fault.reason) == (400, "body_on_bodiless_method")
    assert method in fault.message
    # A chunked request announces a body even when it is empty.
    chunked = refusal(check_no_body, method, [("Transfer-Encoding", "chunked")], b"")
    assert chunked.reason == "body_on_bodiless_method"
    check_no_body(method, [("Content-Length", "0")], b"")


def test_other_methods_may_carry_bodies() -> None:
    check_no_body("POST", [("Transfer-Encoding", "chunked")], PAUSE)
    check_no_body("PUT", [], PAUSE)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=UTF-8", "application/json;charset=utf-8"],
)
def test_json_bodies_pass(content_type: str) -> None:
    check_body_media_type(content_type, PAUSE)


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        # Nova refuses these itself: its own 415.
        ("application/xml", "Unsupported Content-Type"),
        ("APPLICATION/JSON", "Unsupported Content-Type"),
        # Nova reads these as JSON; other readers may not: the gateway's 415.
        (None, "the body must be sent as application/json"),
        ("", "the body must be sent as application/json"),
        ("text/plain", "the body must be sent as application/json"),
        ("application/vnd.openstack.compute+json", "the body must be sent as application/json"),
        ("application/json; charset=utf-16", "the body must be sent as application/json"),
        ("application/json; boundary=x", "the body must be sent as application/json"),
    ],
)
def test_other_media_types_are_415(content_type: str | None, message: str) -> None:
    fault = refusal(check_body_media_type, content_type, PAUSE)
    assert (fault.status, fault.name) == (415, "badMediaType")
    assert message in fault.message


def test_no_body_no_media_type_rule() -> None:
    check_body_media_type("text/plain", b"")
