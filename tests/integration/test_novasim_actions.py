"""novasim's server actions: Nova's lookup -> policy -> lock -> state order, the lock
ownership rules, version-gated actions, effects and their answers. Expected texts were
checked against realnova (Nova 34)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from novasim import SimConfig, create_app
from novasim.testing import SimClient
from tests.support.waiting import wait_for_value

LAB_IMAGE_2 = "c0ffee00-0000-4000-8000-000000000002"


@pytest.fixture
async def nova(aiohttp_client: AiohttpClient) -> SimClient:
    return SimClient(await aiohttp_client(create_app(SimConfig(seed=1))))


async def fault(response: Any) -> tuple[int, str]:
    body = await response.json()
    [(_name, detail)] = body.items()
    return response.status, detail["message"]


# --- lookup and policy -------------------------------------------------------------------


async def test_other_projects_server_is_404_not_403(nova: SimClient) -> None:
    sid = nova.seeded("p1")
    assert await fault(await nova.action(sid, {"pause": None}, token="eve:p2")) == (
        404,
        f"Instance {sid} could not be found.",
    )
    assert (await nova.action(sid, {"pause": None}, token="admin:admin")).status == 202


@pytest.mark.parametrize(
    ("token", "body", "status", "rule"),
    [
        ("carol:p1:reader", {"pause": None}, 403, "os_compute_api:os-pause-server:pause"),
        ("svc:p1:service", {"lock": None}, 403, "os_compute_api:os-lock-server:lock"),
        ("alice:p1", {"migrate": None}, 403, "os_compute_api:os-migrate-server:migrate"),
        ("mgr:p1:manager", {"migrate": None}, 202, None),
        (
            "alice:p1",
            {"os-migrateLive": {"host": None, "block_migration": "auto"}},
            403,
            "os_compute_api:os-migrate-server:migrate_live",
        ),
        ("alice:p1", {"shelveOffload": None}, 403, "os_compute_api:os-shelve:shelve_offload"),
        ("alice:p1", {"evacuate": {}}, 403, "os_compute_api:os-evacuate"),
        (
            "alice:p1",
            {"os-resetState": {"state": "error"}},
            403,
            "os_compute_api:os-admin-actions:reset_state",
        ),
        (
            "alice:p1",
            {"injectNetworkInfo": None},
            403,
            "os_compute_api:os-admin-actions:inject_network_info",
        ),
        ("root::admin:system", {"pause": None}, 403, "os_compute_api:os-pause-server:pause"),
    ],
)
async def test_policy_defaults(
    nova: SimClient, token: str, body: dict[str, Any], status: int, rule: str | None
) -> None:
    response = await nova.action(nova.seeded(), body, token=token, version="2.25")
    assert response.status == status, await response.text()
    if rule is not None:
        assert await fault(response) == (403, f"Policy doesn't allow {rule} to be performed.")


async def test_migrate_with_a_host_needs_admin_from_2_56(nova: SimClient) -> None:
    sid = nova.seeded()
    before = await nova.action(sid, {"migrate": {"host": "x"}}, token="mgr:p1:manager")
    assert before.status == 202  # below 2.56 the body is not read at all
    nova.sim.store.servers[sid].vm_state = "active"
    with_host = await nova.action(
        sid, {"migrate": {"host": "compute1"}}, token="mgr:p1:manager", version="2.56"
    )
    assert await fault(with_host) == (
        403,
        "Policy doesn't allow os_compute_api:os-migrate-server:migrate:host to be performed.",
    )


async def test_console_policy_is_checked_before_the_lookup(nova: SimClient) -> None:
    body = {"os-getVNCConsole": {"type": "novnc"}}
    reader = await nova.action("no-such-server", body, token="carol:p1:reader")
    assert reader.status == 403
    member = await nova.action("no-such-server", body)
    assert member.status == 404
    ok = await nova.action(nova.seeded(), body)
    assert ok.status == 200
    console = (await ok.json())["console"]
    assert console["type"] == "novnc" and console["url"].startswith("http://127.0.0.1:6080/")
    gone = await nova.action(nova.seeded(), body, version="2.6")
    assert gone.status == 404


# --- lock ownership (nova-actions.md §0 "Who may lock and unlock") ------------------------


async def test_owner_lock_blocks_members_and_any_member_may_lift_it(nova: SimClient) -> None:
    sid = nova.seeded()
    locked = await nova.action(sid, {"lock": {"locked_reason": "deploy"}}, version="2.73")
    assert locked.status == 202
    assert nova.state(sid)["locked_by"] == "owner"
    server = await nova.show(sid, token="bob:p1")
    assert (server["locked"], server["locked_reason"]) == (True, "deploy")
    assert await fault(await nova.action(sid, {"pause": None}, token="bob:p1")) == (
        409,
        f"Instance {sid} is locked",
    )
    assert (await nova.action(sid, {"pause": None}, token="admin:admin")).status == 202
    assert (await nova.action(sid, {"unlock": None}, token="bob:p1")).status == 202
    unlocked = await nova.show(sid)
    assert (unlocked["locked"], unlocked["locked_reason"]) == (False, None)


async def test_relocking_inside_the_project_is_a_silent_no_op(nova: SimClient) -> None:
    sid = nova.seeded()
    await nova.action(sid, {"lock": {"locked_reason": "first"}}, version="2.73")
    again = await nova.action(sid, {"lock": {"locked_reason": "second"}}, version="2.73")
    assert again.status == 202
    assert (await nova.show(sid))["locked_reason"] == "first"
    listing = await nova.client.get(
        f"/v2.1/servers/{sid}/os-instance-actions", headers=nova.headers()
    )
    actions = [a["action"] for a in (await listing.json())["instanceActions"]]
    assert actions == ["lock", "create"]  # the no-op second lock records nothing


async def test_admin_lock_needs_admin_to_lift(nova: SimClient) -> None:
    sid = nova.seeded()
    response = await nova.action(sid, {"lock": None}, token="admin:admin")
    assert response.status == 202
    assert nova.state(sid)["locked_by"] == "admin"
    for token in ("alice:p1", "mgr:p1:manager"):
        refused = await nova.action(sid, {"unlock": None}, token=token)
        assert await fault(refused) == (
            403,
            "Policy doesn't allow os_compute_api:os-lock-server:unlock:unlock_override to be "
            "performed.",
        )
    # The owner's own lock attempt does not downgrade an admin lock either.
    assert (await nova.action(sid, {"lock": None})).status == 202
    assert nova.state(sid)["locked_by"] == "admin"
    assert (await nova.action(sid, {"unlock": None}, token="admin:admin")).status == 202
    assert nova.state(sid)["locked_by"] is None


async def test_admin_inside_the_owner_project_locks_as_owner(nova: SimClient) -> None:
    sid = nova.seeded()
    assert (await nova.action(sid, {"lock": None}, token="boss:p1:admin")).status == 202
    assert nova.state(sid)["locked_by"] == "owner"
    assert (await nova.action(sid, {"unlock": None}, token="alice:p1")).status == 202


async def test_unlocking_an_unlocked_server_is_accepted(nova: SimClient) -> None:
    assert (await nova.action(nova.seeded(), {"unlock": None})).status == 202


async def test_lock_entries_carry_the_lockers_identity_and_request_id(nova: SimClient) -> None:
    sid = nova.seeded()
    response = await nova.action(sid, {"lock": None}, token="admin:admin")
    request_id = response.headers["x-openstack-request-id"]
    listing = await nova.client.get(
        f"/v2.1/servers/{sid}/os-instance-actions", headers=nova.headers(version="2.58")
    )
    entry, created = (await listing.json())["instanceActions"]
    assert (created["action"], created["user_id"]) == ("create", "seed")
    assert entry["action"] == "lock" and entry["request_id"] == request_id
    assert (entry["project_id"], entry["user_id"]) == ("admin", "admin")
    assert entry["start_time"] and entry["updated_at"] and entry["message"] is None
    shown = await nova.client.get(
        f"/v2.1/servers/{sid}/os-instance-actions/{request_id}", headers=nova.headers()
    )
    assert (await shown.json())["instanceAction"]["request_id"] == request_id


@pytest.mark.parametrize(
    ("body", "version", "expected"),
    [
        ({"changePassword": {"adminPass": "x"}}, None, "is in an invalid state for"),
        ({"addFixedIp": {"networkId": 1}}, "2.43", "Unexpected API Error"),
        ({"reboot": {"type": "HARD"}}, None, "is locked"),
        ({"forceDelete": None}, None, "is locked"),
    ],
)
async def test_lock_refusal_texts(
    nova: SimClient, body: dict[str, Any], version: str | None, expected: str
) -> None:
    sid = nova.make_server(project="p1", locked_by="owner")
    status, message = await fault(await nova.action(sid, body, version=version))
    assert status == (500 if "Unexpected" in expected else 409)
    assert expected in message


@pytest.mark.parametrize(
    "body",
    [
        {"createImage": {"name": "snap"}},
        {"createBackup": {"name": "b", "backup_type": "daily", "rotation": 1}},
        {"os-getConsoleOutput": {}},
        {"addSecurityGroup": {"name": "web"}},
        {"lock": None},
    ],
)
async def test_actions_nova_does_not_lock_check(nova: SimClient, body: dict[str, Any]) -> None:
    sid = nova.make_server(project="p1", locked_by="admin")
    response = await nova.action(sid, body)
    assert response.status in (200, 202), await response.text()


# --- state checks ------------------------------------------------------------------------


CANNOT = "Cannot '{name}' instance {sid} while it is in {state}"
INVALID = "Instance {sid} is in an invalid state for '{name}'"
NOT_READY = "Instance {sid} is not ready"


@pytest.mark.parametrize(
    ("server", "body", "template", "name", "state"),
    [
        ({"vm_state": "paused"}, {"pause": None}, CANNOT, "pause", "vm_state paused"),
        ({}, {"os-start": None}, CANNOT, "start", "vm_state active"),
        ({"task_state": "pausing"}, {"suspend": None}, CANNOT, "suspend", "task_state pausing"),
        (
            {"vm_state": "stopped"},
            {"reboot": {"type": "SOFT"}},
            CANNOT,
            "reboot",
            "vm_state stopped",
        ),
        ({"launched_at": None}, {"pause": None}, INVALID, "pause", None),
        ({"vm_state": "shelved_offloaded"}, {"os-start": None}, NOT_READY, None, None),
        (
            {"task_state": "migrating"},
            {"os-getVNCConsole": {"type": "novnc"}},
            CANNOT,
            "get_vnc_console",
            "task_state migrating",
        ),
        ({}, {"confirmResize": None}, CANNOT, "confirmResize", "vm_state active"),
        (
            {"vm_state": "building"},
            {"createImage": {"name": "x"}},
            CANNOT,
            "createImage",
            "vm_state building",
        ),
    ],
)
async def test_state_refusals(
    nova: SimClient,
    server: dict[str, Any],
    body: dict[str, Any],
    template: str,
    name: str | None,
    state: str | None,
) -> None:
    sid = nova.make_server(project="p1", **server)
    expected = template.format(name=name, sid=sid, state=state)
    assert await fault(await nova.action(sid, body)) == (409, expected)


async def test_spice_state_refusal_escapes_as_500(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", task_state="deleting")
    response = await nova.action(sid, {"os-getSPICEConsole": {"type": "spice-html5"}})
    assert response.status == 500
    assert "InstanceInvalidState" in (await fault(response))[1]


async def test_hard_reboot_is_allowed_where_soft_is_not(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", vm_state="active", task_state="pausing")
    assert (await nova.action(sid, {"reboot": {"type": "SOFT"}})).status == 409
    assert (await nova.action(sid, {"reboot": {"type": "hard"}})).status == 202
    assert (await nova.show(sid))["status"] == "ACTIVE"


async def test_transitional_states_settle_after_the_delay(aiohttp_client: AiohttpClient) -> None:
    nova = SimClient(await aiohttp_client(create_app(SimConfig(seed=1, settle_delay=0.05))))
    sid = nova.seeded()
    assert (await nova.action(sid, {"pause": None})).status == 202
    pausing = await nova.show(sid)
    assert (pausing["status"], pausing["OS-EXT-STS:task_state"]) == ("ACTIVE", "pausing")
    assert await fault(await nova.action(sid, {"pause": None})) == (
        409,
        f"Cannot 'pause' instance {sid} while it is in task_state pausing",
    )
    paused = await wait_for_value(
        lambda: nova.show(sid), lambda shown: shown["status"] != "ACTIVE", what="the pause"
    )
    assert (paused["status"], paused["OS-EXT-STS:task_state"]) == ("PAUSED", None)


async def test_reset_state_overrides_a_task_in_flight(aiohttp_client: AiohttpClient) -> None:
    nova = SimClient(await aiohttp_client(create_app(SimConfig(seed=1, settle_delay=0.05))))
    sid = nova.seeded()
    await nova.action(sid, {"pause": None})
    reset = await nova.action(sid, {"os-resetState": {"state": "error"}}, token="admin:admin")
    assert reset.status == 202
    server = await wait_for_value(
        lambda: nova.show(sid),
        lambda shown: shown["OS-EXT-STS:task_state"] is None,
        what="the task to end",
    )
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("ERROR", None)


# --- versioned and removed actions -------------------------------------------------------


async def test_create_image_answer_changes_at_2_45(nova: SimClient) -> None:
    sid = nova.seeded()
    old = await nova.action(sid, {"createImage": {"name": "snap"}}, version="2.44")
    assert old.status == 202 and await old.read() == b""
    assert old.headers["Location"].startswith("http://localhost:9292/images/")
    assert old.headers["Content-Type"] == "text/html; charset=UTF-8"  # Nova's bare webob
    new = await nova.action(sid, {"createImage": {"name": "snap"}}, version="2.45")
    assert new.status == 202 and "Location" not in new.headers
    image_id = (await new.json())["image_id"]
    assert len(image_id) == 36
    rebuilt = await nova.action(sid, {"rebuild": {"imageRef": image_id}})
    assert rebuilt.status == 202  # the snapshot is a known image from now on


async def test_create_backup_location_only_with_rotation(nova: SimClient) -> None:
    sid = nova.seeded()
    body = {"createBackup": {"name": "b", "backup_type": "daily", "rotation": 0}}
    none = await nova.action(sid, body, version="2.44")
    assert "Location" not in none.headers
    body["createBackup"]["rotation"] = 2
    some = await nova.action(sid, body, version="2.44")
    assert "/v2.1/images/" in some.headers["Location"]
    volume = nova.make_server(project="p1", image="")
    assert await fault(await nova.action(volume, body)) == (
        400,
        "Backup is not supported for volume-backed instances.",
    )


async def test_floating_ips_end_at_2_43(nova: SimClient) -> None:
    sid = nova.seeded()
    body = {"addFloatingIp": {"address": "10.0.0.5"}}
    gone = await nova.action(sid, body, version="2.44")
    assert await fault(gone) == (404, "The resource could not be found.")
    added = await nova.action(sid, body, version="2.43")
    assert added.status == 202
    addresses = (await nova.show(sid))["addresses"]["private"]
    assert {"floating", "fixed"} == {a["OS-EXT-IPS:type"] for a in addresses}
    again = await nova.action(sid, body)
    assert await fault(again) == (400, "floating IP is already associated")
    elsewhere = await nova.action("other-id", {"removeFloatingIp": {"address": "10.0.0.5"}})
    assert await fault(elsewhere) == (
        409,
        "Floating IP 10.0.0.5 is not associated with instance other-id.",
    )
    stranger = await nova.action(sid, {"removeFloatingIp": {"address": "10.0.0.5"}}, "eve:p2")
    assert stranger.status == 404
    removed = await nova.action(sid, {"removeFloatingIp": {"address": "10.0.0.5"}})
    assert removed.status == 202
    unknown = await nova.action(sid, {"removeFloatingIp": {"address": "10.0.0.5"}})
    assert await fault(unknown) == (404, "Floating IP not found for address 10.0.0.5.")


async def test_removed_actions(nova: SimClient) -> None:
    reset = await nova.action("no-such-server", {"resetNetwork": None}, token="carol:p1:reader")
    assert await fault(reset) == (
        410,
        "This resource is no longer available. No forwarding address is given.",
    )
    assert "computeFault" in json.loads(await reset.read())
    rdp = await nova.action("no-such-server", {"os-getRDPConsole": {"type": "rdp-html5"}})
    assert rdp.status == 400
    assert (await nova.action("x", {"os-getRDPConsole": {}}, version="2.6")).status == 404


async def test_trigger_crash_dump_from_2_17_with_null_only(nova: SimClient) -> None:
    sid = nova.seeded()
    assert (await nova.action(sid, {"trigger_crash_dump": None}, version="2.16")).status == 404
    assert (await nova.action(sid, {"trigger_crash_dump": {}}, version="2.17")).status == 400
    assert (await nova.action(sid, {"trigger_crash_dump": None}, version="2.17")).status == 202


async def test_consoles_and_console_output(nova: SimClient) -> None:
    sid = nova.seeded()
    tail = await nova.action(sid, {"os-getConsoleOutput": {"length": 2}})
    assert await tail.json() == {"output": "ANOTHER\nLAST LINE"}
    everything = await nova.action(sid, {"os-getConsoleOutput": {}})
    assert (await everything.json())["output"].count("\n") == 2
    serial = await nova.action(sid, {"os-getSerialConsole": {"type": "serial"}}, version="2.5")
    assert (await serial.json())["console"]["url"].startswith("ws://")
    xvp = await nova.action(sid, {"os-getVNCConsole": {"type": "xvpvnc"}})
    assert xvp.status == 500  # realnova: ConsoleTypeInvalid escapes the controller


# --- effects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "body", "status", "end"),
    [
        ("active", {"pause": None}, 202, "PAUSED"),
        ("paused", {"unpause": None}, 202, "ACTIVE"),
        ("active", {"suspend": None}, 202, "SUSPENDED"),
        ("suspended", {"resume": None}, 202, "ACTIVE"),
        ("active", {"os-stop": None}, 202, "SHUTOFF"),
        ("stopped", {"os-start": None}, 202, "ACTIVE"),
        ("stopped", {"reboot": {"type": "HARD"}}, 202, "ACTIVE"),
        ("active", {"rescue": None}, 200, "RESCUE"),
        ("rescued", {"unrescue": None}, 202, "ACTIVE"),
        ("active", {"shelve": None}, 202, "SHELVED_OFFLOADED"),
        ("shelved_offloaded", {"unshelve": None}, 202, "ACTIVE"),
        ("soft-delete", {"restore": None}, 202, "ACTIVE"),
        ("active", {"resize": {"flavorRef": "2"}}, 202, "VERIFY_RESIZE"),
        ("resized", {"confirmResize": None}, 204, "ACTIVE"),
        ("resized", {"revertResize": None}, 202, "ACTIVE"),
        ("error", {"os-stop": None}, 202, "SHUTOFF"),
        ("active", {"changePassword": {"adminPass": "new"}}, 202, "ACTIVE"),
    ],
)
async def test_effects_reach_novas_end_states(
    nova: SimClient, start: str, body: dict[str, Any], status: int, end: str
) -> None:
    sid = nova.make_server(project="p1", vm_state=start)
    response = await nova.action(sid, body)
    assert response.status == status, await response.text()
    server = await nova.show(sid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == (end, None)


async def test_resize_confirm_and_revert_move_the_flavor(nova: SimClient) -> None:
    sid = nova.seeded()
    same = await nova.action(sid, {"resize": {"flavorRef": "1"}})
    assert await fault(same) == (400, "When resizing, instances must change flavor!")
    assert await fault(await nova.action(sid, {"resize": {"flavorRef": "9"}})) == (
        400,
        "Flavor 9 could not be found.",
    )
    assert await fault(await nova.action(sid, {"confirmResize": None})) == (
        409,
        f"Cannot 'confirmResize' instance {sid} while it is in vm_state active",
    )
    await nova.action(sid, {"resize": {"flavorRef": "2"}})
    assert (await nova.show(sid, version="2.1"))["flavor"]["id"] == "2"
    await nova.action(sid, {"revertResize": None})
    assert (await nova.show(sid, version="2.1"))["flavor"]["id"] == "1"
    resized_without_migration = nova.make_server(
        project="p1", vm_state="resized", migration_pending=False
    )
    refused = await nova.action(resized_without_migration, {"confirmResize": None})
    assert await fault(refused) == (400, "Instance has not been resized.")


async def test_rebuild_answers_the_full_server_with_location(nova: SimClient) -> None:
    sid = nova.seeded()
    body = {"rebuild": {"imageRef": LAB_IMAGE_2, "name": "rebuilt", "adminPass": "pw"}}
    response = await nova.action(sid, body, version="2.1")
    assert response.status == 202
    assert response.headers["Location"].endswith(f"/v2.1/servers/{sid}")
    server = (await response.json())["server"]
    assert (server["status"], server["adminPass"], server["name"]) == ("REBUILD", "pw", "rebuilt")
    assert server["image"]["id"] == LAB_IMAGE_2 and "OS-EXT-STS:vm_state" not in server
    full = await nova.action(sid, {"rebuild": {"imageRef": LAB_IMAGE_2}}, version="2.75")
    rebuilt = (await full.json())["server"]
    assert rebuilt["OS-EXT-STS:task_state"] == "rebuilding" and "user_data" in rebuilt
    assert len(rebuilt["adminPass"]) == 12
    unknown = await nova.action(
        sid, {"rebuild": {"imageRef": "c0ffee00-0000-4000-8000-00000000ffff"}}
    )
    assert await fault(unknown) == (400, "Cannot find image for rebuild")


async def test_rescue_and_evacuate_return_passwords(nova: SimClient) -> None:
    sid = nova.seeded()
    rescued = await nova.action(sid, {"rescue": {"adminPass": "given"}})
    assert (rescued.status, await rescued.json()) == (200, {"adminPass": "given"})
    volume = nova.make_server(project="p1", image="")
    assert await fault(await nova.action(volume, {"rescue": None})) == (
        400,
        f"Instance {volume} cannot be rescued: Cannot rescue a volume-backed instance",
    )
    other = nova.make_server(project="p1", host="compute1")
    evacuated = await nova.action(
        other, {"evacuate": {"onSharedStorage": False}}, token="admin:admin", version="2.13"
    )
    assert evacuated.status == 200 and len((await evacuated.json())["adminPass"]) == 12
    assert nova.state(other)["host"] == "compute2"
    newer = await nova.action(other, {"evacuate": {}}, token="admin:admin", version="2.14")
    assert newer.status == 200 and await newer.read() == b""
    current = nova.state(other)["host"]
    same = await nova.action(
        other, {"evacuate": {"host": current}}, token="admin:admin", version="2.14"
    )
    assert await fault(same) == (400, "The target host can't be the same one.")


async def test_unshelve_with_a_zone_needs_an_offloaded_server(
    aiohttp_client: AiohttpClient,
) -> None:
    config = SimConfig(seed=1, offload_on_shelve=False)
    nova = SimClient(await aiohttp_client(create_app(config)))
    sid = nova.seeded()
    await nova.action(sid, {"shelve": None})
    assert (await nova.show(sid))["status"] == "SHELVED"
    zoned = await nova.action(sid, {"unshelve": {"availability_zone": "nova"}}, version="2.77")
    assert await fault(zoned) == (
        409,
        f'Specifying an availability zone or a host when unshelving server "{sid}" with '
        'status "shelved" is not supported. The server status must be SHELVED_OFFLOADED.',
    )
    offload = await nova.action(sid, {"shelveOffload": None}, token="admin:admin")
    assert offload.status == 202
    to_host = await nova.action(sid, {"unshelve": {"host": "compute1"}}, version="2.91")
    assert await fault(to_host) == (
        403,
        "Policy doesn't allow os_compute_api:os-shelve:unshelve_to_host to be performed.",
    )
    assert (await nova.action(sid, {"unshelve": None})).status == 202
    assert (await nova.show(sid))["status"] == "ACTIVE"


async def test_security_groups(nova: SimClient) -> None:
    sid = nova.seeded()
    assert await fault(await nova.action(sid, {"addSecurityGroup": {"name": " "}})) == (
        400,
        "Security group name cannot be empty",
    )
    assert (await nova.action(sid, {"addSecurityGroup": {"name": "web"}})).status == 202
    groups = (await nova.show(sid))["security_groups"]
    assert groups == [{"name": "default"}, {"name": "web"}]
    assert (await nova.action(sid, {"removeSecurityGroup": {"name": "web"}})).status == 202
    missing = await nova.action(sid, {"removeSecurityGroup": {"name": "web"}})
    assert missing.status == 404


async def test_force_delete_removes_the_server(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", vm_state="soft-delete")
    assert (await nova.action(sid, {"forceDelete": None})).status == 202
    assert (await nova.action(sid, {"restore": None})).status == 404


# --- Nova's own request samples ----------------------------------------------------------

_STATE_FOR = {
    "confirmResize": "resized",
    "revertResize": "resized",
    "os-start": "stopped",
    "unpause": "paused",
    "resume": "suspended",
    "unrescue": "rescued",
    "unshelve": "shelved_offloaded",
    "shelveOffload": "shelved",
    "restore": "soft-delete",
}


def _sample_requests(shared: Path) -> list[tuple[str, str]]:
    index = (shared / "nova" / "samples" / "INDEX.md").read_text()
    rows = []
    for line in index.splitlines():
        cells = [cell.strip().strip("`") for cell in line.split("|")]
        if len(cells) < 4 or not cells[1].endswith(".json") or "(request" not in cells[2]:
            continue
        if "NOT an action" in cells[2]:
            continue
        folder = Path(cells[1]).parent.name
        version = folder[1:] if folder.startswith("v2.") else "2.1"
        rows.append((cells[1], version))
    return rows


async def test_novas_request_samples_pass_dispatch_and_schema(
    nova: SimClient, shared_dir: Path
) -> None:
    samples = _sample_requests(shared_dir)
    assert len(samples) > 60
    for path, version in samples:
        body = json.loads((shared_dir / "nova" / "samples" / path).read_text())
        [key] = body
        sid = nova.make_server(project="p1", vm_state=_STATE_FOR.get(key, "active"))
        response = await nova.action(sid, body, token="admin:admin", version=version)
        if response.status == 400 and key != "os-getRDPConsole":
            message = (await fault(response))[1]
            assert not message.startswith("Invalid input"), (path, message)
            assert message not in ("Malformed request body",), path
        # Sample hosts, floating IPs and groups do not exist here: their 404s are Nova's.
        expected_404 = ("evacuate", "removeFloatingIp", "removeSecurityGroup")
        assert response.status != 404 or key in expected_404, (
            path,
            await response.text(),
        )
