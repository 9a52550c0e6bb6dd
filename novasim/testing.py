"""Helpers for tests that drive an in-process simulator through aiohttp's test client.

Owns request shorthands (tokens, microversion, action bodies) and direct server setup;
it must never be imported by the simulator itself nor bypass the HTTP surface for
anything a test asserts on.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from novasim.app import SIM
from novasim.control import build_server, server_state
from novasim.sim import Sim

JSON_HEADERS = {"Content-Type": "application/json"}


class SimClient:
    """A test client bound to one simulator application."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    @property
    def sim(self) -> Sim:
        app = self.client.app
        assert app is not None
        return app[SIM]

    @staticmethod
    def headers(
        token: str | None = "alice:p1", version: str | None = None, **extra: str
    ) -> dict[str, str]:
        headers = dict(JSON_HEADERS)
        if token is not None:
            headers["X-Auth-Token"] = token
        if version is not None:
            headers["OpenStack-API-Version"] = f"compute {version}"
        headers.update({key.replace("_", "-"): value for key, value in extra.items()})
        return headers

    async def action(
        self,
        server_id: str,
        body: Any,
        token: str | None = "alice:p1",
        version: str | None = None,
        raw: bytes | None = None,
    ) -> ClientResponse:
        data = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post(
            f"/v2.1/servers/{server_id}/action", data=data, headers=self.headers(token, version)
        )

    async def show(
        self, server_id: str, token: str = "admin:admin", version: str = "2.73"
    ) -> dict[str, Any]:
        response = await self.client.get(
            f"/v2.1/servers/{server_id}", headers=self.headers(token, version)
        )
        assert response.status == 200, await response.text()
        server: dict[str, Any] = (await response.json())["server"]
        return server

    def make_server(self, **fields: Any) -> str:
        """A server in any state, created the way POST /_sim/servers creates it."""
        server = build_server(self.sim, fields)  # the same path as POST /_sim/servers
        self.sim.store.add(server)
        return server.id

    def state(self, server_id: str) -> dict[str, Any]:
        """What the simulator holds, locked_by included (never shown by the API)."""
        return server_state(self.sim.store.servers[server_id])

    def seeded(self, project: str = "p1") -> str:
        return next(sid for owner, sid in self.sim.seeded_ids() if owner == project)
