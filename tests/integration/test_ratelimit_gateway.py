"""An in-process gateway with rate limits: GET /limits rewritten by the proxy only when it
is a small JSON answer, RateLimit-* headers on answers, and /metrics on the admin port."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.proxy.upstream import REWRITE_MAX_BYTES
from tests.integration.upstream import VERSION_DOCUMENT
from tests.support.gateway import admin_url, base_url

RULES = """
rules:
  - name: flavor-reads
    limit: 3 per minute
    methods: [GET]
    path: /flavors
"""
LIMITS = {"limits": {"rate": [], "absolute": {"maxTotalInstances": 10}}}


class LimitsUpstream:
    """Answers the version document and GET /limits with whatever a test sets."""

    def __init__(self) -> None:
        self.body = json.dumps(LIMITS).encode()
        self.content_type = "application/json"
        self.chunked = False
        self.status = 200

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2.1/", self.versions)
        app.router.add_get("/v2.1/limits", self.limits)
        app.router.add_get("/v2.1/flavors", self.flavors)
        return app

    async def versions(self, request: web.Request) -> web.Response:
        return web.json_response(VERSION_DOCUMENT)

    async def flavors(self, request: web.Request) -> web.Response:
        return web.json_response({"flavors": []})

    async def limits(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=self.status)
        response.content_type = self.content_type
        if self.chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(self.body)
        await response.prepare(request)
        for start in range(0, len(self.body), 10000):
            await response.write(self.body[start : start + 10000])
        await response.write_eof()
        return response


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[LimitsUpstream, str]]:
    fake = LimitsUpstream()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, f"http://127.0.0.1:{server.port}/v2.1"
    finally:
        await server.close()


@pytest.fixture
async def gateway(
    upstream: tuple[LimitsUpstream, str], start_gateway: Any, tmp_path: Path
) -> tuple[LimitsUpstream, str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    fake, url = upstream
    listeners = await start_gateway(url, rate_limit__rules_file=str(rules))
    return fake, base_url(listeners), admin_url(listeners)


async def get(url: str, token: str = "alice:p1") -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession(headers={"X-Auth-Token": token}) as session,
        session.get(url) as response,
    ):
        return response.status, response.headers, await response.read()


async def test_limits_answer_gains_the_rate_section(
    gateway: tuple[LimitsUpstream, str, str],
) -> None:
    _, api, _ = gateway
    await get(f"{api}/v2.1/flavors")
    status, headers, body = await get(f"{api}/v2.1/limits")
    assert status == 200
    assert int(headers["Content-Length"]) == len(body)
    document = json.loads(body)
    assert document["limits"]["absolute"] == LIMITS["limits"]["absolute"]
    [entry] = document["limits"]["rate"]
    assert (entry["uri"], entry["regex"]) == ("/flavors", "/flavors")
    [limit] = entry["limit"]
    assert (limit["verb"], limit["value"], limit["remaining"]) == ("GET", 3, 2)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("content_type", "text/plain"),
        ("status", 203),
        ("body", b"{not json"),
    ],
)
async def test_other_answers_pass_unchanged(
    gateway: tuple[LimitsUpstream, str, str], change: str, value: Any
) -> None:
    fake, api, _ = gateway
    setattr(fake, change, value)
    status, _, body = await get(f"{api}/v2.1/limits")
    assert status == fake.status
    assert body == fake.body


@pytest.mark.parametrize("chunked", [False, True])
async def test_large_answers_stream_unchanged(
    gateway: tuple[LimitsUpstream, str, str], chunked: bool
) -> None:
    fake, api, _ = gateway
    big = {"limits": {"rate": [], "absolute": {}, "padding": "x" * (REWRITE_MAX_BYTES + 10)}}
    fake.body = json.dumps(big).encode()
    fake.chunked = chunked
    status, _, body = await get(f"{api}/v2.1/limits")
    assert status == 200
    assert body == fake.body


async def test_rate_headers_and_metrics_endpoint(
    gateway: tuple[LimitsUpstream, str, str],
) -> None:
    _, api, admin = gateway
    answers = [await get(f"{api}/v2.1/flavors") for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    assert [h["RateLimit-Remaining"] for _, h, _ in answers] == ["2", "1", "0", "0"]
    assert answers[3][1]["Retry-After"].isdigit()
    async with aiohttp.ClientSession() as session, session.get(f"{admin}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("nova_gateway_rate_limit_refusals_total", (("rule", "flavor-reads"),))] >= 1
    assert any(name == "nova_gateway_build_info" for name, _ in samples)


async def test_metrics_can_be_turned_off(
    upstream: tuple[LimitsUpstream, str], start_gateway: Any
) -> None:
    _, url = upstream
    listeners = await start_gateway(url, metrics__enabled=False)
    assert listeners.gate.observers == [] or all(
        type(observer).__name__ != "MetricsObserver" for observer in listeners.gate.observers
    )
    status, _, _ = await get(f"{admin_url(listeners)}/metrics")
    assert status == 404
