"""Path canonicalisation and route classification: no spelling of an action slips by."""

from __future__ import annotations

import pytest

from gateway.nova import routing
from gateway.nova.faults import Fault, Shape
from gateway.nova.routing import RouteKind, classify, split_target

SID = "9b0c8d2e-1111-4222-8333-444455556666"


def route_of(method: str, target: str):  # type: ignore[no-untyped-def]
    path, query = split_target(target, 2048)
    return classify(method, path, query)


def test_action_route() -> None:
    route = route_of("POST", f"/v2.1/servers/{SID}/action")
    assert route.kind is RouteKind.SERVER_ACTION and route.server_id == SID
    assert route.url_project_id is None


def test_action_route_with_project_id() -> None:
    route = route_of("POST", f"/v2.1/0a1b-ff/servers/{SID}/action?x=1")
    assert route.kind is RouteKind.SERVER_ACTION
    assert route.url_project_id == "0a1b-ff" and route.query == "x=1"


@pytest.mark.parametrize(
    "target",
    [
        f"/v2.1/servers/{SID}/action/",
        f"/v2.1/servers/{SID}/Action",
        f"/v2.1/Servers/{SID}/action",
        f"/v2.1/servers/{SID}/action.json",
        f"/v2.1/servers/{SID}/ACTION",
        f"/v2.1/NOT_HEX/servers/{SID}/action",
    ],
)
def test_action_spelling_variants_are_routed_nowhere(target: str) -> None:
    """Nova's router routes none of them: refused (404) after authentication."""
    route = route_of("POST", target)
    assert route.kind is RouteKind.API and route.methods == frozenset()


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def test_other_methods_on_action_are_routed_nowhere(method: str) -> None:
    route = route_of(method, f"/v2.1/servers/{SID}/action")
    assert route.kind is RouteKind.API and method not in route.methods


def test_api_routes_carry_the_methods_novas_router_routes() -> None:
    assert route_of("GET", "/v2.1/servers").methods == {"GET", "POST"}
    assert route_of("POST", f"/v2.1/servers/{SID}/action").methods == {"POST"}
    assert route_of("GET", f"/v2.1/0abc/servers/{SID}").methods == {"GET", "PUT", "DELETE"}
    assert route_of("GET", "/v2.1/servers/").methods == frozenset()


@pytest.mark.parametrize(
    "target",
    [
        f"/v2.1//servers/{SID}/action",
        f"/v2.1/servers/{SID}/./action",
        f"/v2.1/servers/x/../{SID}/action",
        f"/v2.1/servers/{SID}/%61ction",
        f"/v2.1/servers/{SID}%2Faction",
        f"/v2.1/servers/{SID}/action%00",
        f"/v2.1/servers/{SID}/action;x=1",
        f"/v2.1/servers/{SID}%2e/action",
        "/v2.1/servers/%",
        "/v2.1/servers/%zz",
        "/v2.1/servers\\x",
        "http://evil/v2.1/servers",
        "*",
        "/v2.1/servers#frag",
    ],
)
def test_non_canonical_targets_are_400(target: str) -> None:
    with pytest.raises(Fault) as caught:
        route_of("POST", target)
    assert caught.value.status == 400


def test_overlong_path_is_414() -> None:
    with pytest.raises(Fault) as caught:
        split_target("/v2.1/" + "a" * 3000, 2048)
    assert caught.value.status == 414


@pytest.mark.parametrize("prefix", ["/v2", "/V2.1", "/v3", "/compute", "/v2.1x"])
def test_unserved_prefixes_are_404(prefix: str) -> None:
    with pytest.raises(Fault) as caught:
        route_of("POST", f"{prefix}/servers/{SID}/action")
    assert caught.value.status == 404
    assert caught.value.shape is Shape.WEBOB  # as Nova's router answers, no version headers


def test_other_api_paths_are_proxied() -> None:
    assert route_of("GET", "/").kind is RouteKind.VERSIONS
    assert route_of("GET", "/v2.1").kind is RouteKind.VERSION_DOCUMENT
    assert route_of("GET", "/v2.1/").kind is RouteKind.VERSION_DOCUMENT
    for target in (
        "/v2.1/servers/detail?limit=1",
        "/v2.1/flavors",
        f"/v2.1/servers/{SID}/metadata/my%20key",
        "/v2.1/os-keypairs/a%20b",
    ):
        assert route_of("GET", target).kind is RouteKind.API


def test_server_resource_is_marked_for_put_and_delete() -> None:
    route = route_of("DELETE", f"/v2.1/servers/{SID}")
    assert route.server_resource and route.server_id == SID
    assert not route_of("GET", f"/v2.1/servers/{SID}").server_resource


@pytest.mark.parametrize(
    "method,target",
    [
        ("POST", f"/v2.1/servers/{SID}/action"),
        ("GET", f"/v2.1/servers/{SID}"),
        ("DELETE", f"/v2.1/servers/{SID}"),
        ("GET", "/v2.1/servers/detail?changes-since=2026-01-01"),
        ("POST", f"/v2.1/servers/{SID}/Action"),
        ("GET", "/"),
        ("GET", "/v2.1/"),
    ],
)
def test_a_remembered_route_is_the_route(method: str, target: str) -> None:
    # route_of remembers; every later call gets what split_target + classify give.
    first = routing.route_of(method, target, 2048)
    assert routing.route_of(method, target, 2048) is first
    assert first == route_of(method, target)


def test_the_method_is_part_of_what_is_remembered() -> None:
    # A POST's action route, remembered, must not answer for another method.
    target = f"/v2.1/servers/{SID}/action"
    assert routing.route_of("POST", target, 2048).kind is RouteKind.SERVER_ACTION
    for method in ("PUT", "GET", "DELETE"):
        assert routing.route_of(method, target, 2048).kind is RouteKind.API


@pytest.mark.parametrize("target", ["/v2.1//servers", "/v2.1/servers/../x", "/v3/servers"])
def test_a_refused_target_is_refused_every_time(target: str) -> None:
    for _ in range(2):
        with pytest.raises(Fault):
            routing.route_of("GET", target, 2048)


def test_the_path_limit_is_part_of_what_is_remembered() -> None:
    target = "/v2.1/servers/" + "a" * 40
    assert routing.route_of("GET", target, 2048).kind is RouteKind.API
    with pytest.raises(Fault) as refused:
        routing.route_of("GET", target, 30)
    assert refused.value.status == 414
