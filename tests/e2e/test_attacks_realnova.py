"""Attacks through the gateway in front of the real Nova: nothing the gateway refused ever runs.

Owns a representative subset of tests/security's attack corpus, replayed as raw bytes to
the gateway before realnova, with Nova's instance-action log and the server's status read
before and after each; the microversion the pair agrees on; and the check that every action
Nova ran was allowed by the gateway's audit record of it (the gateway keeps its audit trail
here). It must never act on the seed servers, and boots exactly one server of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import aiohttp
import pytest

from tests.e2e.audited_gateway import (
    AuditedGateway,
    audit_verify,
    instance_actions,
    not_allowed,
    start_audited_gateway,
)
from tests.e2e.audited_gateway import port_of as _port
from tests.e2e.gateway_fixtures import GATEWAY_CONFIG
from tests.security import test_body_confusion as body_attacks
from tests.security import test_http_framing as framing_attacks
from tests.security import test_microversion_confusion as version_attacks
from tests.security import test_path_confusion as path_attacks
from tests.security.wire import Header, exchange, request_bytes
from tests.support.api_client import ApiClient
from tests.support.lab_servers import boot_active, delete_server
from tests.support.labs import RealNova

MEMBER = "alice:p1"
ADMIN = "admin:admin"
SETUP_TIMEOUT = 90.0
PAUSE = b'{"pause": null}'
UNPAUSE = b'{"unpause": null}'
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
def audited_gateway(
    realnova: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[AuditedGateway]:
    """The session gateway's configuration plus a sealed file audit trail in a tmp dir."""
    home = tmp_path_factory.mktemp("attacks-gateway")
    audited = start_audited_gateway(
        realnova.url, home, lab_logs, GATEWAY_CONFIG, name="the audited gateway"
    )
    e2e_timings("gateway (audit trail on) start to READY", audited.process.startup_seconds)
    yield audited
    audited.process.stop()


@dataclass(frozen=True)
class AttackTarget:
    """The module's own server and the request ids its action log held before any attack."""

    server_id: str
    before: frozenset[str]


@pytest.fixture(scope="module")
def attack_target(realnova: RealNova) -> Iterator[AttackTarget]:
    """One fresh ACTIVE server of p1, deleted afterwards (the seeds are never touched)."""
    server_id = asyncio.run(_boot(realnova))
    try:
        before = asyncio.run(_request_ids(realnova, server_id))
        yield AttackTarget(server_id, before)
    finally:
        asyncio.run(_delete(realnova, server_id))


@pytest.fixture(scope="module")
def attack_server(attack_target: AttackTarget) -> str:
    return attack_target.server_id


async def _request_ids(realnova: RealNova, server_id: str) -> frozenset[str]:
    async with aiohttp.ClientSession() as session:
        return frozenset(
            rid for _, rid in await admin_action_log(ApiClient(session, realnova.url), server_id)
        )


async def _boot(realnova: RealNova) -> str:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        return await boot_active(nova, "e2e-attacks", MEMBER, SETUP_TIMEOUT)


async def _delete(realnova: RealNova, server_id: str) -> None:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        await delete_server(nova, server_id, MEMBER, unlock=True, timeout=SETUP_TIMEOUT)


async def action_log(nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    """(action, request id) of every row of Nova's instance-action log for the server."""
    return await instance_actions(nova, server_id, MEMBER)


async def admin_action_log(nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    """(action, request id) of every row of the server's instance-action log, read as admin."""
    return await instance_actions(nova, server_id, ADMIN)


async def server_status(nova: ApiClient, server_id: str) -> str:
    reply = await nova.server(server_id, MEMBER)
    assert reply.status == 200, reply.body
    return str(reply.body["server"]["status"])


async def test_the_log_shows_an_allowed_action(
    nova: ApiClient, audited_gateway: AuditedGateway, attack_server: str
) -> None:
    """The detector works: a canonical pause through the gateway is in Nova's log."""
    before = await action_log(nova, attack_server)
    sent = await exchange(
        _port(audited_gateway.lab.url),
        request_bytes(
            "POST", ACTION.format(attack_server), [("X-Auth-Token", MEMBER), JSON], PAUSE
        ),
        timeout=30.0,
    )
    assert sent.reply.status == 202, sent.reply.body
    after = await action_log(nova, attack_server)
    assert [action for action, _ in sorted(set(after) - set(before))] == ["pause"]
    await nova.wait_for_status(attack_server, "PAUSED", MEMBER, SETUP_TIMEOUT)
    # Through the gateway too: every action in the attack window must have its audit record.
    unpaused = await exchange(
        _port(audited_gateway.lab.url),
        request_bytes(
            "POST", ACTION.format(attack_server), [("X-Auth-Token", MEMBER), JSON], UNPAUSE
        ),
        timeout=30.0,
    )
    assert unpaused.reply.status == 202, unpaused.reply.body
    await nova.wait_for_status(attack_server, "ACTIVE", MEMBER, SETUP_TIMEOUT)


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.id for attack in ATTACKS])
async def test_refused_attack_runs_nothing_in_nova(
    attack: Attack, nova: ApiClient, audited_gateway: AuditedGateway, attack_server: str
) -> None:
    before = await action_log(nova, attack_server)
    assert await server_status(nova, attack_server) == "ACTIVE"
    port = _port(audited_gateway.lab.url)
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
    audited_gateway: AuditedGateway,
    attack_server: str,
) -> None:
    """Through the gateway, Nova answers at exactly the gateway's decision; and Nova alone,
    sent the same headers, decides the same (or refuses the same way)."""
    target = f"/v2.1/servers/{attack_server}"
    request = request_bytes("GET", target, [("X-Auth-Token", MEMBER), *case.headers])
    via_gateway = (await exchange(_port(audited_gateway.lab.url), request, timeout=30.0)).reply
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


# -- every action Nova ran was allowed by the gateway's audit record of it -----------------


async def _control(port: int, server_id: str, body: bytes) -> None:
    sent = await exchange(
        port,
        request_bytes("POST", ACTION.format(server_id), [("X-Auth-Token", MEMBER), JSON], body),
        timeout=30.0,
    )
    assert sent.reply.status == 202, sent.reply.body


async def test_nova_ran_only_what_the_audit_trail_allowed(
    nova: ApiClient,
    audited_gateway: AuditedGateway,
    attack_target: AttackTarget,
    e2e_timings: Callable[[str, float], None],
) -> None:
    """For every attack request, the gateway+realnova pair never executes an action that the
    gateway's audit record did not authorize; and the trail's seals verify."""
    server_id = attack_target.server_id
    port = _port(audited_gateway.lab.url)
    started = time.monotonic()
    for attack in ATTACKS:  # every attack once more, whatever ran before in this module
        await exchange(port, attack.build(server_id, port), timeout=30.0)
    # The control: allowed actions through the gateway must be found, or the check is vacuous.
    await _control(port, server_id, PAUSE)
    await nova.wait_for_status(server_id, "PAUSED", MEMBER, SETUP_TIMEOUT)
    await _control(port, server_id, UNPAUSE)
    await nova.wait_for_status(server_id, "ACTIVE", MEMBER, SETUP_TIMEOUT)
    e2e_timings("audited attack replay and control", time.monotonic() - started)

    window = [
        (action, request_id)
        for action, request_id in await admin_action_log(nova, server_id)
        if request_id not in attack_target.before
    ]
    assert {"pause", "unpause"} <= {action for action, _ in window}, window
    ran = [(server_id, action, request_id) for action, request_id in window]
    missing, records = await not_allowed(audited_gateway.audit_dir, ran)
    unauthorized = [(action, request_id) for _, action, request_id in missing]
    assert not unauthorized, (
        f"Nova ran {unauthorized} on {server_id} without an audit record allowing it "
        f"({len(records)} records)"
    )

    verified = audit_verify(audited_gateway)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK "), verified.stdout
