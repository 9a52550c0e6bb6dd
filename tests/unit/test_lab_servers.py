"""The end-to-end set-up's boot helper retries builds Nova's scheduling or resource claim
failed, and nothing else, against a scripted stand-in for Nova's server API on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support import lab_servers
from tests.support.api_client import ApiClient

NO_HOST = {"code": 500, "message": "No valid host was found. "}
CLAIM_RACE = {
    "code": 500,
    "message": "Failed to update allocations for consumer c. Error: another process changed "
    "the consumer c after the report client read the consumer state during the claim ",
}
OTHER = {"code": 500, "message": "Build of instance aborted: disk full"}


@dataclass
class ScriptedNova:
    """Each booted server ends as the next fault in ``faults`` (None: ACTIVE)."""

    faults: list[dict[str, object] | None]
    booted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    boots: list[tuple[str, str, str]] = field(default_factory=list)  # name, image, token
    outcome: dict[str, dict[str, object] | None] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/servers", self.boot)
        app.router.add_get("/servers/{id}", self.show)
        app.router.add_delete("/servers/{id}", self.delete)
        return app

    async def boot(self, request: web.Request) -> web.Response:
        asked = (await request.json())["server"]
        self.boots.append((asked["name"], asked["imageRef"], request.headers["X-Auth-Token"]))
        server_id = f"srv-{len(self.booted)}"
        self.booted.append(server_id)
        self.outcome[server_id] = self.faults[len(self.booted) - 1]
        return web.json_response({"server": {"id": server_id}}, status=202)

    async def show(self, request: web.Request) -> web.Response:
        server_id = request.match_info["id"]
        if server_id in self.deleted:
            return web.json_response({"itemNotFound": {"code": 404}}, status=404)
        fault = self.outcome[server_id]
        status = "ACTIVE" if fault is None else "ERROR"
        view: dict[str, object] = {"id": server_id, "status": status}
        if fault is not None:
            view["fault"] = fault
        return web.json_response({"server": view})

    async def delete(self, request: web.Request) -> web.Response:
        self.deleted.append(request.match_info["id"])
        return web.Response(status=204)


@pytest.fixture
async def served() -> AsyncIterator[tuple[ScriptedNova, ApiClient]]:
    nova = ScriptedNova([])
    server = TestServer(nova.app(), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield nova, ApiClient(session, str(server.make_url("")))
    await server.close()


async def test_a_build_scheduling_failed_is_deleted_and_booted_again(
    served: tuple[ScriptedNova, ApiClient],
) -> None:
    nova, client = served
    nova.faults[:] = [NO_HOST, CLAIM_RACE, None]
    created: list[str] = []
    server_id = await lab_servers.boot_active(client, "s", "token", 5.0, created=created)
    assert server_id == "srv-2"
    assert nova.deleted == ["srv-0", "srv-1"]
    assert created == ["srv-2"]


async def test_any_other_error_fails_at_once(served: tuple[ScriptedNova, ApiClient]) -> None:
    nova, client = served
    nova.faults[:] = [OTHER, None]
    created: list[str] = []
    with pytest.raises(AssertionError, match="disk full"):
        await lab_servers.boot_active(client, "s", "token", 5.0, created=created)
    assert nova.booted == ["srv-0"] and nova.deleted == []
    assert created == ["srv-0"]  # left for the caller's teardown


async def test_the_attempts_are_bounded(served: tuple[ScriptedNova, ApiClient]) -> None:
    nova, client = served
    nova.faults[:] = [NO_HOST] * (lab_servers.BOOT_ATTEMPTS + 1)
    created: list[str] = []
    with pytest.raises(AssertionError, match="No valid host"):
        await lab_servers.boot_active(client, "s", "token", 5.0, created=created)
    assert len(nova.booted) == lab_servers.BOOT_ATTEMPTS
    assert created == [nova.booted[-1]]  # the last one is the teardown's


async def test_a_seed_left_in_error_is_replaced_and_the_others_kept(
    served: tuple[ScriptedNova, ApiClient],
) -> None:
    nova, client = served
    nova.outcome.update({"seed-a": NO_HOST, "seed-b": None, "seed-c": None})
    nova.faults[:] = [None]  # the replacement builds
    seeds = {"p1": ["seed-a", "seed-b"], "p2": ["seed-c"]}
    usable = await lab_servers.replace_failed_seeds(client, seeds, "admin", "image", 5.0)
    assert usable == {"p1": ["srv-0", "seed-b"], "p2": ["seed-c"]}
    assert nova.deleted == ["seed-a"]
    assert nova.boots == [("p1-seed-0", "image", "seed:p1")]
