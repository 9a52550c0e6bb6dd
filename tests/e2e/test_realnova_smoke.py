"""Proves the e2e fixtures work: realnova answers, isolates projects, acts; realkeystone validates.

Owns smoke checks of the labs themselves; must never test the gateway (those tests go elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.support.api_client import ApiClient
from tests.support.labs import RealKeystone, RealNova

ALICE = "alice:p1"
BOB = "bob:p1"
EVE = "eve:p2"


async def test_version_documents(nova: ApiClient, realnova: RealNova) -> None:
    versions = await nova.request("GET", realnova.root_url)
    assert versions.status == 200
    current = [v for v in versions.body["versions"] if v["status"] == "CURRENT"]
    assert [v["id"] for v in current] == ["v2.1"]

    v21 = await nova.request("GET", "/")
    assert v21.status == 200
    assert v21.body["version"]["min_version"] == "2.1"
    assert v21.body["version"]["version"] == current[0]["version"]


async def test_list_servers_shows_only_own_project(nova: ApiClient, realnova: RealNova) -> None:
    reply = await nova.request("GET", "/servers", token=ALICE)
    assert reply.status == 200
    listed = {server["id"] for server in reply.body["servers"]}
    assert set(realnova.seed_servers["p1"]) <= listed
    assert not listed & set(realnova.seed_servers["p2"])


async def test_other_projects_server_is_404(nova: ApiClient, realnova: RealNova) -> None:
    reply = await nova.server(realnova.seed("p1"), EVE)
    assert reply.status == 404
    assert reply.body["itemNotFound"]["code"] == 404


async def test_pause_then_unpause(
    nova: ApiClient, realnova: RealNova, e2e_timings: Callable[[str, float], None]
) -> None:
    server_id = realnova.seed("p1", 0)
    await nova.wait_for_status(server_id, "ACTIVE", ALICE)

    started = time.monotonic()
    paused = await nova.action(server_id, {"pause": None}, ALICE)
    e2e_timings("realnova pause action round trip (202)", time.monotonic() - started)
    assert paused.status == 202, paused.body
    started = time.monotonic()
    await nova.wait_for_status(server_id, "PAUSED", ALICE)
    e2e_timings("realnova pause: 202 to status PAUSED", time.monotonic() - started)

    unpaused = await nova.action(server_id, {"unpause": None}, ALICE)
    assert unpaused.status == 202, unpaused.body
    await nova.wait_for_status(server_id, "ACTIVE", ALICE)


async def test_owner_lock_blocks_actions_and_a_project_member_lifts_it(
    nova: ApiClient, realnova: RealNova
) -> None:
    server_id = realnova.seed("p1", 1)
    await nova.wait_for_status(server_id, "ACTIVE", ALICE)

    assert (await nova.action(server_id, {"lock": None}, ALICE)).status == 202
    try:
        shown = await nova.server(server_id, ALICE, microversion="2.9")
        assert shown.body["server"]["locked"] is True
        refused = await nova.action(server_id, {"pause": None}, ALICE)
        assert refused.status == 409, refused.body
        assert "locked" in refused.body["conflictingRequest"]["message"]
    finally:
        unlocked = await nova.action(server_id, {"unlock": None}, BOB)
    assert unlocked.status == 202, unlocked.body
    shown = await nova.server(server_id, ALICE, microversion="2.9")
    assert shown.body["server"]["locked"] is False


async def test_keystone_token_validates_for_the_service_user(
    keystone: ApiClient, realkeystone: RealKeystone
) -> None:
    user_token = realkeystone.issue_token("alice", "p1")
    service_token = realkeystone.issue_token("nova-gateway", "service")

    reply = await keystone.request(
        "GET",
        "/auth/tokens?nocatalog",
        token=service_token,
        headers={"X-Subject-Token": user_token},
    )
    assert reply.status == 200, reply.body
    token = reply.body["token"]
    assert token["project"]["id"] == "p1"
    assert token["user"]["name"] == "alice"
    assert {role["name"] for role in token["roles"]} == {"member", "reader"}
    assert "catalog" not in token


async def test_whole_real_chain_keystone_tokens_reach_nova(
    nova_chain: ApiClient, realkeystone: RealKeystone
) -> None:
    alice = realkeystone.issue_token("alice", "p1")
    listed = await nova_chain.request("GET", "/servers", token=alice)
    assert listed.status == 200, listed.body
    assert listed.body["servers"] == []
    assert (await nova_chain.request("GET", "/servers", token=ALICE)).status == 401
