"""Method confusion: the method decided is the method executed; overrides change nothing.

Owns the method corpus (every method on ``/action``, the X-HTTP-Method-Override family
in headers and query, bodies on non-action methods, DELETE and PUT of a server); it must
never accept an answer without checking the method novasim received and what it ran.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import AttackRequest, Header, Targets, request_bytes

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
    "method=GET",
    "_method=PUT&x=1",
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
    ("GET", SERVER_PATH, 200),  # a show; its body is ignored
    ("POST", "/v2.1/servers/{}/os-instance-actions", 404),
]
RENAME = b'{"server": {"name": "renamed"}}'


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


@pytest.mark.parametrize("override", OVERRIDES)
@pytest.mark.parametrize("value", OVERRIDE_VALUES)
async def test_override_header_on_an_action_changes_nothing(
    lab: Lab, override: str, value: str
) -> None:
    """The pause goes up as a POST and runs as a pause; the server is not deleted."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON, (override, value)]
    reply = (
        await lab.send(request_bytes("POST", ACTION_PATH.format(server), headers, PAUSE))
    ).reply
    assert reply.status == 202
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [
        ("POST", ACTION_PATH.format(server), PAUSE)
    ]
    assert lab.actions_run(server) == ["pause"]
    assert lab.vm_state(server) == "paused"


@pytest.mark.parametrize("override", OVERRIDES)
async def test_reader_cannot_delete_by_override(lab: Lab, override: str) -> None:
    """A reader may show a server; an override header does not make the show a delete."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "carol:p1:reader"), (override, "DELETE")]
    reply = (await lab.send(request_bytes("GET", SERVER_PATH.format(server), headers))).reply
    assert reply.status == 200
    assert [(r.method, r.path) for r in lab.forwarded(mark)] == [
        ("GET", SERVER_PATH.format(server))
    ]
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("override", OVERRIDES)
async def test_refused_delete_stays_refused_whatever_the_override(lab: Lab, override: str) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "carol:p1:reader"), (override, "GET")]
    reply = (await lab.send(request_bytes("DELETE", SERVER_PATH.format(server), headers))).reply
    assert reply.status == 403
    assert lab.forwarded(mark) == []
    assert lab.vm_state(server) == "active"


@pytest.mark.parametrize("query", QUERY_OVERRIDES)
async def test_override_in_the_query_changes_nothing(lab: Lab, query: str) -> None:
    server = lab.server("p1")
    target = f"{ACTION_PATH.format(server)}?{query}"
    mark = lab.mark()
    reply = (
        await lab.send(request_bytes("POST", target, [("X-Auth-Token", "alice:p1"), JSON], PAUSE))
    ).reply
    assert reply.status == 202
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [("POST", target, PAUSE)]
    assert lab.actions_run(server) == ["pause"]


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


async def test_delete_with_an_action_body_is_a_delete(lab: Lab) -> None:
    """Decided as the member's DELETE, executed as that DELETE; the body runs nothing."""
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON]
    reply = (
        await lab.send(request_bytes("DELETE", SERVER_PATH.format(server), headers, PAUSE))
    ).reply
    assert reply.status == 204
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [
        ("DELETE", SERVER_PATH.format(server), PAUSE)
    ]
    assert "pause" not in lab.actions_run(server)


@pytest.mark.parametrize(("method", "target", "status"), OTHER_ROUTES)
async def test_action_body_on_another_route_runs_nothing(
    lab: Lab, method: str, target: str, status: int
) -> None:
    server = lab.server("p1")
    path = target.format(server)
    mark = lab.mark()
    headers = [("X-Auth-Token", "alice:p1"), JSON]
    reply = (await lab.send(request_bytes(method, path, headers, PAUSE))).reply
    assert reply.status == status
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [(method, path, PAUSE)]
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
                acts=True,
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
                acts=True,
            )
            for query in QUERY_OVERRIDES
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
            "delete-with-an-action-body",
            _on("doomed", "DELETE", SERVER_PATH, member, PAUSE),
            acts=True,
        ),
        *(
            AttackRequest(
                f"action-body-on-another-route/{method} {target}",
                _on("server", method, target, member, PAUSE),
            )
            for method, target, _ in OTHER_ROUTES
        ),
    ]
