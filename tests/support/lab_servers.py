"""Servers booted in the real Nova lab as end-to-end set-up: not the thing under test.

Owns booting a server and waiting until it is ACTIVE, booting it again when Nova's own
scheduling or resource claim failed the build, and replacing a seed server realnova's own
seeding left in ERROR the same way; it must never retry any other failure, nor leave a
server it gave up on behind.

Why the retry: the lab's scheduler answers "No valid host was found" when a heavily loaded
machine slows Nova's services down (seen once in CI, the lab taking 36 s instead of 5 to
start), and builds claimed at the same moment race in Placement ("another process changed
the consumer"; seen when set-up booted six servers at once, so callers boot one at a time).
Nova's scheduling is not what these tests judge: such a build is deleted and tried again,
at most BOOT_ATTEMPTS times.
"""

from __future__ import annotations

import asyncio
import time

from tests.support.api_client import ApiClient

STOCK_IMAGE = "155d900f-4e14-4e4c-a73d-069cbf4541e6"  # survives the Glance fixture's rotation
BOOT_ATTEMPTS = 3
# The faults Nova's conductor and compute record for a build that scheduling or the resource
# claim failed (NoValidHost, AllocationUpdateFailed, MaxRetriesExceeded).
SCHEDULING_FAULTS = (
    "No valid host was found",
    "Failed to update allocations for consumer",
    "Exceeded maximum number of retries",
)
GONE_TIMEOUT = 30.0


async def boot_active(
    nova: ApiClient,
    name: str,
    token: str,
    timeout: float,
    *,
    created: list[str] | None = None,
    interval: float = 0.1,
    image: str = STOCK_IMAGE,
) -> str:
    """Boot ``name`` (``image``, flavor 1) as ``token`` and wait until it is ACTIVE; its id.

    ``created``, when given, holds the id from the moment Nova answers, so that a teardown
    finds the server even if waiting fails; a server booted again replaces it there.
    """
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        body = {"server": {"name": name, "imageRef": image, "flavorRef": "1"}}
        reply = await nova.request("POST", "/servers", token=token, json_body=body)
        assert reply.status == 202, f"boot {name}: {reply.status} {reply.body!r}"
        server_id = str(reply.body["server"]["id"])
        if created is not None:
            created.append(server_id)
        try:
            await nova.wait_for_status(server_id, "ACTIVE", token, timeout, interval)
        except AssertionError:
            if attempt == BOOT_ATTEMPTS or not await _scheduling_failed(nova, server_id, token):
                raise
        else:
            return server_id
        await delete_server(nova, server_id, token)
        if created is not None:
            created.remove(server_id)
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _scheduling_failed(nova: ApiClient, server_id: str, token: str) -> bool:
    reply = await nova.server(server_id, token)
    if reply.status != 200:
        return False
    fault = reply.body["server"].get("fault") or {}
    message = str(fault.get("message", ""))
    return any(known in message for known in SCHEDULING_FAULTS)


async def delete_server(
    nova: ApiClient,
    server_id: str,
    token: str,
    *,
    unlock: bool = False,
    timeout: float = GONE_TIMEOUT,
    interval: float = 0.2,
) -> None:
    """Delete a server (unlocked first if ``unlock``) and wait, bounded, until Nova no
    longer shows it: what comes next sees a quiet Nova."""
    if unlock:
        await nova.action(server_id, {"unlock": None}, token)
    await nova.request("DELETE", f"/servers/{server_id}", token=token)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await nova.server(server_id, token)).status == 404:
            return
        await asyncio.sleep(interval)


async def replace_failed_seeds(
    nova: ApiClient, seeds: dict[str, list[str]], admin: str, image: str, timeout: float
) -> dict[str, list[str]]:
    """The seed ids of each project, a seed realnova's seeding left in ERROR replaced.

    realnova boots its seeds together and keeps a build that failed (ERROR, never on a
    host: no action can use it); such a seed is deleted and booted again, by the same
    owner (labauth's ``seed`` user of the project) and under the same name.
    """
    usable: dict[str, list[str]] = {}
    for project, ids in seeds.items():
        usable[project] = []
        for index, server_id in enumerate(ids):
            reply = await nova.server(server_id, admin)
            if reply.status == 200 and reply.body["server"]["status"] == "ERROR":
                await delete_server(nova, server_id, admin)
                owner = f"seed:{project}"
                name = f"{project}-seed-{index}"
                server_id = await boot_active(nova, name, owner, timeout, image=image)
            usable[project].append(server_id)
    return usable
