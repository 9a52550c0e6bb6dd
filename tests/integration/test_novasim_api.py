"""novasim over HTTP: Nova's outer pipeline (size, auth, route, microversion, content
type), the action dispatcher (§A.3), headers, non-action resources and the /_sim/ control
plane. Expected texts were checked against realnova (Nova 34)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from novasim import RECORDER, SimConfig, create_app
from novasim.testing import SimClient
from tests.support.waiting import wait_for_value

REQUEST_ID = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)
NOT_FOUND = {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}
MALFORMED = {"badRequest": {"code": 400, "message": "Malformed request body"}}


@pytest.fixture
async def nova(aiohttp_client: AiohttpClient) -> SimClient:
    return SimClient(await aiohttp_client(create_app(SimConfig(seed=1))))


def version_headers(response: Any) -> tuple[str | None, str | None, list[str]]:
    return (
        response.headers.get("OpenStack-API-Version"),
        response.headers.get("X-OpenStack-Nova-API-Version"),
        response.headers.getall("Vary", []),
    )


# --- version documents -------------------------------------------------------------------


async def test_version_documents_need_no_token(nova: SimClient) -> None:
    root = await nova.client.get("/")
    assert root.status == 200
    versions = (await root.json())["versions"]
    assert [v["id"] for v in versions] == ["v2.0", "v2.1"]
    for path in ("/v2.1", "/v2.1/"):
        response = await nova.client.get(path)
        document = (await response.json())["version"]
        assert (document["min_version"], document["version"], document["status"]) == (
            "2.1",
            "2.104",
            "CURRENT",
        )
        assert document["links"][0]["rel"] == "self"
        assert document["links"][0]["href"].endswith("/v2.1/")
        assert version_headers(response)[0] == "compute 2.1"


async def test_other_root_paths_get_novas_multiple_choices(nova: SimClient) -> None:
    response = await nova.client.get("/foo")
    assert response.status == 300
    choices = (await response.json())["choices"]
    assert [c["links"][0]["href"].rsplit("/", 2)[-2:] for c in choices] == [
        ["v2", "foo"],
        ["v2.1", "foo"],
    ]


# --- headers -----------------------------------------------------------------------------


async def test_every_answer_carries_request_ids_and_version_headers(nova: SimClient) -> None:
    response = await nova.action(nova.seeded(), {"pause": None}, version="2.73")
    assert response.status == 202
    assert await response.read() == b""
    assert response.headers["Content-Type"] == "application/json"
    request_id = response.headers["x-openstack-request-id"]
    assert REQUEST_ID.match(request_id)
    assert response.headers["x-compute-request-id"] == request_id
    assert version_headers(response) == (
        "compute 2.73",
        "2.73",
        ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"],
    )
    again = await nova.action(nova.seeded(), {"unpause": None})
    assert again.headers["x-openstack-request-id"] != request_id


async def test_faults_are_nova_bodies_with_version_headers(nova: SimClient) -> None:
    response = await nova.action("nope", {"pause": None})
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert await response.json() == {
        "itemNotFound": {"code": 404, "message": "Instance nope could not be found."}
    }
    assert version_headers(response)[0] == "compute 2.1"
    assert REQUEST_ID.match(response.headers["x-compute-request-id"])


# --- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "not-a-token"])
async def test_missing_or_bad_token_is_keystonemiddlewares_401(
    nova: SimClient, token: str | None
) -> None:
    headers = nova.headers(token=None)
    if token is not None:
        headers["X-Auth-Token"] = token
    response = await nova.client.post(
        f"/v2.1/servers/{nova.seeded()}/action", data=b'{"pause": null}', headers=headers
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Keystone uri=")
    body = await response.json()
    assert body["error"]["code"] == 401 and body["error"]["title"] == "Unauthorized"
    assert version_headers(response) == (None, None, [])
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


async def test_authentication_comes_before_routing(nova: SimClient) -> None:
    response = await nova.client.get("/v2.1/no/such/path")
    assert response.status == 401


async def test_client_identity_headers_are_ignored_without_trust(nova: SimClient) -> None:
    headers = {"X-User-Id": "admin", "X-Project-Id": "p1", "X-Roles": "admin"}
    response = await nova.client.get("/v2.1/servers", headers=headers)
    assert response.status == 401


async def test_trusted_identity_headers_when_configured(aiohttp_client: AiohttpClient) -> None:
    config = SimConfig(seed=1, trust_identity_headers=True)
    nova = SimClient(await aiohttp_client(create_app(config)))
    headers = {"X-User-Id": "u", "X-Project-Id": "p1", "X-Roles": "member,reader"}
    response = await nova.client.get("/v2.1/servers", headers=headers)
    assert response.status == 200
    assert len((await response.json())["servers"]) == 1


# --- routing -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_on_action_is_webob_404_never_405(nova: SimClient, method: str) -> None:
    response = await nova.client.request(
        method,
        f"/v2.1/servers/{nova.seeded()}/action",
        headers={"X-Auth-Token": "alice:p1", "Accept": "application/json"},
    )
    assert response.status == 404
    assert await response.json() == {
        "message": "The resource could not be found.<br /><br />\n\n\n",
        "code": "404 Not Found",
        "title": "Not Found",
    }
    assert version_headers(response) == (None, None, [])


@pytest.mark.parametrize(
    ("accept", "content_type", "marker"),
    [
        (None, "text/plain", b"404 Not Found\n\nThe resource could not be found."),
        ("*/*", "text/html", b"<h1>404 Not Found</h1>"),
    ],
)
async def test_router_miss_body_follows_accept(
    nova: SimClient, accept: str | None, content_type: str, marker: bytes
) -> None:
    headers = {"X-Auth-Token": "alice:p1"}
    if accept:
        headers["Accept"] = accept
    response = await nova.client.get(
        "/v2.1/servers/", headers=headers, skip_auto_headers=["Accept"]
    )
    assert response.status == 404 and response.content_type == content_type
    assert marker in await response.read()


async def test_url_project_id_must_match_the_token(nova: SimClient) -> None:
    sid = nova.make_server(project="abc")
    own = await nova.client.get(f"/v2.1/abc/servers/{sid}", headers=nova.headers("u:abc"))
    assert own.status == 200
    server = (await own.json())["server"]
    assert server["links"][0]["href"].endswith(f"/v2.1/abc/servers/{sid}")
    other = await nova.action(sid, {"pause": None}, token="u:def")  # no URL project: lookup
    assert other.status == 404
    mismatch = await nova.client.post(
        f"/v2.1/def/servers/{sid}/action", data=b'{"pause": null}', headers=nova.headers("u:abc")
    )
    assert mismatch.status == 400
    assert (await mismatch.json())["badRequest"]["message"] == (
        "Malformed request URL: URL's project_id 'def' doesn't match Context's project_id 'abc'"
    )


# --- body size ---------------------------------------------------------------------------


async def test_body_limit_is_114688_bytes_before_auth(nova: SimClient) -> None:
    url = f"/v2.1/servers/{nova.seeded()}/action"
    padding = 114688 - len(b'{"pause": ""}')
    exact = b'{"pause": "' + b"a" * padding + b'"}'
    assert len(exact) == 114688
    accepted = await nova.client.post(url, data=exact, headers=nova.headers())
    assert accepted.status == 202
    too_big = await nova.client.post(
        url, data=exact + b" ", headers={"Accept": "application/json"}
    )  # no token: the size limit answers first
    assert too_big.status == 413
    assert await too_big.json() == {
        "message": "Request is too large. Larger than max_request_body_size (%s).<br /><br />"
        "\n\n\n",
        "code": "413 Request Entity Too Large",
        "title": "Request Entity Too Large",
    }
    assert version_headers(too_big) == (None, None, [])


async def test_chunked_body_over_the_limit_is_413(nova: SimClient) -> None:
    async def chunks() -> Any:
        for _ in range(8):
            yield b"x" * 16384

    response = await nova.client.post(
        f"/v2.1/servers/{nova.seeded()}/action", data=chunks(), headers=nova.headers()
    )
    assert response.status == 413
    assert response.content_type == "text/html"  # aiohttp's client sends Accept: */*


# --- microversions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "version"),
    [
        ({}, "2.1"),
        ({"OpenStack-API-Version": "compute latest"}, "2.104"),
        ({"OpenStack-API-Version": "COMPUTE 2.40"}, "2.40"),
        ({"OpenStack-API-Version": "volume 3.1", "X-OpenStack-Nova-API-Version": "2.40"}, "2.40"),
        ({"X-OpenStack-Nova-API-Version": "2.60"}, "2.60"),
        ({"OpenStack-API-Version": "compute 2.30, compute 2.31"}, "2.31"),
    ],
)
async def test_negotiated_version_is_echoed(
    nova: SimClient, headers: dict[str, str], version: str
) -> None:
    response = await nova.client.get(
        "/v2.1/flavors", headers={"X-Auth-Token": "alice:p1", **headers}
    )
    assert response.status == 200
    assert version_headers(response)[:2] == (f"compute {version}", version)


async def test_out_of_range_version_is_406_echoing_it(nova: SimClient) -> None:
    response = await nova.action(nova.seeded(), {"pause": None}, version="2.105")
    assert response.status == 406
    assert await response.json() == {
        "computeFault": {
            "code": 406,
            "message": "Version 2.105 is not supported by the API. "
            "Minimum is 2.1 and maximum is 2.104.",
        }
    }
    assert version_headers(response) == (
        "compute 2.105",
        "2.105",
        ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"],
    )


@pytest.mark.parametrize("version", ["2.01", "LATEST", "abc"])
async def test_malformed_version_is_400_without_version_headers(
    nova: SimClient, version: str
) -> None:
    response = await nova.action(nova.seeded(), {"pause": None}, version=version)
    assert response.status == 400
    assert (await response.json())["badRequest"]["message"] == (
        f"API Version String {version} is of invalid format. Must be of format MajorNum.MinorNum."
    )
    assert version_headers(response) == (None, None, [])


# --- content type ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 202),
        ("application/json; charset=UTF-8", 202),
        ("application/vnd.openstack.compute+json", 202),
        ("text/plain", 202),
        ("", 202),
        ("application/xml", 415),
        ("application/json ; charset=UTF-8", 415),  # webob keeps the space; Nova refuses
    ],
)
async def test_content_type(nova: SimClient, content_type: str, status: int) -> None:
    headers = {"X-Auth-Token": "alice:p1", "Content-Type": content_type}
    response = await nova.client.post(
        f"/v2.1/servers/{nova.seeded()}/action", data=b'{"pause": null}', headers=headers
    )
    assert response.status == status
    if status == 415:
        assert await response.json() == {
            "badMediaType": {"code": 415, "message": "Unsupported Content-Type"}
        }


# --- the action dispatcher (nova-actions.md §A.3) ----------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", MALFORMED),
        (b"{", MALFORMED),
        (b"\xff\xfe", MALFORMED),
        (b"{}", MALFORMED),
        (b'{"lock": null, "unlock": null}', MALFORMED),
        (
            b'{"foo": null}',
            {"badRequest": {"code": 400, "message": "There is no such action: foo"}},
        ),
        (
            b'{"Reboot": {"type": "HARD"}}',
            {"badRequest": {"code": 400, "message": "There is no such action: Reboot"}},
        ),
        (b"[1]", NOT_FOUND),
        (b'"a"', NOT_FOUND),
        (b"1", NOT_FOUND),
        (b"true", NOT_FOUND),
        (b"null", NOT_FOUND),
        (b"[1, 2]", MALFORMED),
        (b'"ab"', MALFORMED),
        (b'""', MALFORMED),
        (b"[]", MALFORMED),
    ],
)
async def test_action_dispatch_table(nova: SimClient, raw: bytes, expected: Any) -> None:
    response = await nova.action(nova.seeded(), None, raw=raw)
    assert await response.json() == expected
    assert response.status == next(iter(expected.values()))["code"]


async def test_duplicate_keys_keep_the_last_value_like_python_json(nova: SimClient) -> None:
    sid = nova.seeded()
    raw = b'{"lock": null, "lock": {"locked_reason": "last wins"}}'
    response = await nova.action(sid, None, raw=raw, version="2.73")
    assert response.status == 202
    assert (await nova.show(sid))["locked_reason"] == "last wins"


async def test_schema_errors_use_novas_messages(nova: SimClient) -> None:
    response = await nova.action(nova.seeded(), {"reboot": {"type": "COLD"}})
    assert response.status == 400
    assert (await response.json())["badRequest"]["message"] == (
        "Invalid input for field/attribute type. Value: COLD. 'COLD' is not one of "
        "['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
    )


async def test_version_gate_comes_before_schema_and_lookup(nova: SimClient) -> None:
    too_old = await nova.action("no-such-server", {"trigger_crash_dump": {}}, version="2.16")
    assert too_old.status == 404 and await too_old.json() == NOT_FOUND
    schema = await nova.action("no-such-server", {"trigger_crash_dump": {}}, version="2.17")
    assert schema.status == 400


# --- servers -----------------------------------------------------------------------------


async def test_list_is_project_filtered_and_all_tenants_is_admin_only(nova: SimClient) -> None:
    mine = await nova.client.get("/v2.1/servers", headers=nova.headers("alice:p1"))
    assert [s["name"] for s in (await mine.json())["servers"]] == ["p1-seed-0"]
    refused = await nova.client.get("/v2.1/servers?all_tenants=1", headers=nova.headers("alice:p1"))
    assert refused.status == 403
    assert (await refused.json())["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:servers:index:get_all_tenants to be performed."
    )
    everyone = await nova.client.get(
        "/v2.1/servers/detail?all_tenants", headers=nova.headers("admin:admin")
    )
    names = sorted(s["name"] for s in (await everyone.json())["servers"])
    assert names == ["p1-seed-0", "p2-seed-0"]
    bad = await nova.client.get("/v2.1/servers?all_tenants=maybe", headers=nova.headers())
    assert bad.status == 400


async def test_show_hides_other_projects_and_shapes_fields_by_version(nova: SimClient) -> None:
    sid = nova.seeded("p1")
    hidden = await nova.client.get(f"/v2.1/servers/{sid}", headers=nova.headers("eve:p2"))
    assert hidden.status == 404
    old = (await (await nova.client.get(f"/v2.1/servers/{sid}", headers=nova.headers())).json())[
        "server"
    ]
    assert "locked" not in old and set(old["flavor"]) == {"id", "links"}
    assert old["OS-EXT-STS:vm_state"] == "active" and old["status"] == "ACTIVE"
    assert "OS-EXT-SRV-ATTR:host" not in old
    new = await nova.show(sid, token="alice:p1", version="2.104")
    assert new["locked"] is False and new["locked_reason"] is None
    assert new["flavor"]["original_name"] == "m1.tiny" and "description" in new
    assert new["OS-SRV-USG:launched_at"] is not None and new["tenant_id"] == "p1"
    admin = await nova.show(sid, token="admin:admin", version="2.104")
    assert admin["OS-EXT-SRV-ATTR:host"] in ("compute1", "compute2")
    assert admin["host_status"] == "UP"


async def test_volume_backed_servers_show_an_empty_image(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", image="")
    server = await nova.show(sid, token="alice:p1")
    assert server["image"] == ""
    assert server["os-extended-volumes:volumes_attached"][0]["id"]


async def test_create_builds_then_settles(aiohttp_client: AiohttpClient) -> None:
    nova = SimClient(await aiohttp_client(create_app(SimConfig(settle_delay=0.05))))
    response = await nova.client.post(
        "/v2.1/servers",
        json={
            "server": {
                "name": "web",
                "flavorRef": "2",
                "imageRef": "c0ffee00-0000-4000-8000-000000000001",
                "networks": "auto",
            }
        },
        headers=nova.headers(version="2.37"),
    )
    assert response.status == 202
    body = (await response.json())["server"]
    assert set(body) == {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
    assert response.headers["Location"].endswith(f"/v2.1/servers/{body['id']}")
    building = await nova.show(body["id"], token="alice:p1")
    assert (building["status"], building["OS-EXT-STS:task_state"]) == ("BUILD", "scheduling")
    assert building["OS-SRV-USG:launched_at"] is None and building["addresses"] == {}
    active = await wait_for_value(
        lambda: nova.show(body["id"], token="alice:p1"),
        lambda shown: shown["status"] != "BUILD",
        what="the build to end",
    )
    assert active["status"] == "ACTIVE" and active["OS-SRV-USG:launched_at"]


async def test_create_validation(nova: SimClient) -> None:
    missing = await nova.client.post(
        "/v2.1/servers", json={"server": {"name": "x", "flavorRef": "1"}}, headers=nova.headers()
    )
    assert (await missing.json())["badRequest"]["message"] == "Missing imageRef attribute"
    networks = await nova.client.post(
        "/v2.1/servers",
        json={"server": {"name": "x", "flavorRef": "1", "imageRef": ""}},
        headers=nova.headers(version="2.37"),
    )
    assert "'networks' is a required property" in (await networks.json())["badRequest"]["message"]
    reader = await nova.client.post(
        "/v2.1/servers", json={"server": {}}, headers=nova.headers("carol:p1:reader")
    )
    assert reader.status == 403


async def test_update_renames_even_a_locked_server(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", locked_by="admin")
    response = await nova.client.put(
        f"/v2.1/servers/{sid}",
        json={"server": {"name": "renamed", "description": "d"}},
        headers=nova.headers(version="2.19"),
    )
    assert response.status == 200
    server = (await response.json())["server"]
    assert (server["name"], server["description"]) == ("renamed", "d")
    bad = await nova.client.put(
        f"/v2.1/servers/{sid}", json={"server": {"foo": 1}}, headers=nova.headers()
    )
    assert (await bad.json())["badRequest"]["message"] == (
        "Invalid input for field/attribute server. Value: {'foo': 1}. Additional properties "
        "are not allowed ('foo' was unexpected)"
    )


async def test_delete_is_lock_checked(nova: SimClient) -> None:
    sid = nova.make_server(project="p1", locked_by="owner")
    locked = await nova.client.delete(f"/v2.1/servers/{sid}", headers=nova.headers())
    assert locked.status == 409
    assert (await locked.json())["conflictingRequest"]["message"] == f"Instance {sid} is locked"
    gone = await nova.client.delete(f"/v2.1/servers/{sid}", headers=nova.headers("admin:admin"))
    assert gone.status == 204
    assert gone.headers["Content-Type"] == "application/json"
    assert sid not in nova.sim.store.servers


async def test_flavors_and_limits(nova: SimClient) -> None:
    flavors = await nova.client.get("/v2.1/flavors", headers=nova.headers())
    assert [(f["id"], f["name"]) for f in (await flavors.json())["flavors"]] == [
        ("1", "m1.tiny"),
        ("2", "m1.small"),
        ("3", "m1.medium"),
    ]
    small = await nova.client.get("/v2.1/flavors/2", headers=nova.headers())
    assert (await small.json())["flavor"]["ram"] == 2048
    missing = await nova.client.get("/v2.1/flavors/9", headers=nova.headers())
    assert (await missing.json())["itemNotFound"]["message"] == "Flavor 9 could not be found."
    limits = await nova.client.get("/v2.1/limits", headers=nova.headers(version="2.57"))
    absolute = (await limits.json())["limits"]["absolute"]
    assert absolute["maxTotalInstances"] == 10 and absolute["totalInstancesUsed"] == 1
    assert "maxPersonality" not in absolute and "maxTotalFloatingIps" not in absolute


# --- the recorder and the control plane --------------------------------------------------


async def test_recorder_keeps_raw_requests(nova: SimClient) -> None:
    assert nova.client.app is not None
    recorder = nova.client.app[RECORDER]
    recorder.clear()
    raw = b'{"pause": null}'
    await nova.client.post(
        f"/v2.1/servers/{nova.seeded()}/action?x=1", data=raw, headers=nova.headers()
    )
    [record] = recorder.records()
    assert record.method == "POST" and record.path.endswith("/action?x=1")
    assert record.body == raw and record.status == 202
    assert record.header("x-auth-token") == "alice:p1"
    listing = await (await nova.client.get("/_sim/requests")).json()
    assert listing["requests"][0]["body"] == raw.decode()
    assert listing["requests"][0]["headers"][0][0]
    cleared = await nova.client.delete("/_sim/requests")
    assert cleared.status == 204 and len(recorder) == 0


async def test_recorder_is_bounded(aiohttp_client: AiohttpClient) -> None:
    nova = SimClient(await aiohttp_client(create_app(SimConfig(max_recorded_requests=3))))
    for _ in range(5):
        await nova.client.get("/")
    assert len(nova.sim.recorder) == 3


async def test_sim_servers_creates_any_state(nova: SimClient) -> None:
    response = await nova.client.post(
        "/_sim/servers",
        json={
            "project": "p2",
            "user": "bob",
            "vm_state": "stopped",
            "launched_at": None,
            "locked_by": "admin",
            "locked_reason": "maintenance",
            "image": "",
        },
    )
    assert response.status == 201
    created = (await response.json())["server"]
    server = await nova.show(created["id"], token="eve:p2")
    assert server["status"] == "SHUTOFF" and server["locked"] is True
    assert server["locked_reason"] == "maintenance" and server["image"] == ""
    assert server["OS-SRV-USG:launched_at"] is None and server["user_id"] == "bob"
    state = await (await nova.client.get(f"/_sim/servers/{created['id']}")).json()
    assert state["server"]["locked_by"] == "admin"
    bad = await nova.client.post("/_sim/servers", json={"vm_state": "sleeping"})
    assert bad.status == 400


async def test_blob_streams_exactly_n_bytes(nova: SimClient) -> None:
    response = await nova.client.get("/_sim/blob?bytes=300000")
    assert response.status == 200
    body = await response.read()
    assert len(body) == 300000 and body[:3] == b"\x00\x01\x02"
    empty = await nova.client.get("/_sim/blob?bytes=0")
    assert await empty.read() == b""


def test_command_line_announces_ready_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "novasim", "--port", "0", "--seed", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:") and line.rstrip().endswith("/v2.1")
        url = line.split()[1]
        request = urllib.request.Request(url + "/servers", headers={"X-Auth-Token": "alice:p1"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert len(json.load(answer)["servers"]) == 2
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
