"""Fixtures for integration tests: a scriptable upstream and an in-process gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.web.server import Listeners
from novasim import SimConfig
from tests.integration.upstream import FakeUpstream
from tests.support.gateway import running_gateway
from tests.support.novasim_lab import NovasimLab, running_novasim


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


SimUpstream = NovasimLab  # the name the integration tests use for it


@pytest.fixture
async def novasim_upstream() -> AsyncIterator[NovasimLab]:
    async with running_novasim(SimConfig()) as lab:
        yield lab
