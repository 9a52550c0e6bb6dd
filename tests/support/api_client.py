"""A small aiohttp client for talking to Nova-shaped APIs from tests, and a status poller.

Owns request plumbing for tests only; must never retry or hide a status code from the caller.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy

TERMINAL_ERROR = "ERROR"


class Reply(NamedTuple):
    """One HTTP answer: status, headers, and the body parsed as JSON (or raw bytes)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: Any


class ApiClient:
    """Sends requests under ``base_url`` with an ``X-Auth-Token`` and optional microversion."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url + path

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        microversion: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        """Send one request; ``path`` is relative to base_url unless it is a full url."""
        sent = dict(headers or {})
        if token is not None:
            sent["X-Auth-Token"] = token
        if microversion is not None:
            sent["OpenStack-API-Version"] = f"compute {microversion}"
        async with self.session.request(
            method,
            self._url(path),
            json=json_body,
            headers=sent,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            return Reply(response.status, response.headers, _parse(raw, response.content_type))

    async def server(self, server_id: str, token: str, microversion: str | None = None) -> Reply:
        """GET /servers/{id}."""
        return await self.request(
            "GET", f"/servers/{server_id}", token=token, microversion=microversion
        )

    async def action(
        self, server_id: str, body: Mapping[str, Any], token: str, microversion: str | None = None
    ) -> Reply:
        """POST /servers/{id}/action with ``body`` (e.g. ``{"pause": None}``)."""
        return await self.request(
            "POST",
            f"/servers/{server_id}/action",
            token=token,
            json_body=body,
            microversion=microversion,
        )

    async def wait_for_status(
        self,
        server_id: str,
        status: str,
        token: str,
        timeout: float = 30.0,
        interval: float = 0.1,
    ) -> dict[str, Any]:
        """Poll until the server reads ``status``; its body then. AssertionError past the deadline.

        Fails at once on ERROR (unless that is the wanted status) or a non-200 answer.
        """
        deadline = time.monotonic() + timeout
        while True:
            reply = await self.server(server_id, token)
            assert reply.status == 200, f"GET server {server_id}: {reply.status} {reply.body!r}"
            server: dict[str, Any] = reply.body["server"]
            seen = server["status"]
            if seen == status:
                return server
            assert seen != TERMINAL_ERROR, (
                f"server {server_id} went to ERROR: {server.get('fault')}"
            )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"server {server_id} still {seen} (task_state "
                    f"{server.get('OS-EXT-STS:task_state')}) after {timeout}s; wanted {status}"
                )
            await asyncio.sleep(interval)


def _parse(raw: bytes, content_type: str) -> Any:
    """JSON bodies parsed; anything else (or empty, or malformed JSON) left as bytes."""
    if not raw or "json" not in content_type:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def post_action(
    base: str, server_id: str, body: Any, token: str = "alice:p1", **headers: str
) -> tuple[int, Any]:
    """``POST <base>/v2.1/servers/<id>/action`` in a session of its own: the status and
    the answer's JSON (``{}`` for an empty answer). ``body`` bytes are sent as they are."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"X-Auth-Token": token, "Content-Type": "application/json", **headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/v2.1/servers/{server_id}/action", data=data, headers=sent) as answer,
    ):
        text = await answer.text()
        return answer.status, (json.loads(text) if text else {})


async def action_status(base: str, server_id: str, body: Any, token: str = "alice:p1") -> int:
    """The status alone of ``post_action``."""
    return (await post_action(base, server_id, body, token))[0]
