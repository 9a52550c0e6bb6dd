"""Method confusion: only methods Nova's router routes go up, named once, decided as sent.

Owns the method corpus (every method on ``/action`` and on other routes, the
X-HTTP-Method-Override family in headers and query, action bodies on other routes, DELETE
and PUT of a server); it must never accept an answer without checking the method novasim
received and what it ran.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import AttackRequest, Header, Reply, Targets, request_bytes

PAUSE = b'{"pause": null}'
JSON: Header = ("Content-Type", "application/json")
OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")
SERVER_PATH = "/v2.1/servers/{}"

OTHER_METHODS = [
    "GET",
    "HEAD",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "PROPFIND",
    "MKCOL",
    "LOCK",
    "REPORT",
    "SEARCH",
    "PURGE",
    "QUERY",
    "MOVE",
    "COPY",
]
METHODS_TO_OVERRIDE = ["GET", "PUT", "DELETE"]
OVERRIDE_VALUES = ["DELETE", "PUT", "GET"]
QUERY_OVERRIDES = [
    "_method=DELETE",
    "X-HTTP-Method-Override=DELETE",
    "_method=PUT&x=1",
    "%5Fmethod=DELETE",
    "x=1;_method=DELETE",
]
DELETE_AND_UPDATE = [
    ("DELETE", "carol:p1:reader", 403),
    ("DELETE", "eve:p2", 404),
    ("PUT", "carol:p1:reader", 403),
    ("PUT", "eve:p2", 404),
]
OTHER_ROUTES = [
    ("POST", SERVER_PATH, 404),  # no /action: Nova routes nothing there
    ("PATCH", SERVER_PATH, 404),
    ("GET", SERVER_PATH, 400),  # a show carries no body
    ("POST", "/v2.1/servers/{}/os-instance-actions", 404),
]
# webob's page for Nova's router's 404, as JSON (Accept: application/json).
WEBOB_NOT_FOUND = {
    "message": "The resource could not be found.<br /><br />\n\n\n",
    "code": "404 Not Found",
    "title": "Not Found",
}
RENAME = b'{"server": {"name": "renamed"}}'
# Methods Nova's router routes on no path at all (tests/property/test_route_oracle.py
# holds the router's own verdict for every path): never forwarded anywhere.
NEVER_ROUTED = ["HEAD", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "PURGE", "QUERY"]
# Paths Nova routes, with the methods it routes there (a reader's view of a few routes).
ROUTED_PATHS = [
    "/v2.1/servers",
    "/v2.1/servers/detail",
    SERVER_PATH,
    "/v2.1/servers/{}/metadata",
    "/v2.1/servers/{}/tags/web",
    "/v2.1/flavors",
    "/v2.1/os-keypairs",
    "/v2.1/limits",
]


@pytest.mark.parametrize("method", OTHER_METHODS)
async def test_only_post_reaches_the_action(lab: Lab, method: str) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    request = request_bytes(
        method, ACTION_PATH.format(server), [("X-Auth-Token", "alice:p1"), JSON], PAUSE
    )
    reply = (await lab.send(request, head=method == "HEAD")).reply
    assert reply.status == 404
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


@pytest.mark.parametrize("override", OVERRIDES)
@pytest.mark.parametrize("method", METHODS_TO_OVERRIDE)
async def test_override_header_cannot_turn_a_method_into_post(
    lab: Lab, method: str, override: str
) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON, (override, "POST")]
    reply = (
        await lab.send(request_bytes(method, ACTION_PATH.format(server), headers, PAUSE))
    ).reply
    assert reply.status == 404
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


def assert_override_refused(reply: Reply) -> None:
    """The gateway's 400: a request names its method once."""
    assert reply.status == 400, reply.body
    assert reply.fault == "badRequest"
    assert "Method override refused" in reply.json()["badRequest"]["message"]


@pytest.mark.parametrize("override", OVERRIDES)
@pytest.mark.parametrize("value", OVERRIDE_VALUES)
async def test_override_header_on_an_action_is_refused(lab: Lab, override: str, value: str) -> None:
    """A request that names two methods is refused: nothing goes up, nothing runs."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON, (override, value)]
    reply = (
        await lab.send(request_bytes("POST", ACTION_PATH.format(server), headers, PAUSE))
    ).reply
    assert_override_refused(reply)
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("override", OVERRIDES)
async def test_reader_cannot_delete_by_override(lab: Lab, override: str) -> None:
    """A reader's show with a DELETE override: refused, not shown, never deleted."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "carol:p1:reader"), (override, "DELETE")]
    reply = (await lab.send(request_bytes("GET", SERVER_PATH.format(server), headers))).reply
    assert_override_refused(reply)
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("override", OVERRIDES)
async def test_refused_delete_stays_refused_whatever_the_override(lab: Lab, override: str) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "carol:p1:reader"), (override, "GET")]
    reply = (await lab.send(request_bytes("DELETE", SERVER_PATH.format(server), headers))).reply
    assert_override_refused(reply)
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("query", QUERY_OVERRIDES)
async def test_override_in_the_query_is_refused(lab: Lab, query: str) -> None:
    server = lab.server("p1")
    target = f"{ACTION_PATH.format(server)}?{query}"
    mark = lab.mark()
    reply = (
        await lab.send(request_bytes("POST", target, [("X-Auth-Token", "alice:p1"), JSON], PAUSE))
    ).reply
    assert_override_refused(reply)
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


async def test_a_parameter_merely_named_method_is_no_override(lab: Lab) -> None:
    """``method`` is no framework's override convention: the action goes up as sent."""
    server = lab.server("p1")
    target = f"{ACTION_PATH.format(server)}?method=GET"
    mark = lab.mark()
    reply = (
        await lab.send(request_bytes("POST", target, [("X-Auth-Token", "alice:p1"), JSON], PAUSE))
    ).reply
    assert reply.status == 202
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [("POST", target, PAUSE)]
    assert lab.actions_run(server) == ["pause"]


@pytest.mark.parametrize("method", NEVER_ROUTED)
@pytest.mark.parametrize("path", ROUTED_PATHS)
async def test_methods_nova_routes_nowhere_never_go_up(lab: Lab, path: str, method: str) -> None:
    """Answered as Nova's router answers them (404, its webob page), after authentication."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), ("Accept", "application/json")]
    reply = (
        await lab.send(request_bytes(method, path.format(server), headers), head=method == "HEAD")
    ).reply
    assert reply.status == 404
    if method != "HEAD":
        assert reply.json() == WEBOB_NOT_FOUND
    assert reply.header("OpenStack-API-Version") is None  # the router answers, not the API
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("path", ROUTED_PATHS)
async def test_unauthenticated_unrouted_method_is_401_first(lab: Lab, path: str) -> None:
    """keystonemiddleware runs before Nova's router: no token, no routing answer."""
    server = lab.server("p1")
    mark = lab.mark()
    reply = (await lab.send(request_bytes("PATCH", path.format(server)))).reply
    assert reply.status == 401
    assert lab.forwarded(mark) == []


@pytest.mark.parametrize(("method", "token", "status"), DELETE_AND_UPDATE)
async def test_server_delete_and_update_are_decided_like_actions(
    lab: Lab, method: str, token: str, status: int
) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    body = RENAME if method == "PUT" else b""
    headers = [("X-Auth-Token", token), JSON]
    reply = (await lab.send(request_bytes(method, SERVER_PATH.format(server), headers, body))).reply
    assert reply.status == status
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


async def test_delete_of_a_locked_server_is_409(lab: Lab) -> None:
    server = lab.server("p1", locked_by="owner")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1")]
    reply = (await lab.send(request_bytes("DELETE", SERVER_PATH.format(server), headers))).reply
    assert reply.status == 409
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


async def test_delete_with_an_action_body_is_refused(lab: Lab) -> None:
    """A DELETE carries no body: refused (400), neither deleted nor paused."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON]
    reply = (
        await lab.send(request_bytes("DELETE", SERVER_PATH.format(server), headers, PAUSE))
    ).reply
    assert reply.status == 400 and reply.fault == "badRequest"
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize(("method", "target", "status"), OTHER_ROUTES)
async def test_action_body_on_another_route_runs_nothing(
    lab: Lab, method: str, target: str, status: int
) -> None:
    """Routes Nova does not route for the method (404), or a GET with a body (400):
    nothing goes up."""
    server = lab.server("p1")
    path = target.format(server)
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON]
    reply = (await lab.send(request_bytes(method, path, headers, PAUSE))).reply
    assert reply.status == status
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"


# -- the corpus as data --------------------------------------------------------------------

MEMBER = "alice:p1"
READER = "carol:p1:reader"


def _on(
    which: str, method: str, path: str, headers: list[Header], body: bytes = b""
) -> Callable[[Targets], bytes]:
    """A builder sending the request to the server ``Targets.<which>`` names."""

    def build(targets: Targets) -> bytes:
        server: str = getattr(targets, which)
        return request_bytes(method, path.format(server), headers, body)

    return build


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends, as data (tests/e2e replays them before the real Nova).

    A member's DELETE goes to ``Targets.locked`` (refused, 409) or ``Targets.doomed`` (run).
    """
    member = [("X-Auth-Token", MEMBER), JSON]
    return [
        *(
            AttackRequest(
                f"only-post/{method}",
                _on("server", method, ACTION_PATH, member, PAUSE),
                head=method == "HEAD",
            )
            for method in OTHER_METHODS
        ),
        *(
            AttackRequest(
                f"override-to-post/{method}/{override}",
                _on("server", method, ACTION_PATH, [*member, (override, "POST")], PAUSE),
            )
            for override in OVERRIDES
            for method in METHODS_TO_OVERRIDE
        ),
        *(
            AttackRequest(
                f"override-on-an-action/{value}/{override}",
                _on("server", "POST", ACTION_PATH, [*member, (override, value)], PAUSE),
            )
            for override in OVERRIDES
            for value in OVERRIDE_VALUES
        ),
        *(
            AttackRequest(
                f"reader-show-with-delete-override/{override}",
                _on("server", "GET", SERVER_PATH, [("X-Auth-Token", READER), (override, "DELETE")]),
            )
            for override in OVERRIDES
        ),
        *(
            AttackRequest(
                f"reader-delete-with-get-override/{override}",
                _on("server", "DELETE", SERVER_PATH, [("X-Auth-Token", READER), (override, "GET")]),
            )
            for override in OVERRIDES
        ),
        *(
            AttackRequest(
                f"override-in-the-query/{query}",
                _on("server", "POST", f"{ACTION_PATH}?{query}", member, PAUSE),
            )
            for query in QUERY_OVERRIDES
        ),
        AttackRequest(
            "parameter-named-method",
            _on("server", "POST", f"{ACTION_PATH}?method=GET", member, PAUSE),
            acts=True,
        ),
        *(
            AttackRequest(
                f"never-routed/{method} {path}",
                _on(
                    "server",
                    method,
                    path,
                    [("X-Auth-Token", MEMBER), ("Accept", "application/json")],
                ),
                head=method == "HEAD",
            )
            for path in ROUTED_PATHS
            for method in NEVER_ROUTED
        ),
        *(
            AttackRequest(f"unauthenticated-unrouted/{path}", _on("server", "PATCH", path, []))
            for path in ROUTED_PATHS
        ),
        *(
            AttackRequest(
                f"delete-and-update/{method}/{token}",
                _on(
                    "server",
                    method,
                    SERVER_PATH,
                    [("X-Auth-Token", token), JSON],
                    RENAME if method == "PUT" else b"",
                ),
            )
            for method, token, _ in DELETE_AND_UPDATE
        ),
        AttackRequest(
            "delete-of-a-locked-server", _on("locked", "DELETE", SERVER_PATH, [member[0]])
        ),
        AttackRequest(
            "delete-with-an-action-body", _on("doomed", "DELETE", SERVER_PATH, member, PAUSE)
        ),
        *(
            AttackRequest(
                f"action-body-on-another-route/{method} {target}",
                _on("server", method, target, member, PAUSE),
            )
            for method, target, _ in OTHER_ROUTES
        ),
    ]
