"""The gateway in front of real Nova is invisible to a client for a server's whole life.

Owns the side-by-side run of create / show / list / actions / refusals / delete, once
directly against realnova and once through the gateway, and the comparison of statuses,
fault bodies, server documents and headers; must never act on the seed servers.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.api_client import ApiClient, Reply

ALICE = "alice:p1"
EVE = "eve:p2"
STOCK_IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # survives the Glance fixture's rotation
SERVER_NAME = "e2e-transparent"
NAME_FILTER = f"name=%5E{SERVER_NAME}%24"  # Nova filters names by regex: ^e2e-transparent$
MISSING_SERVER = "00000000-0000-4000-8000-00000000beef"
SHOW_VERSIONS = (None, "2.9", "2.73", "latest")
DELETE_TIMEOUT = 30.0

# Two servers booted from the same request differ only in these fields.
VOLATILE_FIELDS = frozenset(
    {"id", "created", "updated", "OS-SRV-USG:launched_at", "hostId", "adminPass"}
)
# Headers that differ on any two answers (or name the hop, not the API).
UNCOMPARED_HEADERS = frozenset(
    {"date", "server", "content-length", "connection", "keep-alive", "transfer-encoding"}
)
REQUEST_ID_HEADERS = ("x-openstack-request-id", "x-compute-request-id")
ORIGIN = re.compile(r"https?://[^/\s\"]+")
REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


def normalise(value: Any, server_ids: Mapping[str, str], *, twins: bool) -> Any:
    """``value`` with links' scheme://host:port and the given ids replaced by placeholders.

    ``twins``: the two documents describe two different servers, so the fields that
    differ between any two servers (ids, timestamps, hostId, adminPass) are dropped.
    """
    if isinstance(value, dict):
        return {
            key: normalise(item, server_ids, twins=twins)
            for key, item in value.items()
            if not (twins and key in VOLATILE_FIELDS)
        }
    if isinstance(value, list):
        return [normalise(item, server_ids, twins=twins) for item in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = ORIGIN.sub("<origin>", value)
        for server_id, placeholder in server_ids.items():
            text = text.replace(server_id, placeholder)
        return text
    return value


def differing(want: Any, got: Any, where: str = "") -> list[str]:
    """Where two JSON values differ, as ``path: direct != via gateway`` lines."""
    if isinstance(want, dict) and isinstance(got, dict):
        return [
            line
            for key in sorted(set(want) | set(got))
            for line in differing(
                want.get(key, "<absent>"), got.get(key, "<absent>"), f"{where}.{key}"
            )
        ]
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            line
            for index, (left, right) in enumerate(zip(want, got, strict=True))
            for line in differing(left, right, f"{where}[{index}]")
        ]
    return [] if want == got else [f"{where or 'body'}: {want!r} direct != {got!r} via gateway"]


def compared_headers(reply: Reply, server_ids: Mapping[str, str]) -> dict[str, list[str]]:
    """Header name -> values (normalised), without the ones any two answers differ in."""
    headers: dict[str, list[str]] = {}
    for name in {key.lower() for key in reply.headers}:
        if name in UNCOMPARED_HEADERS:
            continue
        values = reply.headers.getall(name)
        if name in REQUEST_ID_HEADERS:
            values = ["<request-id>" if REQUEST_ID.match(v) else v for v in values]
        headers[name] = [normalise(v, server_ids, twins=False) for v in values]
    return headers


@dataclass
class Comparison:
    """Collects every difference between the direct and the gateway answers of a step."""

    differences: list[str] = field(default_factory=list)
    steps: int = 0

    def check(
        self,
        step: str,
        direct: Reply,
        via_gateway: Reply,
        server_ids: Mapping[str, str] | None = None,
        *,
        twins: bool = False,
        expected_status: int | None = None,
    ) -> None:
        """Same status, body and headers; ``expected_status`` also pins Nova's answer."""
        self.steps += 1
        ids = dict(server_ids or {})
        if expected_status is not None and direct.status != expected_status:
            self.differences.append(
                f"{step}: realnova answered {direct.status}, the test expected "
                f"{expected_status}: {direct.body!r}"
            )
        if direct.status != via_gateway.status:
            self.differences.append(
                f"{step}: status {direct.status} direct, {via_gateway.status} via gateway "
                f"({via_gateway.body!r})"
            )
        want = normalise(direct.body, ids, twins=twins)
        got = normalise(via_gateway.body, ids, twins=twins)
        if want != got:
            self.differences.append(f"{step}: body differs: " + "; ".join(differing(want, got)))
        want_headers = compared_headers(direct, ids)
        got_headers = compared_headers(via_gateway, ids)
        if want_headers != got_headers:
            keys = sorted(set(want_headers) | set(got_headers))
            detail = "; ".join(
                f"{key}: {want_headers.get(key)} direct, {got_headers.get(key)} via gateway"
                for key in keys
                if want_headers.get(key) != got_headers.get(key)
            )
            self.differences.append(f"{step}: headers differ: {detail}")

    def report(self) -> str:
        return f"{len(self.differences)} difference(s) in {self.steps} steps:\n" + "\n".join(
            self.differences
        )


async def wait_until_gone(client: ApiClient, server_id: str, token: str) -> Reply:
    """Poll GET until the server answers 404; that answer. AssertionError past the deadline."""
    deadline = time.monotonic() + DELETE_TIMEOUT
    while True:
        reply = await client.server(server_id, token)
        if reply.status == 404:
            return reply
        assert reply.status == 200, f"GET deleted server {server_id}: {reply.status}"
        assert time.monotonic() < deadline, f"server {server_id} still there after delete"
        await asyncio.sleep(0.2)


async def both(
    nova: ApiClient,
    gateway: ApiClient,
    method: str,
    paths: tuple[str, str],
    *,
    token: str = ALICE,
    json_body: Any = None,
    microversion: str | None = None,
) -> tuple[Reply, Reply]:
    """The same request, direct (first path) and through the gateway (second path)."""
    direct = await nova.request(
        method, paths[0], token=token, json_body=json_body, microversion=microversion
    )
    via_gateway = await gateway.request(
        method, paths[1], token=token, json_body=json_body, microversion=microversion
    )
    return direct, via_gateway


async def test_server_life_cycle_is_the_same_through_the_gateway(
    nova: ApiClient, gateway: ApiClient
) -> None:
    seen = Comparison()
    boot = {"server": {"name": SERVER_NAME, "imageRef": STOCK_IMAGE, "flavorRef": "1"}}
    refused_boot = {"server": {"name": SERVER_NAME, "imageRef": STOCK_IMAGE, "flavorRef": "999"}}

    direct, via_gateway = await both(
        nova, gateway, "POST", ("/servers",) * 2, json_body=refused_boot
    )
    seen.check("create with an unknown flavor", direct, via_gateway, expected_status=400)

    created_direct, created_via_gateway = await both(
        nova, gateway, "POST", ("/servers",) * 2, json_body=boot
    )
    assert created_direct.status == 202, created_direct.body
    assert created_via_gateway.status == 202, created_via_gateway.body
    mine = created_direct.body["server"]["id"]  # booted directly
    theirs = created_via_gateway.body["server"]["id"]  # booted through the gateway
    twins = {mine: "<server>", theirs: "<server>"}
    pair = (f"/servers/{mine}", f"/servers/{theirs}")
    actions = (f"{pair[0]}/action", f"{pair[1]}/action")
    try:
        seen.check("create", created_direct, created_via_gateway, twins, twins=True)
        await asyncio.gather(
            nova.wait_for_status(mine, "ACTIVE", ALICE, timeout=60.0),
            gateway.wait_for_status(theirs, "ACTIVE", ALICE, timeout=60.0),
        )

        # The same resource read both ways: identical but for links' host:port.
        for server_id in (mine, theirs):
            for version in SHOW_VERSIONS:
                direct, via_gateway = await both(
                    nova, gateway, "GET", (f"/servers/{server_id}",) * 2, microversion=version
                )
                seen.check(
                    f"show {server_id} at {version}", direct, via_gateway, expected_status=200
                )
        for listing in ("/servers", "/servers/detail"):
            for version in (None, "latest"):
                path = f"{listing}?{NAME_FILTER}"
                direct, via_gateway = await both(
                    nova, gateway, "GET", (path, path), microversion=version
                )
                seen.check(f"list {listing} at {version}", direct, via_gateway, expected_status=200)
                listed = {server["id"] for server in direct.body.get("servers", [])}
                if listed != {mine, theirs}:
                    seen.differences.append(f"list {listing}: realnova listed {listed}")

        # The booted-directly and the booted-through-the-gateway servers look alike.
        for version in SHOW_VERSIONS:
            direct, via_gateway = await both(nova, gateway, "GET", pair, microversion=version)
            seen.check(f"show twins at {version}", direct, via_gateway, twins, twins=True)

        await _pause_and_unpause(nova, gateway, seen, actions, pair, twins)
        await _lock_and_unlock(nova, gateway, seen, actions, pair, twins)

        direct, via_gateway = await both(
            nova, gateway, "POST", actions, json_body={"os-getConsoleOutput": {"length": 5}}
        )
        seen.check(
            "os-getConsoleOutput", direct, via_gateway, twins, twins=True, expected_status=200
        )

        # Another project's server is not found, whichever way it is asked for.
        for version in (None, "latest"):
            direct, via_gateway = await both(
                nova, gateway, "GET", (pair[0],) * 2, token=EVE, microversion=version
            )
            seen.check(
                f"show as another project at {version}", direct, via_gateway, expected_status=404
            )
        direct, via_gateway = await both(
            nova, gateway, "POST", (actions[0],) * 2, token=EVE, json_body={"pause": None}
        )
        seen.check("pause as another project", direct, via_gateway, expected_status=404)
        direct, via_gateway = await both(nova, gateway, "DELETE", (pair[0],) * 2, token=EVE)
        seen.check("delete as another project", direct, via_gateway, expected_status=404)
        direct, via_gateway = await both(nova, gateway, "GET", (f"/servers/{MISSING_SERVER}",) * 2)
        seen.check("show a server that never existed", direct, via_gateway, expected_status=404)

        direct, via_gateway = await both(nova, gateway, "DELETE", pair)
        seen.check("delete", direct, via_gateway, twins, twins=True, expected_status=204)
        if direct.status == via_gateway.status == 204:
            gone_direct, gone_via_gateway = await asyncio.gather(
                wait_until_gone(nova, mine, ALICE), wait_until_gone(gateway, theirs, ALICE)
            )
            seen.check("show after delete", gone_direct, gone_via_gateway, twins, twins=True)
    finally:
        for server_id in (mine, theirs):
            await nova.request("DELETE", f"/servers/{server_id}", token=ALICE)
    assert not seen.differences, seen.report()


async def _pause_and_unpause(
    nova: ApiClient,
    gateway: ApiClient,
    seen: Comparison,
    actions: tuple[str, str],
    pair: tuple[str, str],
    twins: Mapping[str, str],
) -> None:
    """pause → PAUSED → pause again (409) → unpause → ACTIVE → unpause again (409)."""
    mine, theirs = (path.rsplit("/", 1)[1] for path in pair)
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"pause": None})
    seen.check("pause", direct, via_gateway, twins, twins=True, expected_status=202)
    await asyncio.gather(
        nova.wait_for_status(mine, "PAUSED", ALICE),
        gateway.wait_for_status(theirs, "PAUSED", ALICE),
    )
    direct, via_gateway = await both(nova, gateway, "GET", pair, microversion="latest")
    seen.check("show paused twins", direct, via_gateway, twins, twins=True, expected_status=200)
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"pause": None})
    seen.check("pause a paused server", direct, via_gateway, twins, twins=True, expected_status=409)
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"unpause": None})
    seen.check("unpause", direct, via_gateway, twins, twins=True, expected_status=202)
    await asyncio.gather(
        nova.wait_for_status(mine, "ACTIVE", ALICE),
        gateway.wait_for_status(theirs, "ACTIVE", ALICE),
    )
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"unpause": None})
    seen.check(
        "unpause an active server", direct, via_gateway, twins, twins=True, expected_status=409
    )


async def _lock_and_unlock(
    nova: ApiClient,
    gateway: ApiClient,
    seen: Comparison,
    actions: tuple[str, str],
    pair: tuple[str, str],
    twins: Mapping[str, str],
) -> None:
    """lock (with a reason) → locked in GET → pause refused (409 locked) → unlock."""
    lock = {"lock": {"locked_reason": "e2e transparency"}}
    direct, via_gateway = await both(
        nova, gateway, "POST", actions, json_body=lock, microversion="2.73"
    )
    seen.check("lock with a reason", direct, via_gateway, twins, twins=True, expected_status=202)
    direct, via_gateway = await both(nova, gateway, "GET", pair, microversion="2.73")
    seen.check("show locked twins", direct, via_gateway, twins, twins=True, expected_status=200)
    if direct.status == 200 and direct.body["server"].get("locked") is not True:
        seen.differences.append(f"show locked twins: not locked: {direct.body['server']}")
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"pause": None})
    seen.check("pause a locked server", direct, via_gateway, twins, twins=True, expected_status=409)
    direct, via_gateway = await both(nova, gateway, "POST", actions, json_body={"unlock": None})
    seen.check("unlock", direct, via_gateway, twins, twins=True, expected_status=202)
    direct, via_gateway = await both(nova, gateway, "GET", pair, microversion="2.73")
    seen.check("show unlocked twins", direct, via_gateway, twins, twins=True, expected_status=200)
