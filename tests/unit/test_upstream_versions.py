"""The upstream's microversion range (gateway/proxy/versions.py): read from the version
document novasim serves, overrides, failures that keep the last range, the background
refresh."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.nova.catalogue import MAX_VERSION, MIN_VERSION
from gateway.nova.types import Version
from gateway.proxy.versions import UpstreamVersions
from novasim.microversion import NEWEST, OLDEST
from tests.support.novasim_lab import running_novasim
from tests.support.waiting import wait_until


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class Scripted:
    """A version document server whose answer the test sets."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b"{}"
        self.served = 0

    async def document(self, request: web.Request) -> web.Response:
        self.served += 1
        return web.Response(status=self.status, body=self.body, content_type="application/json")


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[Scripted, str]]:
    script = Scripted()
    app = web.Application()
    app.router.add_get("/v2.1/", script.document)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield script, f"http://127.0.0.1:{server.port}/v2.1/"
    finally:
        await server.close()


def document(minimum: str, maximum: str) -> bytes:
    return json.dumps(
        {"version": {"id": "v2.1", "status": "CURRENT", "min_version": minimum, "version": maximum}}
    ).encode()


async def test_the_range_is_the_upstreams(session: aiohttp.ClientSession) -> None:
    async with running_novasim() as nova:
        versions = UpstreamVersions(f"{nova.url}/", 60.0)
        assert versions.age() is None
        assert await versions.refresh(session)
    assert (str(versions.range.minimum), str(versions.range.maximum)) == (
        str(OLDEST),
        str(NEWEST),
    )
    age = versions.age()
    assert age is not None and 0 <= age < 5


async def test_before_any_answer_the_catalogue_range_is_assumed() -> None:
    versions = UpstreamVersions("http://127.0.0.1:9/v2.1/", 60.0)
    assert (versions.range.minimum, versions.range.maximum) == (MIN_VERSION, MAX_VERSION)


async def test_overrides_win_over_the_upstream(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    script, url = scripted
    script.body = document("2.1", "2.96")
    versions = UpstreamVersions(url, 60.0, maximum_override=Version(2, 90))
    assert await versions.refresh(session)
    assert (versions.range.minimum, versions.range.maximum) == (Version(2, 1), Version(2, 90))
    lower = UpstreamVersions(url, 60.0, minimum_override=Version(2, 60))
    assert await lower.refresh(session)
    assert (lower.range.minimum, lower.range.maximum) == (Version(2, 60), Version(2, 96))


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, b"{}"), (200, b"not json"), (200, b'{"version": {}}'), (200, b'{"version": 3}')],
)
async def test_a_failed_refresh_keeps_the_last_range(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession, status: int, body: bytes
) -> None:
    script, url = scripted
    script.body = document("2.1", "2.90")
    versions = UpstreamVersions(url, 60.0)
    assert await versions.refresh(session)
    seen = versions.last_success
    script.status, script.body = status, body
    assert not await versions.refresh(session)
    assert versions.range.maximum == Version(2, 90)
    assert versions.last_success == seen


async def test_an_unreachable_upstream_is_a_failed_refresh(
    session: aiohttp.ClientSession,
) -> None:
    versions = UpstreamVersions("http://127.0.0.1:9/v2.1/", 60.0)
    assert not await versions.refresh(session)
    assert versions.age() is None


async def test_the_background_refresh_follows_the_upstream(
    scripted: tuple[Scripted, str], session: aiohttp.ClientSession
) -> None:
    script, url = scripted
    script.body = document("2.1", "2.90")
    versions = UpstreamVersions(url, 0.01)
    versions.start(session)
    try:
        await wait_until(lambda: versions.range.maximum == Version(2, 90), what="the first refresh")
        script.body = document("2.1", "2.95")  # the upstream was upgraded
        await wait_until(lambda: versions.range.maximum == Version(2, 95), what="the next refresh")
    finally:
        await versions.stop()
    assert versions._task is None  # cancelled and awaited: nothing refreshes any more
