"""novasim on a loopback socket in this process, with its state at hand.

Owns test wiring only: the simulator is an independent Nova the tests judge against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestServer

from novasim import SimConfig, create_app
from novasim.app import RECORDER, SIM
from novasim.control import build_server
from novasim.recorder import Recorder
from novasim.sim import Sim


class NovasimLab:
    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}/v2.1"

    @property
    def sim(self) -> Sim:
        assert self.server.app is not None
        return self.server.app[SIM]

    @property
    def recorder(self) -> Recorder:
        assert self.server.app is not None
        return self.server.app[RECORDER]

    def make_server(self, **fields: Any) -> str:
        server = build_server(self.sim, fields)
        self.sim.store.add(server)
        return str(server.id)

    def actions_received(self, server_id: str) -> list[bytes]:
        """Bodies of the action requests that reached the simulator for this server."""
        path = f"/servers/{server_id}/action"
        return [
            record.body
            for record in self.recorder.records()
            if record.method == "POST" and record.path.split("?")[0].endswith(path)
        ]

    def reads_of(self, server_id: str) -> int:
        """``GET /servers/<id>`` requests that reached the simulator."""
        path = f"/servers/{server_id}"
        return sum(
            1
            for record in self.recorder.records()
            if record.method == "GET" and record.path.split("?")[0].endswith(path)
        )


@asynccontextmanager
async def running_novasim(config: SimConfig | None = None) -> AsyncIterator[NovasimLab]:
    server = TestServer(create_app(config or SimConfig(seed=1)), host="127.0.0.1")
    await server.start_server()
    try:
        yield NovasimLab(server)
    finally:
        await server.close()
