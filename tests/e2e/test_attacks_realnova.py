"""Attacks through the gateway in front of the real Nova: nothing the gateway refused ever runs.

Owns a representative subset of tests/security's attack corpus, replayed as raw bytes to
the gateway before realnova, with Nova's instance-action log and the server's status read
before and after each; and the microversion the pair agrees on. It must never act on the
seed servers, and boots exactly one server of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import aiohttp
import pytest
import yarl

from tests.e2e.gateway_fixtures import GatewayLab
from tests.security import test_body_confusion as body_attacks
from tests.security import test_http_framing as framing_attacks
from tests.security import test_microversion_confusion as version_attacks
from tests.security import test_path_confusion as path_attacks
from tests.security.wire import Header, exchange, request_bytes
from tests.support.api_client import ApiClient
from tests.support.labs import RealNova

MEMBER = "alice:p1"
STOCK_IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # survives the Glance fixture's rotation
SETUP_TIMEOUT = 90.0
PAUSE = b'{"pause": null}'
JSON: Header = ("Content-Type", "application/json")
ACTION = "/v2.1/servers/{}/action"
FORWARDED = -1  # the gateway forwards it as a non-action: Nova's own 4xx


@dataclass(frozen=True)
class Attack:
    id: str
    build: Callable[[str, int], bytes]  # (server id, gateway port) -> request bytes
    status: int  # the gateway's answer, or FORWARDED


def _path(case: path_attacks.PathCase) -> Attack:
    def build(server: str, port: int) -> bytes:
        target = path_attacks.expand(case.target, server, port)
        return request_bytes("POST", target, [("X-Auth-Token", MEMBER), JSON], PAUSE)

    status = case.expect if isinstance(case.expect, int) else FORWARDED
    return Attack(f"path-{case.id}", build, status)


def _body(case: body_attacks.BodyCase) -> Attack:
    def build(server: str, port: int) -> bytes:
        headers: list[Header] = [("X-Auth-Token", MEMBER)]
        if case.content_type is not None:
            headers.append(("Content-Type", case.content_type))
        if case.version is not None:
            headers.append(("OpenStack-API-Version", f"compute {case.version}"))
        headers.extend(case.headers)
        return request_bytes("POST", ACTION.format(server), headers, case.body)

    assert isinstance(case.expect, int)
    return Attack(f"body-{case.id}", build, case.expect)


def _framing(case: framing_attacks.FramingCase) -> Attack:
    status = 400 if case.expect == framing_attacks.PARSER else case.expect
    assert isinstance(status, int)
    return Attack(f"framing-{case.id}", lambda server, port: case.build(server), status)


def _plain(
    attack_id: str, method: str, token: str | None, extra: list[Header], status: int
) -> Attack:
    def build(server: str, port: int) -> bytes:
        headers = ([("X-Auth-Token", token)] if token else []) + [JSON, *extra]
        return request_bytes(method, ACTION.format(server), headers, PAUSE)

    return Attack(attack_id, build, status)


class _Case(Protocol):
    @property
    def id(self) -> str: ...


CaseT = TypeVar("CaseT", bound=_Case)


def _pick(cases: Sequence[CaseT], ids: list[str]) -> list[CaseT]:
    by_id = {case.id: case for case in cases}
    return [by_id[case_id] for case_id in ids]


PATH_IDS = [
    "slash-slash-after-prefix",  # Nova itself routes this one to the action
    "dotdot-back-to-action",
    "escaped-slash",
    "escaped-a-in-action",  # ... and this one
    "escaped-nul-after-action",
    "semicolon-on-action",
    "dotdot-semicolon",
    "fragment",
    "absolute-form-other-host",
    "trailing-slash",
    "capital-action",
    "json-suffix",
    "capital-prefix",
    "legacy-v2",
    "project-not-the-tokens",
    "overlong-path",
    "detail-as-id",
    "escaped-space-after-action",
    "overlong-utf8-a",
    "actions-plural",
    "project-named-servers",
    "segment-after-action",
]
BODY_IDS = [
    "dup-action-key",
    "dup-action-key-other-values",
    "two-actions",
    "dup-via-escape",
    "dup-nested",
    "bom-utf8",
    "utf16-le",
    "invalid-utf8",
    "nan",
    "nested-lists-50000",
    "gzip",
    "identity-line-then-gzip-line",
    "form-urlencoded",
    "over-the-limit",
]
FRAMING_IDS = [
    "cl-then-te",
    "cl-and-te-smuggled-request",
    "two-cl-different",
    "chunk-extension-bare-lf",
    "obsolete-line-folding",
    "two-host-headers",
    "lf-in-value",
    "trailer-spoofs-identity-for-a-reader",
]

ATTACKS: list[Attack] = [
    *(_path(case) for case in _pick(path_attacks.CASES, PATH_IDS)),
    *(_body(case) for case in _pick(body_attacks.CASES, BODY_IDS)),
    *(_framing(case) for case in _pick(framing_attacks.CASES, FRAMING_IDS)),
    _plain("identity-reader-claims-admin", "POST", "carol:p1:reader", [("X-Roles", "admin")], 403),
    _plain(
        "identity-reader-underscore-roles", "POST", "carol:p1:reader", [("X_Roles", "admin")], 403
    ),
    _plain("identity-other-claims-project", "POST", "eve:p2", [("X-Project-Id", "p1")], 404),
    _plain(
        "identity-underscore-admin-token", "POST", "eve:p2", [("X_Auth_Token", "admin:admin")], 404
    ),
    _plain(
        "identity-headers-no-token",
        "POST",
        None,
        [("X-User-Id", "alice"), ("X-Project-Id", "p1"), ("X-Roles", "admin")],
        401,
    ),
    _plain("method-get-on-action", "GET", MEMBER, [], 404),
    _plain("method-put-on-action", "PUT", MEMBER, [("X-HTTP-Method-Override", "POST")], 404),
    _plain("method-delete-on-action", "DELETE", MEMBER, [], 404),
]


@pytest.fixture(scope="module")
def attack_server(realnova: RealNova) -> Iterator[str]:
    """One fresh ACTIVE server of p1, deleted afterwards (the seeds are never touched)."""
    server_id = asyncio.run(_boot(realnova))
    try:
        yield server_id
    finally:
        asyncio.run(_delete(realnova, server_id))


async def _boot(realnova: RealNova) -> str:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        boot = {"server": {"name": "e2e-attacks", "imageRef": STOCK_IMAGE, "flavorRef": "1"}}
        reply = await nova.request("POST", "/servers", token=MEMBER, json_body=boot)
        assert reply.status == 202, f"boot: {reply.status} {reply.body!r}"
        server_id: str = reply.body["server"]["id"]
        await nova.wait_for_status(server_id, "ACTIVE", MEMBER, SETUP_TIMEOUT)
        return server_id


async def _delete(realnova: RealNova, server_id: str) -> None:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        await nova.action(server_id, {"unlock": None}, MEMBER)
        await nova.request("DELETE", f"/servers/{server_id}", token=MEMBER)
        deadline = time.monotonic() + SETUP_TIMEOUT
        while time.monotonic() < deadline:  # bounded: later tests see a quiet Nova
            if (await nova.server(server_id, MEMBER)).status == 404:
                return
            await asyncio.sleep(0.2)


def _port(url: str) -> int:
    port = yarl.URL(url).port
    assert port is not None
    return port


async def action_log(nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    """(action, request id) of every row of Nova's instance-action log for the server."""
    reply = await nova.request("GET", f"/servers/{server_id}/os-instance-actions", token=MEMBER)
    assert reply.status == 200, reply.body
    return sorted((row["action"], row["request_id"]) for row in reply.body["instanceActions"])


async def server_status(nova: ApiClient, server_id: str) -> str:
    reply = await nova.server(server_id, MEMBER)
    assert reply.status == 200, reply.body
    return str(reply.body["server"]["status"])


async def test_the_log_shows_an_allowed_action(
    nova: ApiClient, gateway_realnova: GatewayLab, attack_server: str
) -> None:
    """The detector works: a canonical pause through the gateway is in Nova's log."""
    before = await action_log(nova, attack_server)
    sent = await exchange(
        _port(gateway_realnova.url),
        request_bytes(
            "POST", ACTION.format(attack_server), [("X-Auth-Token", MEMBER), JSON], PAUSE
        ),
        timeout=30.0,
    )
    assert sent.reply.status == 202, sent.reply.body
    after = await action_log(nova, attack_server)
    assert [action for action, _ in sorted(set(after) - set(before))] == ["pause"]
    await nova.wait_for_status(attack_server, "PAUSED", MEMBER, SETUP_TIMEOUT)
    assert (await nova.action(attack_server, {"unpause": None}, MEMBER)).status == 202
    await nova.wait_for_status(attack_server, "ACTIVE", MEMBER, SETUP_TIMEOUT)


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
async def test_refused_attack_runs_nothing_in_nova(
    attack: Attack, nova: ApiClient, gateway_realnova: GatewayLab, attack_server: str
) -> None:
    before = await action_log(nova, attack_server)
    assert await server_status(nova, attack_server) == "ACTIVE"
    port = _port(gateway_realnova.url)
    sent = await exchange(port, attack.build(attack_server, port), timeout=30.0)
    if attack.status == FORWARDED:
        assert 400 <= sent.reply.status < 500, sent.reply.body  # Nova's router: no action
    else:
        assert sent.reply.status == attack.status, sent.reply.body
    assert await action_log(nova, attack_server) == before
    assert await server_status(nova, attack_server) == "ACTIVE"


def test_subset_is_representative() -> None:
    """Data only: at least 30 attacks, from every attack class."""
    assert len(ATTACKS) >= 30
    classes = {attack.id.split("-", 1)[0] for attack in ATTACKS}
    assert classes == {"path", "body", "framing", "identity", "method"}


# -- the gateway and Nova agree on the microversion ----------------------------------------


@pytest.mark.parametrize(
    "case", version_attacks.CASES, ids=[case.id for case in version_attacks.CASES]
)
async def test_nova_runs_at_the_version_the_gateway_decided(
    case: version_attacks.VersionCase,
    realnova: RealNova,
    gateway_realnova: GatewayLab,
    attack_server: str,
) -> None:
    """Through the gateway, Nova answers at exactly the gateway's decision; and Nova alone,
    sent the same headers, decides the same (or refuses the same way)."""
    target = f"/v2.1/servers/{attack_server}"
    request = request_bytes("GET", target, [("X-Auth-Token", MEMBER), *case.headers])
    via_gateway = (await exchange(_port(gateway_realnova.url), request, timeout=30.0)).reply
    alone = (await exchange(_port(realnova.url), request, timeout=30.0)).reply
    if isinstance(case.expect, int):
        assert via_gateway.status == case.expect, via_gateway.body
        assert alone.status == case.expect, alone.body
        return
    assert via_gateway.status == 200, via_gateway.body
    assert via_gateway.header("OpenStack-API-Version") == f"compute {case.expect}"
    assert via_gateway.header("X-OpenStack-Nova-API-Version") == case.expect
    assert alone.status == 200, alone.body
    assert alone.header("OpenStack-API-Version") == f"compute {case.expect}"
