"""The real RabbitMQ stopped and started again under two mirroring workers: every answer
stays right (degraded decisions read Nova), the degraded metric rises and clears, and no
queue of the gateway is left behind.

Stops the shared broker's application for a few seconds (``rabbitmqctl stop_app``) and
always starts it again. Needs RabbitMQ and rabbitmqctl; missing, the test skips (fails under
CI=true).
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.facts_lab import MAX_LAG, Worker, facts_lab, wait_live
from tests.support.gateway import admin_url
from tests.support.rabbit import broker_outage, queues_named, require_rabbit
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


async def degraded_metric(worker: Worker) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(admin_url(worker.listeners) + "/metrics") as response,
    ):
        text = await response.text()
    line = next(x for x in text.splitlines() if x.startswith("nova_gateway_server_facts_degraded "))
    return float(line.split()[1])


async def expect_truth(lab: object, worker: Worker, server: str, body: dict[str, None]) -> None:
    """The answer Nova's rules give for the server's state right now (the simulator's)."""
    truth = lab.sim.store.servers[server]  # type: ignore[attr-defined]
    key = next(iter(body))
    valid = {"pause": "active", "unpause": "paused"}[key] == truth.vm_state
    assert await worker.act(server, body) == (202 if valid else 409), (key, truth.vm_state)


async def test_a_broker_restart_changes_no_decision() -> None:
    rabbit = require_rabbit()
    async with facts_lab(rabbit) as lab:
        a, b = lab.workers
        server = lab.seeded()
        sequence = [{"pause": None}, {"pause": None}, {"unpause": None}, {"unpause": None}]
        for index, body in enumerate(sequence):
            await expect_truth(lab, (a, b)[index % 2], server, body)
        assert await degraded_metric(a) == 0
        with broker_outage():
            await wait_until(
                lambda: a.gate.servers.degraded() and b.gate.servers.degraded(),
                MAX_LAG + 5,
                "both mirrors to notice the broker is gone",
            )
            assert await degraded_metric(a) == 1
            reads = a.reads + b.reads
            for index, body in enumerate(sequence):
                await expect_truth(lab, (b, a)[index % 2], server, body)
            assert a.reads + b.reads >= reads + len(sequence)  # every decision read Nova
        await wait_live(lab.workers, timeout=30)
        assert await degraded_metric(a) == 0
        assert all(worker.gate.servers.feed.epoch > 1 for worker in lab.workers)  # type: ignore[union-attr]
        for index, body in enumerate(sequence):
            await expect_truth(lab, (a, b)[index % 2], server, body)
        assert len(queues_named(lab.prefix)) == 2  # the new queues, one per worker
    assert queues_named(lab.prefix) == []
