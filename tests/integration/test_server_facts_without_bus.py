"""Without a notification bus: two workers, each with its short cache of reads, in front
of novasim. Today's stale refusal (worker A forwards a stop, worker B refuses the start on
the copy it read just before) is reproduced on B's copy, and gone from B's answers; checks
Nova does not repeat (site rules on server.*, strict locks) never allow on a copy.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway import gates
from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import Fault
from tests.integration.conftest import SimUpstream
from tests.support.facts_lab import Worker
from tests.support.gateway import running_gateway

CACHE_TTL = 30.0  # longer than the test: every copy stays usable for allows


@asynccontextmanager
async def two_workers(upstream: SimUpstream, **options: Any) -> AsyncIterator[list[Worker]]:
    settings = {"server_lookup.cache_ttl": CACHE_TTL, **options}
    async with AsyncExitStack() as stack:
        yield [
            Worker(await stack.enter_async_context(running_gateway(upstream.url, settings)))
            for _ in range(2)
        ]


async def test_the_stale_refusal_of_worker_b_is_gone(novasim_upstream: SimUpstream) -> None:
    server = novasim_upstream.make_server(project="p1", vm_state="active")
    async with two_workers(novasim_upstream) as (a, b):
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B reads it: active
        assert await a.act(server, {"os-stop": None}) == 202
        assert novasim_upstream.sim.store.servers[server].vm_state == "stopped"
        # Today's path decided on B's copy: the start is refused with vm_state active.
        copy = b.facts(server)
        assert copy is not None and copy.vm_state == "active"
        with pytest.raises(Fault) as refused:
            gates.check_state(BY_KEY["os-start"], copy, None)
        assert refused.value.status == 409
        assert "vm_state active" in refused.value.message
        # Now the refusal is confirmed on a fresh read first: Nova's answer, 202.
        reads = b.reads
        assert await b.act(server, {"os-start": None}) == 202
        assert b.reads == reads + 1
        assert novasim_upstream.sim.store.servers[server].vm_state == "active"


async def test_a_refusal_that_stands_is_confirmed_once(novasim_upstream: SimUpstream) -> None:
    server = novasim_upstream.make_server(project="p1", vm_state="stopped")
    async with two_workers(novasim_upstream) as (_, b):
        assert await b.act(server, {"os-start": None}) == 202  # read: stopped; now active
        reads = b.reads
        started = time.monotonic()
        assert await b.act(server, {"unpause": None}) == 409  # not paused: a true refusal
        assert b.reads == reads + 1  # its copy said so; one read confirmed it
        assert time.monotonic() - started < 5


async def test_an_allow_on_a_copy_is_rechecked_by_nova(novasim_upstream: SimUpstream) -> None:
    server = novasim_upstream.make_server(project="p1", vm_state="active")
    async with two_workers(novasim_upstream) as (a, b):
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200
        assert await a.act(server, {"pause": None}) == 202
        # B's copy says active, so B allows another pause; Nova refuses it: the same 409.
        received = len(novasim_upstream.actions_received(server))
        assert await b.act(server, {"pause": None}) == 409
        assert len(novasim_upstream.actions_received(server)) == received + 1


async def test_strict_locks_never_allow_an_admin_on_a_copy(novasim_upstream: SimUpstream) -> None:
    server = novasim_upstream.make_server(project="p1", vm_state="active")
    async with two_workers(novasim_upstream, **{"policy.strict_locks": True}) as (a, b):
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B's copy: unlocked
        assert await a.act(server, {"lock": None}) == 202
        received = len(novasim_upstream.actions_received(server))
        # Nova lets admins act on a locked server; only the gateway's strict lock refuses,
        # so B must not allow on its unlocked copy.
        assert await b.act(server, {"pause": None}, "admin:admin") == 409
        assert len(novasim_upstream.actions_received(server)) == received


async def test_site_rules_on_server_facts_decide_on_a_fresh_read(
    novasim_upstream: SimUpstream, tmp_path: Path
) -> None:
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "site.yaml").write_text(
        '"os_compute_api:os-pause-server:pause": '
        "\"rule:project_member_or_admin and not 'True':%(server.locked)s\"\n"
    )
    server = novasim_upstream.make_server(project="p1", vm_state="active")
    async with two_workers(novasim_upstream, **{"policy.policy_dir": str(tmp_path)}) as (a, b):
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B's copy: unlocked
        assert await a.act(server, {"lock": None}, "admin:admin") == 202
        received = len(novasim_upstream.actions_received(server))
        assert await b.act(server, {"pause": None}, "admin:admin") == 403
        assert len(novasim_upstream.actions_received(server)) == received
