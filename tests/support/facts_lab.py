"""Two gateway workers with the notification mirror in front of a notifying novasim.

Owns test wiring only (a per-run topic and queue prefix on the real RabbitMQ); it must never
change gateway behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer

from gateway.pipeline import Gate
from gateway.web.server import Listeners
from tests.support.api_client import action_status as post_action
from tests.support.gateway import base_url, running_gateway
from tests.support.rabbit import unique
from tests.support.waiting import wait_until

HEARTBEAT = 0.1
MAX_LAG = 1.0


def mirror_options(rabbit_url: str, topic: str, prefix: str, **more: Any) -> dict[str, Any]:
    return {
        "server_facts.notifications_url": rabbit_url,
        "server_facts.topics": [topic],
        "server_facts.queue_prefix": prefix,
        "server_facts.heartbeat_interval": HEARTBEAT,
        "server_facts.max_lag": MAX_LAG,
        **more,
    }


@dataclass
class Worker:
    """One worker's gate and its address."""

    listeners: Listeners

    @property
    def gate(self) -> Gate:
        return self.listeners.gate

    @property
    def url(self) -> str:
        return base_url(self.listeners)

    @property
    def reads(self) -> int:
        """Reads of servers this worker made from Nova so far."""
        return self.gate.servers.reader.reads

    def facts(self, server_id: str) -> Any:
        """What this worker's mirror holds for the server (None if nothing)."""
        entry = self.gate.servers.peek(server_id)
        return entry.facts if entry is not None else None

    async def act(self, server_id: str, body: Any, token: str = "alice:p1") -> int:
        return await post_action(self.url, server_id, body, token)


@dataclass
class FactsLab:
    sim_server: TestServer
    workers: list[Worker]
    topic: str
    prefix: str

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_server.port}"

    @property
    def sim(self) -> Any:
        from novasim.app import SIM

        assert self.sim_server.app is not None
        return self.sim_server.app[SIM]

    def seeded(self, project: str = "p1", index: int = 0) -> str:
        return str([sid for owner, sid in self.sim.seeded_ids() if owner == project][index])


async def wait_live(workers: list[Worker], timeout: float = 15.0) -> None:
    await wait_until(
        lambda: not any(worker.gate.servers.degraded() for worker in workers),
        timeout,
        "the workers' notification feeds to be live",
    )


@asynccontextmanager
async def facts_lab(
    rabbit_url: str, workers: int = 2, seed: int = 2, **options: Any
) -> AsyncIterator[FactsLab]:
    """novasim publishing to a per-run topic, and ``workers`` gates mirroring it."""
    from novasim import SimConfig, create_app

    topic, prefix = unique("facts_test"), unique("nova-gateway-test")
    config = SimConfig(seed=seed, notify_url=rabbit_url, notify_topic=topic)
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        async with AsyncExitStack() as stack:
            upstream = f"http://127.0.0.1:{server.port}/v2.1"
            gates = [
                Worker(
                    await stack.enter_async_context(
                        running_gateway(
                            upstream, mirror_options(rabbit_url, topic, prefix, **options)
                        )
                    )
                )
                for _ in range(workers)
            ]
            await wait_live(gates)
            yield FactsLab(server, gates, topic, prefix)
    finally:
        await server.close()
