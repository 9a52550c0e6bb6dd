"""Every status the gateway makes itself, against the real Nova's own answer to the same bytes.

Owns the differential cases: the router's 404 (every route template with a method it does
not route), sizelimit's 413, keystonemiddleware's 401 (through the real Keystone chain),
Nova's faults, proxied answers left alone, and the documented differences, each with its
reason; it must never send a request that would change a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.nova.route_table import ROUTES, served_methods
from tests.conftest import skip_or_fail
from tests.e2e.differential import Difference, Pair, compare
from tests.e2e.gateway_fixtures import GatewayLab, keystone_identity, start_gateway
from tests.security.wire import chunked, request_bytes
from tests.support.labs import RealKeystone, RealNova
from tests.support.processes import ProcessStartError

MEMBER = "alice:p1"
READER = "carol:p1:reader"
OTHER = "eve:p2"
ADMIN = "admin:admin"
MISSING = "00000000-0000-4000-8000-00000000dead"
BODY_LIMIT = 114688
JSON = ("Content-Type", "application/json")
ACCEPT_JSON = ("Accept", "application/json")
PAUSE = b'{"pause": null}'
# What the gateway forwards to no route, deliberately, and why (README: stricter than Nova).
STRICTER = "README, where the gateway is deliberately stricter than Nova"


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


@dataclass(frozen=True)
class Case:
    """One request's bytes (built for the server it names) and the differences allowed."""

    label: str
    build: Callable[[str], bytes]  # the p1 seed server's id -> the request
    expected: Mapping[str, str] = field(default_factory=dict)  # aspect -> why
    head: bool = False


def on(
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    body: bytes = b"",
    **options: Any,
) -> Callable[[str], bytes]:
    def build(server: str) -> bytes:
        return request_bytes(method, path.format(s=server), headers, body, **options)

    return build


def action(body: bytes, token: str = MEMBER, *extra: tuple[str, str]) -> Callable[[str], bytes]:
    return on("POST", "/v2.1/servers/{s}/action", [("X-Auth-Token", token), JSON, *extra], body)


def _padded(size: int) -> bytes:
    return b'{"pause": "' + b"x" * (size - len(b'{"pause": ""}')) + b'"}'


def _chunked_over_the_limit(server: str) -> bytes:
    head = request_bytes(
        "POST",
        f"/v2.1/servers/{server}/action",
        [("X-Auth-Token", MEMBER), JSON, ACCEPT_JSON, ("Transfer-Encoding", "chunked")],
        content_length=False,
    )
    return head + chunked(_padded(BODY_LIMIT + 1))


NOAUTH_401 = (
    "the gateway's noauth mode (the labs' tokens) names no identity endpoint, realnova's "
    "stand-in for keystonemiddleware a fixed one; the Keystone chain test compares the real one"
)
LAB_MESSAGE = (
    "realnova's stand-in for keystonemiddleware words an invalid lab token its own way; the "
    "Keystone chain test compares keystonemiddleware's own words"
)

TOKEN = ("X-Auth-Token", MEMBER)
ACTION = "/v2.1/servers/{s}/action"
MISSING_ACTION = f"/v2.1/servers/{MISSING}/action"
VERSION_HEADERS = {
    f"header:{name}": "refused before the version is negotiated, as the layers around Nova's API"
    for name in ("openstack-api-version", "x-openstack-nova-api-version", "vary")
}
REFUSED = {aspect: STRICTER for aspect in ("status", "key", "message", "body")}
PAGE = {aspect: STRICTER for aspect in ("shape", "body", "header:content-type")}
OPTIONS_WHY = (
    "Nova's CORS middleware answers any OPTIONS 200, empty; the gateway answers as Nova's "
    "router does (404)"
)
# Nova writes links from the Host it sees: the client's, or the gateway's connection to
# nova-api unless nova.conf enables proxy headers parsing (README, forwarding headers;
# realnova does not); the request ids: Nova's version list has none, the gateway's has.
LINKS = {
    "body": "links name the Host Nova sees (README: enable_proxy_headers_parsing)",
}
HEAD_LINKS = {"shape": "the length of a body whose links name another Host"}
# A value Nova's schema accepts (metadata values are any string): Nova goes on to 404.
SURROGATE_IN_METADATA = b'{"createImage": {"name": "a", "metadata": {"k": "\\ud800"}}}'

CASES: list[Case] = [
    # Nova's router (webob's 404 page, in the form Accept asks for; no version headers).
    Case("unrouted method on action, json", on("GET", ACTION, [TOKEN, ACCEPT_JSON])),
    Case("unrouted method on action, no Accept", on("GET", ACTION, [TOKEN])),
    Case("unrouted method, html", on("GET", ACTION, [TOKEN, ("Accept", "text/html")])),
    Case("unrouted method, */*", on("PUT", ACTION, [TOKEN, ("Accept", "*/*"), JSON], PAUSE)),
    Case("HEAD of a collection", on("HEAD", "/v2.1/servers", [TOKEN, ACCEPT_JSON]), head=True),
    Case("trailing slash", on("GET", "/v2.1/servers/", [TOKEN, ACCEPT_JSON])),
    Case("PATCH of a server", on("PATCH", "/v2.1/servers/{s}", [TOKEN, ACCEPT_JSON, JSON], b"{}")),
    Case(
        "unknown path, bad microversion",
        on("GET", "/v2.1/nothing", [TOKEN, ("OpenStack-API-Version", "compute 2.x")]),
    ),
    Case("Action with a capital", on("POST", "/v2.1/servers/{s}/Action", [TOKEN, JSON], PAUSE)),
    Case("project id not hex", on("GET", "/v2.1/p1/servers", [TOKEN, ACCEPT_JSON])),
    Case("DELETE of a collection", on("DELETE", "/v2.1/flavors", [TOKEN, ACCEPT_JSON])),
    # oslo.middleware's sizelimit, before authentication.
    Case("body over the limit", action(_padded(BODY_LIMIT + 1), MEMBER, ACCEPT_JSON)),
    Case("over the limit, no token", on("POST", ACTION, [JSON], _padded(BODY_LIMIT + 1))),
    Case("chunked body over the limit", _chunked_over_the_limit),
    # keystonemiddleware's place (realnova's stand-in here; the real one below).
    Case(
        "no token",
        on("GET", "/v2.1/servers", [ACCEPT_JSON]),
        {"header:www-authenticate": NOAUTH_401},
    ),
    Case(
        "no token, HEAD",
        on("HEAD", "/v2.1/servers", []),
        {"header:www-authenticate": NOAUTH_401},
        head=True,
    ),
    Case(
        "no token on an unrouted path",
        on("PATCH", "/v2.1/nothing", []),
        {"header:www-authenticate": NOAUTH_401},
    ),
    Case(
        "invalid token",
        on("GET", "/v2.1/servers", [("X-Auth-Token", "garbage")]),
        {"header:www-authenticate": NOAUTH_401, "message": LAB_MESSAGE, "body": LAB_MESSAGE},
    ),
    # Nova's own faults, with its version headers.
    Case("malformed microversion", action(PAUSE, MEMBER, ("OpenStack-API-Version", "compute x"))),
    Case(
        "unsupported microversion",
        action(PAUSE, MEMBER, ("OpenStack-API-Version", "compute 2.999")),
    ),
    Case(
        "media type Nova refuses",
        on("POST", ACTION, [TOKEN, ("Content-Type", "application/xml")], PAUSE),
    ),
    Case("malformed body", action(b"{")),
    Case("no such action", action(b'{"reboo": {"type": "HARD"}}')),
    Case("two actions", action(b'{"pause": null, "unpause": null}')),
    Case("non-object body", action(b"null")),
    Case(
        "action outside its range",
        action(
            b'{"addFloatingIp": {"address": "10.0.0.9"}}',
            MEMBER,
            ("OpenStack-API-Version", "compute 2.44"),
        ),
    ),
    Case("schema refusal", action(b'{"reboot": {"type": "GENTLE"}}')),
    Case("removed action", action(b'{"resetNetwork": null}')),
    Case("RDP console", action(b'{"os-getRDPConsole": {"type": "rdp-html5"}}')),
    Case(
        "URL project id not the token's",
        on("POST", "/v2.1/0abc/servers/{s}/action", [TOKEN, JSON], PAUSE),
    ),
    Case("another project's server", action(PAUSE, OTHER)),
    Case("a missing server", on("POST", MISSING_ACTION, [TOKEN, JSON], PAUSE)),
    Case("policy", action(PAUSE, READER)),
    Case("state", action(b'{"confirmResize": null}')),
    Case("admin-only action", action(b'{"os-resetState": {"state": "active"}}')),
    # Proxied answers go through unchanged (the Server header included).
    Case("versions", on("GET", "/", [ACCEPT_JSON]), LINKS),
    Case("version document", on("GET", "/v2.1/", [ACCEPT_JSON]), LINKS),
    Case("version document, HEAD", on("HEAD", "/v2.1", []), HEAD_LINKS, head=True),
    Case(
        "a show",
        on("GET", "/v2.1/servers/{s}", [TOKEN, ("OpenStack-API-Version", "compute 2.9")]),
        LINKS,
    ),
    Case("a list", on("GET", "/v2.1/flavors", [TOKEN]), LINKS),
    Case("an empty list", on("GET", "/v2.1/os-keypairs", [TOKEN])),
    # Deliberately stricter than Nova: the difference, and only it, is expected.
    Case(
        "GET with a body",
        on("GET", "/v2.1/flavors", [TOKEN, JSON], b"{}"),
        {**REFUSED, **PAGE, **VERSION_HEADERS},
    ),
    Case(
        "method override",
        on("POST", MISSING_ACTION, [TOKEN, JSON, ("X-HTTP-Method-Override", "DELETE")], PAUSE),
        {**REFUSED, **VERSION_HEADERS},
    ),
    Case(
        "text/plain action body",
        on("POST", MISSING_ACTION, [TOKEN, ("Content-Type", "text/plain")], PAUSE),
        REFUSED,
    ),
    Case(
        "lone surrogate",
        on("POST", MISSING_ACTION, [TOKEN, JSON], SURROGATE_IN_METADATA),
        REFUSED,
    ),
    Case(
        "OPTIONS",
        on("OPTIONS", "/v2.1/servers", [TOKEN, ACCEPT_JSON]),
        {
            **{aspect: OPTIONS_WHY for aspect in ("status", "shape", "message", "body")},
            "header:content-type": OPTIONS_WHY,
        },
    ),
    Case(
        "POST to the version document",
        on("POST", "/v2.1/", [ACCEPT_JSON]),
        {
            **{
                aspect: STRICTER
                for aspect in ("status", "shape", "message", "body", "header:allow")
            },
            **VERSION_HEADERS,
        },
    ),
    Case(
        "non-canonical path",
        on("POST", f"/v2.1//servers/{MISSING}/action", [TOKEN, JSON, ACCEPT_JSON], PAUSE),
        {**REFUSED, **VERSION_HEADERS},
    ),
    Case(
        "unserved root",
        on("GET", "/v2/servers", [TOKEN, ACCEPT_JSON]),
        {aspect: STRICTER for aspect in ("status", "shape", "message", "body")},
    ),
]


def test_cases_are_distinct() -> None:
    labels = [case.label for case in CASES]
    assert len(labels) == len(set(labels))


@pytest.fixture(scope="module")
def pair(realnova: RealNova, gateway_realnova: GatewayLab) -> Pair:
    return Pair(port_of(realnova.url), port_of(gateway_realnova.url))


def _run(pair: Pair, cases: list[Case], server: str) -> list[Difference]:
    async def all_cases() -> list[Difference]:
        found = []
        for case in cases:
            nova, gateway = await pair.send(case.build(server), head=case.head)
            found.append(compare(case.label, nova, gateway, case.expected))
        return found

    return asyncio.run(all_cases())


def test_each_gateway_made_status_is_novas(pair: Pair, realnova: RealNova) -> None:
    differences = _run(pair, CASES, realnova.seed("p1", 0))
    unexplained = [str(difference) for difference in differences if difference.unexplained]
    assert not unexplained, f"{len(unexplained)} unexplained difference(s):\n" + "\n".join(
        unexplained
    )


def _unrouted_cases() -> list[Case]:
    """Every template of Nova's router with a method it does not route there (variables
    filled with x): Nova's own router must answer it exactly as the gateway does."""
    cases = []
    for template, _ in ROUTES[1:]:  # "/" under /v2.1 is the version document: 405 (above)
        path = "/".join("x" if part.startswith("{") else part for part in template.split("/"))
        routed = served_methods(path)
        method = next(m for m in ("PATCH", "PUT", "POST", "DELETE", "GET") if m not in routed)
        headers = [("X-Auth-Token", MEMBER), ACCEPT_JSON]
        cases.append(Case(f"{method} {template}", on(method, "/v2.1" + path, headers)))
    return cases


def test_every_template_with_an_unrouted_method_is_the_routers_404(
    pair: Pair, realnova: RealNova
) -> None:
    differences = _run(pair, _unrouted_cases(), realnova.seed("p1", 0))
    statuses = {difference.nova.status for difference in differences}
    unexplained = [str(difference) for difference in differences if difference.unexplained]
    assert not unexplained, "\n".join(unexplained)
    assert statuses == {404} and len(differences) == len(ROUTES) - 1


# -- the real chain: Keystone's tokens, keystonemiddleware in Nova ------------------------


@pytest.fixture(scope="module")
def keystone_pair(
    realkeystone: RealKeystone,
    realnova_keystone: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
) -> Iterator[Pair]:
    """A gateway in keystone mode before the realnova that validates with keystonemiddleware."""
    sections = {"identity": keystone_identity(realkeystone)}
    try:
        lab = start_gateway(
            realnova_keystone.url, tmp_path_factory.mktemp("differential-ks"), lab_logs, sections
        )
    except ProcessStartError as exc:
        pytest.fail(f"the gateway (keystone mode) did not start: {exc}", pytrace=False)
    yield Pair(port_of(realnova_keystone.url), port_of(lab.url))
    lab.process.stop()


@pytest.fixture(scope="module")
def alice_token(realkeystone: RealKeystone) -> str:
    try:
        return realkeystone.issue_token("alice", "p1")
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"realkeystone cannot issue a token: {exc}")
        raise


def test_keystonemiddlewares_answers(keystone_pair: Pair, alice_token: str) -> None:
    """401 exactly as keystonemiddleware answers it: body, content type, WWW-Authenticate
    naming the configured Keystone URL with its path; and a valid token passes alike."""
    invalid = "gAAAAABnot-a-real-fernet-token-at-all"
    cases = [
        Case("no token", on("GET", "/v2.1/servers", [ACCEPT_JSON])),
        Case("no token, no Accept", on("POST", "/v2.1/servers/x/action", [JSON], PAUSE)),
        Case("no token, HEAD", on("HEAD", "/v2.1/servers", []), head=True),
        Case("invalid token", on("GET", "/v2.1/flavors", [("X-Auth-Token", invalid)])),
        Case(
            "two tokens",
            on("GET", "/v2.1/flavors", [("X-Auth-Token", invalid), ("X-Auth-Token", alice_token)]),
        ),
        Case(
            "valid token, unrouted",
            on("PATCH", "/v2.1/servers", [("X-Auth-Token", alice_token), ACCEPT_JSON]),
        ),
        Case(
            "valid token, a list",
            on("GET", "/v2.1/flavors", [("X-Auth-Token", alice_token)]),
            LINKS,
        ),
    ]
    differences = _run(keystone_pair, cases, MISSING)
    unexplained = [str(difference) for difference in differences if difference.unexplained]
    assert not unexplained, "\n".join(unexplained)
    assert [d.nova.status for d in differences] == [401, 401, 401, 401, 401, 404, 200]
    assert all(d.gateway.headers["www-authenticate"][0].endswith('/v3"') for d in differences[:5])
