"""The whole gate in front of the simulator: identity, visibility, policy, lock, state.

Every refusal is asserted on the wire AND on what reached the upstream (nothing).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import SimUpstream
from tests.support.api_client import post_action
from tests.support.gateway import base_url


@pytest.fixture
async def gate(novasim_upstream: SimUpstream, start_gateway: Any) -> tuple[str, SimUpstream]:
    listeners = await start_gateway(novasim_upstream.url)
    return base_url(listeners), novasim_upstream


async def test_owner_action_is_forwarded(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", user_id="alice")
    status, _ = await post_action(gateway, server, {"pause": None})
    assert status == 202
    assert sim.actions_received(server) == [b'{"pause": null}']


async def test_other_project_is_404_and_not_forwarded(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    status, body = await post_action(gateway, server, {"pause": None}, token="eve:p2")
    assert status == 404
    assert body == {
        "itemNotFound": {"code": 404, "message": f"Instance {server} could not be found."}
    }
    assert sim.actions_received(server) == []


async def test_unknown_server_is_404(gate: tuple[str, SimUpstream]) -> None:
    gateway, _ = gate
    status, body = await post_action(gateway, "no-such-server", {"pause": None})
    assert status == 404 and "no-such-server" in body["itemNotFound"]["message"]


async def test_reader_is_403_whatever_headers_it_sends(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    status, body = await post_action(
        gateway,
        server,
        {"pause": None},
        token="carol:p1:reader",
        **{
            "X-Roles": "admin",
            "X-Is-Admin-Project": "True",
            "X_Roles": "admin",
            "x-project-id": "p1",
            "OpenStack-System-Scope": "all",
        },
    )
    assert status == 403
    assert body["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:os-pause-server:pause to be performed."
    )
    assert sim.actions_received(server) == []


async def test_manager_may_migrate_member_may_not(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    status, _ = await post_action(gateway, server, {"migrate": None}, token="alice:p1")
    assert status == 403
    status, _ = await post_action(gateway, server, {"migrate": None}, token="mgr:p1:manager")
    assert status == 202
    status, body = await post_action(
        gateway,
        server,
        {"migrate": {"host": "compute2"}},
        token="mgr:p1:manager",
        **{"OpenStack-API-Version": "compute 2.56"},
    )
    assert status == 403 and "migrate:host" in body["forbidden"]["message"]


async def test_locked_server_refuses_members_but_not_admins(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", locked_by="owner")
    status, body = await post_action(gateway, server, {"pause": None})
    assert (status, body) == (
        409,
        {"conflictingRequest": {"code": 409, "message": f"Instance {server} is locked"}},
    )
    assert sim.actions_received(server) == []
    status, _ = await post_action(gateway, server, {"pause": None}, token="admin:admin")
    assert status == 202


async def test_lock_texts_follow_nova(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", locked_by="owner")
    status, body = await post_action(gateway, server, {"changePassword": {"adminPass": "x"}})
    assert status == 409
    assert body["conflictingRequest"]["message"] == (
        f"Instance {server} is in an invalid state for 'changePassword'"
    )
    # createImage is not lock-checked: the owner may still snapshot a locked server.
    status, _ = await post_action(gateway, server, {"createImage": {"name": "snap"}})
    assert status == 202


async def test_unlocking_an_admin_lock_needs_the_override(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    assert (await post_action(gateway, server, {"lock": None}, token="admin:admin"))[0] == 202
    status, body = await post_action(gateway, server, {"unlock": None})
    assert status == 403 and "unlock_override" in body["forbidden"]["message"]
    assert (await post_action(gateway, server, {"unlock": None}, token="admin:admin"))[0] == 202
    # An owner lock is lifted by any member of the project.
    assert (await post_action(gateway, server, {"lock": None}))[0] == 202
    assert (await post_action(gateway, server, {"unlock": None}, token="bob:p1"))[0] == 202


async def test_admin_lock_found_in_the_instance_action_log(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    # Locked behind the gateway's back: the gateway has no record and must ask Nova.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.url}/servers/{server}/action",
            json={"lock": None},
            headers={"X-Auth-Token": "admin:admin"},
        ) as response,
    ):
        assert response.status == 202
    status, body = await post_action(gateway, server, {"unlock": None})
    assert status == 403 and "unlock_override" in body["forbidden"]["message"]


async def test_state_preconditions(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", vm_state="active")
    status, body = await post_action(gateway, server, {"unpause": None})
    assert (status, body["conflictingRequest"]["message"]) == (
        409,
        f"Cannot 'unpause' instance {server} while it is in vm_state active",
    )
    status, body = await post_action(gateway, server, {"os-start": None})
    assert body["conflictingRequest"]["message"] == (
        f"Cannot 'start' instance {server} while it is in vm_state active"
    )
    never_booted = sim.make_server(project_id="p1", vm_state="stopped", launched_at=None)
    status, body = await post_action(gateway, never_booted, {"os-start": None})
    assert (status, body["conflictingRequest"]["message"]) == (
        409,
        f"Instance {never_booted} is in an invalid state for 'start'",
    )
    assert sim.actions_received(server) == [] and sim.actions_received(never_booted) == []


async def test_reboot_state_depends_on_type(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", vm_state="stopped")
    status, body = await post_action(gateway, server, {"reboot": {"type": "soft"}})
    assert status == 409 and "vm_state stopped" in body["conflictingRequest"]["message"]
    status, _ = await post_action(gateway, server, {"reboot": {"type": "hard"}})
    assert status == 202


async def test_lock_is_checked_before_state(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", vm_state="active", locked_by="owner")
    _status, body = await post_action(gateway, server, {"unpause": None})
    assert body["conflictingRequest"]["message"] == f"Instance {server} is locked"


async def test_url_project_must_be_the_tokens(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway}/v2.1/0abc/servers/{server}/action",
            json={"pause": None},
            headers={"X-Auth-Token": "alice:p1"},
        ) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert body["badRequest"]["message"] == (
        "Malformed request URL: URL's project_id '0abc' doesn't match Context's project_id 'p1'"
    )


async def test_system_scoped_token_is_refused_by_project_rules(
    gate: tuple[str, SimUpstream],
) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    status, _ = await post_action(gateway, server, {"pause": None}, token="sys::admin:system")
    assert status == 403
    assert sim.actions_received(server) == []


async def test_no_token_is_401(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1")
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway}/v2.1/servers/{server}/action", json={"pause": None}) as response,
    ):
        assert response.status == 401
        # keystonemiddleware's body, which Nova's stack answers with.
        assert (await response.json())["error"]["code"] == 401


async def test_delete_is_lock_checked(gate: tuple[str, SimUpstream]) -> None:
    gateway, sim = gate
    server = sim.make_server(project_id="p1", locked_by="owner")
    async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
        async with session.delete(f"{gateway}/v2.1/servers/{server}") as response:
            assert response.status == 409
        async with session.delete(
            f"{gateway}/v2.1/servers/{server}", headers={"X-Auth-Token": "eve:p2"}
        ) as response:
            assert response.status == 404
    assert server in sim.sim.store.servers


async def test_cache_is_invalidated_by_forwarded_actions(
    novasim_upstream: SimUpstream, start_gateway: Any
) -> None:
    gateway = base_url(await start_gateway(novasim_upstream.url, server_lookup__cache_ttl=60))
    server = novasim_upstream.make_server(project_id="p1")
    assert (await post_action(gateway, server, {"os-getConsoleOutput": {}}))[0] == 200
    assert (await post_action(gateway, server, {"lock": None}))[0] == 202
    status, _ = await post_action(gateway, server, {"pause": None})
    assert status == 409  # the lock was seen although the server is cached for 60 s


async def test_server_lookup_failure_is_503(start_gateway: Any, fake_upstream: Any) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    # The fake upstream answers the gateway's GET /servers/{id} with an echo document,
    # not a server: the gateway cannot decide, and says so (never 502, never forwards).
    status, body = await post_action(gateway, "some-id", {"pause": None})
    assert status == 503
    assert body["serviceUnavailable"]["code"] == 503  # Nova's fault name for 503
    assert body["serviceUnavailable"]["message"] == (
        "The gateway could not read the server to decide (not a server document); retry later."
    )
    assert [r.path_qs for r in upstream.received if "/servers/" in r.path_qs] == [
        "/v2.1/servers/some-id"
    ]


async def test_a_server_in_transition_is_not_cached(
    novasim_upstream: SimUpstream, start_gateway: Any
) -> None:
    gateway = base_url(await start_gateway(novasim_upstream.url, server_lookup__cache_ttl=60))
    server = novasim_upstream.make_server(project_id="p1", vm_state="active", task_state="pausing")
    status, _ = await post_action(gateway, server, {"unpause": None})
    assert status == 409  # still active, pausing
    stored = novasim_upstream.sim.store.servers[server]
    stored.vm_state, stored.task_state = "paused", None  # the task finished at Nova
    status, _ = await post_action(gateway, server, {"unpause": None})
    assert status == 202
