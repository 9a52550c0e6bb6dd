"""A scriptable upstream for proxy tests: records requests, streams, stalls, resets.

Owns only test behaviour the simulator has no reason to offer (faults on the wire).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web

VERSION_DOCUMENT = {
    "version": {
        "id": "v2.1",
        "status": "CURRENT",
        "version": "2.104",
        "min_version": "2.1",
        "updated": "2013-07-23T11:33:21Z",
        "links": [],
    }
}


# The scripted behaviours answer on a path Nova routes (GET /images/{id}): the gateway
# forwards nothing else.
SCRIPTED = "/v2.1/images/"
BIG = SCRIPTED + "big"
STALL_HEADERS = SCRIPTED + "stall-headers"
STALL_BODY = SCRIPTED + "stall-body"
RESET = SCRIPTED + "reset"
HOLD = SCRIPTED + "hold"


@dataclass
class Received:
    method: str
    path_qs: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FakeUpstream:
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    version_status: int = 200

    def app(self) -> web.Application:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_get("/v2.1/", self.versions)
        app.router.add_get(BIG, self.big)
        app.router.add_get(STALL_HEADERS, self.stall_headers)
        app.router.add_get(STALL_BODY, self.stall_body)
        app.router.add_get(RESET, self.reset)
        app.router.add_get(HOLD, self.hold)
        app.router.add_route("*", "/{tail:.*}", self.echo)
        return app

    async def record(self, request: web.Request) -> Received:
        received = Received(
            request.method, request.raw_path, list(request.headers.items()), await request.read()
        )
        async with self.arrived:
            self.received.append(received)
            self.arrived.notify_all()
        return received

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async with self.arrived:
            await asyncio.wait_for(
                self.arrived.wait_for(lambda: len(self.received) >= count), timeout
            )

    async def versions(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response(VERSION_DOCUMENT, status=self.version_status)

    async def echo(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        response = web.Response(
            status=int(request.headers.get("X-Reply-Status", "200")),
            body=json.dumps({"method": received.method, "path": received.path_qs}).encode(),
            content_type="application/json",
        )
        response.headers["X-Upstream"] = "yes"
        response.headers["Connection"] = "keep-alive, X-Secret-Hop"
        response.headers["X-Secret-Hop"] = "must not pass"
        response.headers.add("Vary", "OpenStack-API-Version")
        response.headers.add("Vary", "X-OpenStack-Nova-API-Version")
        cookie = request.headers.get("X-Reply-Cookie")
        if cookie is not None:
            response.headers["Set-Cookie"] = f"{cookie}; Path=/"
        return response

    async def big(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        size = int(request.query["bytes"])
        response = web.StreamResponse()
        response.content_length = size
        await response.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await response.write(piece)
            sent += len(piece)
        return response

    async def stall_headers(self, request: web.Request) -> web.Response:
        await self.record(request)
        await self.release.wait()
        return web.Response(text="late")

    async def stall_body(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        response = web.StreamResponse()
        response.content_length = 10
        await response.prepare(request)
        await response.write(b"12345")
        await self.release.wait()
        await response.write(b"67890")
        return response

    async def reset(self, request: web.Request) -> web.Response:
        await self.record(request)
        assert request.transport is not None
        request.transport.abort()
        return web.Response()

    async def hold(self, request: web.Request) -> web.Response:
        await self.record(request)
        await self.release.wait()
        return web.Response(text="done")
