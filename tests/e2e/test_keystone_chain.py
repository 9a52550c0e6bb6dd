"""The whole real chain: realkeystone tokens, the gateway in keystone mode, realnova behind it.

Owns the proof that every link validates the same real identity; never stops a shared lab.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import skip_or_fail
from tests.e2e.audited_gateway import RECORD_TIMEOUT, audit_records, start_audited_gateway
from tests.e2e.gateway_fixtures import GatewayLab, keystone_identity
from tests.support.api_client import ApiClient, Reply
from tests.support.lab_servers import boot_active, delete_server
from tests.support.labs import RealKeystone, RealNova

BOOT_TIMEOUT = 60.0
STATE_TIMEOUT = 30.0
REVOCATION_TIMEOUT = 15.0  # token_cache_time is 1 s: the 401 comes well before this
TOKEN_CACHE_TIME = 1


@dataclass(frozen=True)
class Tokens:
    """Real Keystone token ids, one per fixture user, issued once for the module."""

    alice: str  # p1 member
    carol: str  # p1 reader
    eve: str  # p2 member
    sysreader: str  # system-scoped reader


@dataclass(frozen=True)
class Chain:
    """The gateway before the Keystone-validating realnova, and where its audit trail goes."""

    gateway: GatewayLab
    audit_dir: Path
    keystone: RealKeystone


def _issue(keystone: RealKeystone, user: str, project: str | None, *, system: bool = False) -> str:
    try:
        return keystone.issue_token(user, project, system=system)
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"realkeystone cannot issue a token for {user}: {exc}")
        raise  # not reached: skip_or_fail raises


@pytest.fixture(scope="module")
def tokens(realkeystone: RealKeystone) -> Tokens:
    return Tokens(
        alice=_issue(realkeystone, "alice", "p1"),
        carol=_issue(realkeystone, "carol", "p1"),
        eve=_issue(realkeystone, "eve", "p2"),
        sysreader=_issue(realkeystone, "sysreader", None, system=True),
    )


@pytest.fixture(scope="module")
def chain(
    realkeystone: RealKeystone,
    realnova_keystone: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[Chain]:
    """A gateway in keystone mode (service user: Keystone's admin), audit trail on."""
    home = tmp_path_factory.mktemp("keystone-chain")
    sections = {
        "identity": keystone_identity(realkeystone, token_cache_time=str(TOKEN_CACHE_TIME)),
    }
    audited = start_audited_gateway(
        realnova_keystone.url, home, lab_logs, sections, name="the gateway (keystone mode)"
    )
    e2e_timings("gateway (keystone mode) start to READY", audited.process.startup_seconds)
    yield Chain(audited.lab, audited.audit_dir, realkeystone)
    audited.process.stop()


@pytest.fixture(scope="module")
def chain_server(chain: Chain, tokens: Tokens) -> Iterator[str]:
    """alice's server, booted through the gateway with her real token; deleted afterwards."""
    server_id = asyncio.run(_boot(chain.gateway.url, tokens.alice))
    try:
        yield server_id
    finally:
        asyncio.run(_delete(chain.gateway.url, server_id, tokens.alice))


async def _boot(url: str, token: str) -> str:
    async with aiohttp.ClientSession() as session:
        gateway = ApiClient(session, url)
        return await boot_active(gateway, "e2e-chain", token, BOOT_TIMEOUT, interval=0.25)


async def _delete(url: str, server_id: str, token: str) -> None:
    async with aiohttp.ClientSession() as session:
        gateway = ApiClient(session, url)
        await delete_server(gateway, server_id, token, timeout=BOOT_TIMEOUT, interval=0.25)


async def send(
    client: ApiClient, method: str, path: str, token: str, body: Any = None
) -> tuple[Reply, str]:
    """One request with a fresh global request id: the id its audit record carries."""
    global_id = f"req-{uuid.uuid4()}"
    reply = await client.request(
        method, path, token=token, json_body=body, headers={"X-OpenStack-Request-ID": global_id}
    )
    return reply, global_id


async def record_of(audit_dir: Path, global_id: str) -> dict[str, Any]:
    """The one audit record of the request sent with ``global_id`` (bounded wait)."""
    deadline = time.monotonic() + RECORD_TIMEOUT
    while True:
        found = [r for r in audit_records(audit_dir) if r.get("global_request_id") == global_id]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < deadline, f"no audit record for {global_id}"
        await asyncio.sleep(0.05)


async def refused_by_the_gateway(chain: Chain, global_id: str, status: int) -> dict[str, Any]:
    """The record shows the gateway answered ``status`` itself: denied, never forwarded."""
    record = await record_of(chain.audit_dir, global_id)
    assert record["decision"]["outcome"] == "deny", record["decision"]
    assert record["decision"]["status"] == status, record["decision"]
    assert record["upstream"] is None, record["upstream"]
    return record


@pytest.fixture
def gateway(chain: Chain, http_session: aiohttp.ClientSession) -> ApiClient:
    """A client for the keystone-mode gateway's ``/v2.1``."""
    return ApiClient(http_session, chain.gateway.url)


async def test_member_boots_a_server_through_the_gateway(
    gateway: ApiClient, chain: Chain, tokens: Tokens, chain_server: str
) -> None:
    reply = await gateway.server(chain_server, tokens.alice)
    assert reply.status == 200, reply.body
    assert reply.body["server"]["tenant_id"] == "p1"
    assert reply.body["server"]["user_id"] == chain.keystone.fixtures["users"]["alice"]


async def test_member_pauses_and_unpauses(
    gateway: ApiClient, chain: Chain, tokens: Tokens, chain_server: str
) -> None:
    path = f"/servers/{chain_server}/action"
    paused, pause_id = await send(gateway, "POST", path, tokens.alice, {"pause": None})
    assert paused.status == 202, paused.body
    await gateway.wait_for_status(chain_server, "PAUSED", tokens.alice, STATE_TIMEOUT)
    unpaused, _ = await send(gateway, "POST", path, tokens.alice, {"unpause": None})
    assert unpaused.status == 202, unpaused.body
    await gateway.wait_for_status(chain_server, "ACTIVE", tokens.alice, STATE_TIMEOUT)

    # Nova ran the pause as alice (keystonemiddleware's reading of the same token), and the
    # gateway's record of it names both alice and Nova's own request id.
    record = await record_of(chain.audit_dir, pause_id)
    alice_id = chain.keystone.fixtures["users"]["alice"]
    assert record["decision"]["outcome"] == "allow", record["decision"]
    assert record["initiator"]["user_id"] == alice_id
    assert record["initiator"]["identity"] == "keystone"
    log = await gateway.request(
        "GET", f"/servers/{chain_server}/os-instance-actions", token=tokens.alice
    )
    assert log.status == 200, log.body
    pauses = [row for row in log.body["instanceActions"] if row["action"] == "pause"]
    assert [(row["request_id"], row["user_id"]) for row in pauses] == [
        (record["upstream"]["request_id"], alice_id)
    ]


async def test_reader_is_refused_by_the_gateway(
    gateway: ApiClient, chain: Chain, tokens: Tokens, chain_server: str
) -> None:
    reply, global_id = await send(
        gateway, "POST", f"/servers/{chain_server}/action", tokens.carol, {"pause": None}
    )
    assert reply.status == 403, reply.body
    assert reply.body["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:os-pause-server:pause to be performed."
    )
    record = await refused_by_the_gateway(chain, global_id, 403)
    assert record["initiator"]["user_id"] == chain.keystone.fixtures["users"]["carol"]
    assert record["initiator"]["roles"] == ["reader"]


async def test_other_project_gets_404(
    gateway: ApiClient, chain: Chain, tokens: Tokens, chain_server: str
) -> None:
    reply, global_id = await send(
        gateway, "POST", f"/servers/{chain_server}/action", tokens.eve, {"pause": None}
    )
    assert reply.status == 404, reply.body
    assert reply.body["itemNotFound"]["message"] == f"Instance {chain_server} could not be found."
    await refused_by_the_gateway(chain, global_id, 404)


async def test_garbage_token_is_401(gateway: ApiClient, chain: Chain, chain_server: str) -> None:
    garbage = "gAAAAABnot-a-fernet-token"
    reply, global_id = await send(
        gateway, "POST", f"/servers/{chain_server}/action", garbage, {"pause": None}
    )
    assert reply.status == 401, reply.body
    # keystonemiddleware names its www_authenticate_uri, path and all (Nova's own answer
    # is compared header for header in tests/e2e/test_differential.py).
    assert reply.headers.get("WWW-Authenticate") == f'Keystone uri="{chain.keystone.url}"'
    assert reply.body["error"]["message"] == "The request you have made requires authentication."
    await refused_by_the_gateway(chain, global_id, 401)


async def test_revoked_token_is_401_once_the_cache_expires(
    gateway: ApiClient,
    chain: Chain,
    chain_server: str,
    http_session: aiohttp.ClientSession,
    e2e_timings: Callable[[str, float], None],
) -> None:
    token = await asyncio.to_thread(_issue, chain.keystone, "alice", "p1")
    assert (await gateway.server(chain_server, token)).status == 200  # validated and cached
    async with http_session.delete(
        f"{chain.keystone.url}/auth/tokens",
        headers={"X-Auth-Token": token, "X-Subject-Token": token},
    ) as revoked:
        assert revoked.status == 204
    revoked_at = time.monotonic()
    deadline = revoked_at + REVOCATION_TIMEOUT
    while True:  # bounded: a cached validation may still answer for token_cache_time
        reply, global_id = await send(gateway, "GET", f"/servers/{chain_server}", token)
        if reply.status == 401:
            break
        assert reply.status == 200, reply.body
        assert time.monotonic() < deadline, "the revoked token still works through the gateway"
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - revoked_at
    e2e_timings("revoked token refused by the gateway after", elapsed)
    assert elapsed < TOKEN_CACHE_TIME + 5.0
    record = await refused_by_the_gateway(chain, global_id, 401)
    assert record["decision"]["reason"] == "token_invalid"


async def test_system_scoped_token_is_403(
    gateway: ApiClient, chain: Chain, tokens: Tokens, chain_server: str
) -> None:
    reply, global_id = await send(
        gateway, "POST", f"/servers/{chain_server}/action", tokens.sysreader, {"pause": None}
    )
    assert reply.status == 403, reply.body
    record = await refused_by_the_gateway(chain, global_id, 403)
    assert record["initiator"]["system_scope"] == "all"
    assert record["initiator"]["project_id"] is None
    assert (await gateway.server(chain_server, tokens.alice)).body["server"]["status"] == "ACTIVE"
