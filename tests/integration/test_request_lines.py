"""Request lines: with [gateway] access_log on, one JSON line per answered request carrying
its request id and no secret; off (the default), none; the admin listener never logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.conftest import SimUpstream
from tests.support.gateway import start_gateway_process_async, with_noauth
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_until

# A noauth token: its user and project are logged as fields, the token itself never.
TOKEN = "alice:p1:member,reader"


async def start(upstream: str, tmp_path: Path, access_log: bool) -> tuple[ServerProcess, str]:
    sections = with_noauth(
        {"gateway": {"access_log": access_log}, "server_lookup": {"cache_ttl": 0}}
    )
    lab = await start_gateway_process_async(
        upstream, tmp_path, tmp_path, sections, name=f"gateway-{access_log}"
    )
    return lab.process, lab.admin_url


async def exchange(url: str, token: str | None = None, body: Any = None) -> tuple[int, str]:
    headers = {"X-Auth-Token": token} if token else {}
    method = "POST" if body is not None else "GET"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=body) as response,
    ):
        await response.read()
        return response.status, response.headers["x-openstack-request-id"]


def request_lines(process: ServerProcess) -> list[dict[str, Any]]:
    lines = [line for line in process.log_path.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    return [event for event in events if event["event"] == "request"]


async def test_request_lines_are_json_with_the_request_id_and_nothing_secret(
    novasim_upstream: SimUpstream, tmp_path: Path
) -> None:
    server = novasim_upstream.make_server(project_id="p1", user_id="alice")
    (on, on_admin), (off, off_admin) = await asyncio.gather(
        start(novasim_upstream.url, tmp_path, True), start(novasim_upstream.url, tmp_path, False)
    )
    answers: dict[ServerProcess, list[tuple[int, str]]] = {}
    try:
        for process, admin in ((on, on_admin), (off, off_admin)):
            api = process.url.removesuffix("/v2.1")
            answers[process] = [
                await exchange(f"{api}/v2.1/servers/{server}?name=x", TOKEN),
                await exchange(f"{api}/v2.1/servers"),  # no token: 401
                await exchange(
                    f"{api}/v2.1/servers/{server}/action", "carol:p1:reader", {"pause": None}
                ),
            ]
            for path in ("/healthz", "/readyz", "/metrics"):
                async with aiohttp.ClientSession() as session, session.get(admin + path) as r:
                    assert r.status == 200
        await wait_until(lambda: len(request_lines(on)) >= 3, what="three request lines")
    finally:
        assert on.stop() == 0 and off.stop() == 0
    shown, refused, denied = answers[on]
    assert [status for status, _ in answers[off]] == [200, 401, 403]
    assert shown[0] == 200 and refused[0] == 401 and denied[0] == 403
    first, second, third = request_lines(on)
    assert len(request_lines(on)) == 3  # nothing from the admin listener
    assert request_lines(off) == []

    # Nova answered: its id is what the client saw; the gateway's id joins the audit trail.
    assert first["upstream_request_id"] == shown[1]
    assert first["request_id"].startswith("req-") and first["request_id"] != shown[1]
    assert first["method"] == "GET" and first["path"] == f"/v2.1/servers/{server}"
    assert (first["status"], first["decision"]) == (200, "allow")
    assert (first["user_id"], first["project_id"]) == ("alice", "p1")
    assert first["bytes"] > 0 and 0 < first["seconds"] < 10 and first["peer"] == "127.0.0.1"
    assert first["level"] == "info" and first["timestamp"].endswith("Z")
    # Refused by the gateway: the id is the gateway's, and the gate is named.
    assert second["request_id"] == refused[1] and "upstream_request_id" not in second
    refusal = (second["status"], second["decision"], second["reason"])
    assert refusal == (401, "deny", "token_missing")
    assert "user_id" not in second
    assert third["request_id"] == denied[1]
    assert (third["status"], third["action"], third["reason"]) == (403, "pause", "policy")
    log = on.log_path.read_text()
    assert TOKEN not in log and "name=x" not in log
