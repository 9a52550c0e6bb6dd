"""Reading a server from Nova (gateway/servers/lookup.py) and the cache over it, against
novasim on a loopback socket: what a read finds, who locked, failures, eviction and the
coalescing of concurrent reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.nova.faults import Fault
from gateway.nova.types import Version
from gateway.servers.lookup import ServerReader
from gateway.servers.store import FactsStore, StoreSettings
from novasim.control import server_state
from tests.support.novasim_lab import NovasimLab, running_novasim

ADMIN = "admin:admin:admin"


@pytest.fixture
async def nova() -> AsyncIterator[NovasimLab]:
    async with running_novasim() as lab:
        yield lab


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def reader(nova_url: str, session: aiohttp.ClientSession) -> ServerReader:
    async def token() -> str:
        return ADMIN

    return ServerReader(lambda: session, nova_url, token, lambda: Version(2, 100))


async def lock(nova: NovasimLab, session: aiohttp.ClientSession, server: str, token: str) -> None:
    async with session.post(
        f"{nova.url}/servers/{server}/action",
        json={"lock": None},
        headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.73"},
    ) as response:
        assert response.status == 202, await response.text()


async def test_a_read_gives_the_facts_nova_holds(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    server = nova.make_server(project_id="p1", user_id="u1", vm_state="paused")
    facts, holder = await reader(nova.url, session).read(
        server, locked_by=False, not_before=time.monotonic()
    )
    state = server_state(nova.sim.store.servers[server])  # novasim's own account
    assert facts is not None and holder is None
    assert (facts.id, facts.project_id, facts.user_id) == (server, "p1", "u1")
    assert (facts.vm_state, facts.task_state, facts.locked) == (
        state["vm_state"],
        state["task_state"],
        False,
    )
    assert facts.status == state["status"] == "PAUSED"


async def test_an_unknown_server_and_detail_are_none(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    servers = reader(nova.url, session)
    unknown = "00000000-0000-4000-8000-00000000dead"
    assert await servers.read(unknown, locked_by=True, not_before=0.0) == (None, None)
    assert await servers.read("detail", locked_by=False, not_before=0.0) == (None, None)
    assert servers.reads == 1  # "detail" is Nova's server list: never read as a server


async def test_who_locked_comes_from_the_instance_action_log(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    servers = reader(nova.url, session)
    by_owner = nova.make_server(project_id="p1")
    by_admin = nova.make_server(project_id="p1")
    await lock(nova, session, by_owner, "alice:p1:member")
    await lock(nova, session, by_admin, ADMIN)
    for server, expected in ((by_owner, "owner"), (by_admin, "admin")):
        facts, holder = await servers.read(server, locked_by=True, not_before=0.0)
        assert facts is not None and facts.locked
        assert holder == expected == nova.sim.store.servers[server].locked_by


async def test_nova_unreachable_is_503_never_a_guess(session: aiohttp.ClientSession) -> None:
    servers = reader("http://127.0.0.1:9/v2.1", session)  # the discard port: refused
    with pytest.raises(Fault) as caught:
        await servers.read("some-id", locked_by=False, not_before=0.0)
    assert (caught.value.status, caught.value.reason) == (503, "server_lookup_failed")
    assert caught.value.message.startswith("The gateway could not read the server to decide")


async def test_concurrent_reads_of_one_server_make_one_request(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    servers = reader(nova.url, session)
    server = nova.make_server(project_id="p1")
    start = time.monotonic()
    results = await asyncio.gather(
        *(servers.read(server, locked_by=False, not_before=start) for _ in range(8))
    )
    assert {facts.id for facts, _ in results if facts is not None} == {server}
    assert nova.reads_of(server) == 1 and servers.reads == 1


async def test_a_read_started_before_not_before_is_not_shared(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    servers = reader(nova.url, session)
    server = nova.make_server(project_id="p1")
    first = asyncio.create_task(servers.read(server, locked_by=False, not_before=0.0))
    await asyncio.sleep(0)  # the first read is under way (its start is recorded)
    later = await servers.read(server, locked_by=False, not_before=time.monotonic() + 1e-6)
    await first
    assert later[0] is not None
    assert nova.reads_of(server) == 2


# -- the cache over the reads (no notification bus) ---------------------------------------


def cache(nova_url: str, session: aiohttp.ClientSession, size: int) -> FactsStore:
    settings = StoreSettings(size=size, cache_ttl=60.0, pending_wait=0.0, max_lag=2.0)
    return FactsStore(reader(nova_url, session), settings)


async def test_the_cache_evicts_the_least_recently_used_server(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    store = cache(nova.url, session, size=2)
    a, b, c = (nova.make_server(project_id="p1") for _ in range(3))
    for server in (a, b, a, c):  # a is used again before c comes: b is the oldest
        await store.known(server, not_before=0.0)
    assert store.held == 2
    assert store.peek(b) is None and store.peek(a) is not None and store.peek(c) is not None
    reads = [nova.reads_of(server) for server in (a, b, c)]
    assert reads == [1, 1, 1]
    await store.known(a, not_before=0.0)
    await store.known(b, not_before=0.0)
    assert [nova.reads_of(server) for server in (a, b, c)] == [1, 2, 1]


async def test_concurrent_decisions_on_one_server_share_one_read(
    nova: NovasimLab, session: aiohttp.ClientSession
) -> None:
    store = cache(nova.url, session, size=10)
    server = nova.make_server(project_id="p1")
    start = time.monotonic()
    known = await asyncio.gather(*(store.known(server, not_before=start) for _ in range(6)))
    assert all(entry.facts is not None and entry.facts.id == server for entry in known)
    assert nova.reads_of(server) == 1
    assert store.misses == 6 and store.hits == 0  # six decisions read, one request made
    again = await store.known(server, not_before=start)
    assert again.facts is not None and nova.reads_of(server) == 1 and store.hits == 1
