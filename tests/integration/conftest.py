"""Fixtures for integration tests: a scriptable upstream and an in-process gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.web.server import Listeners
from tests.integration.upstream import FakeUpstream
from tests.support.gateway import running_gateway


@pytest.fixture
async def fake_upstream() -> AsyncIterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream()
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield upstream, f"http://127.0.0.1:{server.port}/v2.1"
    finally:
        upstream.release.set()
        await server.close()


@pytest.fixture
async def start_gateway() -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def start(upstream_url: str, **overrides: Any) -> Listeners:
            options = {key.replace("__", "."): value for key, value in overrides.items()}
            return await stack.enter_async_context(running_gateway(upstream_url, options))

        yield start


class SimUpstream:
    """The in-process simulator behind a real socket, with direct access to its state."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.url = f"http://127.0.0.1:{server.port}/v2.1"

    @property
    def sim(self) -> Any:
        from novasim.app import SIM

        assert self.server.app is not None
        return self.server.app[SIM]

    @property
    def recorder(self) -> Any:
        from novasim.app import RECORDER

        assert self.server.app is not None
        return self.server.app[RECORDER]

    def make_server(self, **fields: Any) -> str:
        from novasim.control import build_server

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


@pytest.fixture
async def novasim_upstream() -> AsyncIterator[SimUpstream]:
    from novasim.app import create_app

    server = TestServer(create_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield SimUpstream(server)
    finally:
        await server.close()
