"""The server-facts mirror over the real RabbitMQ: two workers in front of a novasim that
publishes Nova's notifications. A change forwarded by one worker, or made at Nova directly,
is honoured by the other without a read; each worker's queue is private and goes with it.

Needs RabbitMQ on 127.0.0.1:5672 (or $NOVA_GATEWAY_RABBIT_URL); missing, the tests skip
(fail under CI=true).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.api_client import action_status as post_action
from tests.support.facts_lab import (
    HEARTBEAT,
    facts_lab,
    mirror_options,
)
from tests.support.gateway import (
    admin_url,
    running_gateway,
    start_gateway_process_async,
    with_noauth,
)
from tests.support.novasim_lab import running_novasim
from tests.support.processes import free_port
from tests.support.rabbit import queues_named, require_rabbit, unique
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


@pytest.fixture(scope="module")
def rabbit() -> str:
    return require_rabbit()


async def test_a_stop_through_one_worker_lets_a_start_through_the_other(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        a, b = lab.workers
        server = lab.seeded()
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B reads it: ACTIVE
        assert await a.act(server, {"os-stop": None}) == 202
        answered = time.monotonic()
        status = await b.act(server, {"os-start": None})
        assert time.monotonic() - answered < 0.1 + 0.5  # sent at once (the call takes a while)
        assert status == 202, "worker B refused a start the stop through A made valid"
        assert lab.sim.store.servers[server].vm_state == "active"


async def test_the_other_worker_decides_on_the_notification_without_reading(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        a, b = lab.workers
        server = lab.seeded()
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200
        assert await a.act(server, {"os-stop": None}) == 202
        delay = await wait_until(
            lambda: getattr(b.facts(server), "vm_state", None) == "stopped",
            MAX_NOTIFICATION_DELAY,
            "worker B's mirror to show the stop",
        )
        reads = b.reads
        assert await b.act(server, {"os-start": None}) == 202
        assert b.reads == reads, "the start was decided on the mirror, with no read"
        assert delay < MAX_NOTIFICATION_DELAY


MAX_NOTIFICATION_DELAY = 2.0  # loopback broker; measured ~10-20 ms


async def test_a_change_made_at_nova_directly_is_honoured(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        _, b = lab.workers
        server = lab.seeded("p2")
        assert await b.act(server, {"os-getConsoleOutput": {}}, "bob:p2") == 200
        # Not through the gateway: straight to the simulator, as an operator would.
        assert await post_action(lab.sim_url, server, {"pause": None}, "bob:p2") == 202
        await wait_until(
            lambda: getattr(b.facts(server), "vm_state", None) == "paused",
            MAX_NOTIFICATION_DELAY,
            "the mirror to show the pause made at Nova",
        )
        reads = b.reads
        assert await b.act(server, {"unpause": None}, "bob:p2") == 202
        assert await b.act(server, {"unpause": None}, "bob:p2") == 409  # Nova's own answer
        assert b.reads >= reads  # the 409 was confirmed by a read; the 202 needed none


async def test_an_action_is_pending_until_its_notification(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        a, _ = lab.workers
        server = lab.seeded()
        # Each call right after the last: the notification may not be there yet.
        for body, expected in (
            ({"pause": None}, 202),
            ({"unpause": None}, 202),
            ({"lock": None}, 202),
            ({"pause": None}, 409),  # locked, and alice is no admin: Nova's refusal
        ):
            assert await a.act(server, body) == expected, body
        reads = a.reads
        await wait_until(
            lambda: getattr(a.gate.servers.peek(server), "locked_by", None) == "owner",
            MAX_NOTIFICATION_DELAY,
            "instance.lock to say who locked it",
        )
        assert a.reads == reads  # learnt from the notification, not the action log


async def test_the_lock_holder_comes_from_the_notification(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        a, b = lab.workers
        server = lab.seeded()
        assert await a.act(server, {"lock": None}, "admin:admin") == 202
        await wait_until(
            lambda: getattr(b.gate.servers.peek(server), "locked_by", None) == "admin",
            MAX_NOTIFICATION_DELAY,
            "worker B to learn that an admin locked it",
        )
        reads = b.reads
        # The owner may not lift an admin's lock (unlock_override is admin-only): Nova's 403.
        assert await b.act(server, {"unlock": None}) == 403
        assert b.reads == reads + 2  # the refusal was confirmed: the server and its action log
        assert await b.act(server, {"unlock": None}, "admin:admin") == 202


async def test_without_a_live_feed_decisions_read_nova(rabbit: str) -> None:
    from aiohttp.test_utils import TestServer

    from novasim import SimConfig, create_app

    sim = TestServer(create_app(SimConfig(seed=1)), host="127.0.0.1")
    await sim.start_server()
    closed_port = free_port()  # nothing listens there: the feed never connects
    options = mirror_options(f"rabbit://guest:guest@127.0.0.1:{closed_port}/", "t", unique("p"))
    try:
        async with running_gateway(f"http://127.0.0.1:{sim.port}/v2.1", options) as listeners:
            gate = listeners.gate
            server = _seed(sim)
            assert gate.servers.degraded()
            base = f"http://127.0.0.1:{listeners.api_address[1]}"
            assert await post_action(base, server, {"pause": None}) == 202
            assert await post_action(base, server, {"pause": None}) == 409
            assert gate.servers.reader.reads >= 2
            async with aiohttp.ClientSession() as session:
                async with session.get(admin_url(listeners) + "/metrics") as response:
                    text = await response.text()
            assert "nova_gateway_server_facts_degraded 1.0" in text
            assert 'nova_gateway_server_reads_total{reason="degraded"}' in text
    finally:
        await sim.close()


def _seed(server: object) -> str:
    from novasim.app import SIM

    app = server.app  # type: ignore[attr-defined]
    return str(next(sid for owner, sid in app[SIM].seeded_ids() if owner == "p1"))


async def test_each_worker_reads_its_own_queue_which_goes_with_it(rabbit: str) -> None:
    async with facts_lab(rabbit) as lab:
        queues = [worker.gate.servers.feed.queue for worker in lab.workers]  # type: ignore[union-attr]
        assert len(set(queues)) == 2
        assert all(name.startswith(lab.prefix + ".") for name in queues)
        assert "versioned_notifications.info" not in queues
        assert sorted(queues_named(lab.prefix)) == sorted(queues)
    assert queues_named(lab.prefix) == []


async def test_a_killed_gateway_leaves_no_queue_behind(rabbit: str, tmp_path: Path) -> None:
    prefix = unique("nova-gateway-kill")
    sections = with_noauth(
        {
            "server_facts": {
                "notifications_url": rabbit,
                "queue_prefix": prefix,
                "heartbeat_interval": HEARTBEAT,
            }
        }
    )
    async with running_novasim() as nova:
        lab = await start_gateway_process_async(nova.url, tmp_path, tmp_path, sections, workers=2)
        process = lab.process
        try:
            await wait_until(lambda: len(queues_named(prefix)) == 2, 20.0, "both queues")
            os.killpg(process.pid, signal.SIGKILL)  # supervisor and workers, no goodbye
            await wait_until(lambda: not queues_named(prefix), 20.0, "the queues dropped")
        finally:
            process.stop()
