"""Write-ahead over real sockets: when a forwarded action reaches the upstream, its decision is
already in the audit file on disk; a decision that cannot be stored in time never leaves.

A tap between the gateway and the simulator reads the trail directory at the moment each
action arrives, before passing it on: the evidence comes from the disk, not from the gateway.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.audit import cli as audit_cli
from tests.support.audit import (
    GatedSink,
    audit_overrides,
    read_records,
    send,
    simulator,
    write_key,
)
from tests.support.gateway import base_url, running_gateway
from tests.support.waiting import wait_until

CONCURRENT = 24


class Tap:
    """Forwards everything to ``upstream``; for each action, notes whether the trail on disk
    already held a decision carrying the request id the gateway forwarded."""

    def __init__(self, upstream: str, trail: Path) -> None:
        self.upstream = upstream.removesuffix("/v2.1")
        self.trail = trail
        self.actions: dict[str, bool] = {}
        self.session: aiohttp.ClientSession | None = None

    def on_disk(self, forwarded_id: str) -> bool:
        for path in sorted(self.trail.glob("*.jsonl")):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record.get("event") == "decision" and forwarded_id in (
                    record.get("global_request_id"),
                    record.get("request_id"),
                ):
                    return True
        return False

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "POST" and request.path.endswith("/action"):
            forwarded_id = request.headers["X-OpenStack-Request-ID"]
            self.actions[forwarded_id] = self.on_disk(forwarded_id)
        assert self.session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        data = await request.read()
        async with self.session.request(
            request.method, self.upstream + request.path_qs, data=data or None, headers=headers
        ) as reply:
            body = await reply.read()
            passed = {
                k: v
                for k, v in reply.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")
            }
            return web.Response(status=reply.status, body=body, headers=passed)


@asynccontextmanager
async def tapped(upstream: str, trail: Path) -> AsyncIterator[tuple[Tap, str]]:
    tap = Tap(upstream, trail)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", tap.handle)
    server = TestServer(app, host="127.0.0.1")
    async with aiohttp.ClientSession() as session:
        tap.session = session
        await server.start_server()
        try:
            yield tap, f"http://127.0.0.1:{server.port}/v2.1"
        finally:
            await server.close()


async def test_every_forwarded_action_found_its_decision_on_disk(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    key_file = write_key(tmp_path)
    overrides = audit_overrides(trail, key_file, file_fsync="every-record")
    async with simulator() as sim, tapped(sim.url, trail) as (tap, tap_url):
        async with running_gateway(tap_url, overrides) as listeners:
            base = base_url(listeners)
            servers = [sim.seeded("p1"), sim.seeded("p2")]
            tokens = {servers[0]: "alice:p1", servers[1]: "eve:p2"}
            answers = await asyncio.gather(
                *(
                    send(
                        base,
                        "POST",
                        f"/v2.1/servers/{servers[n % 2]}/action",
                        body={"lock" if n % 3 else "unlock": None},
                        token=tokens[servers[n % 2]],
                    )
                    for n in range(CONCURRENT)
                )
            )
    assert [answer.status for answer in answers] == [202] * CONCURRENT
    assert set(tap.actions) == {answer.global_id for answer in answers}
    assert [gid for gid, found in tap.actions.items() if not found] == []
    out = io.StringIO()
    assert audit_cli.main(["verify", "--key-file", str(key_file), str(trail)], out=out) == 0
    assert f"{CONCURRENT} written ahead, {CONCURRENT} with their outcome, 0 unfinished" in (
        out.getvalue()
    )


async def test_a_decision_that_cannot_be_stored_in_time_never_reaches_the_upstream(
    tmp_path: Path,
) -> None:
    trail = tmp_path / "trail"
    overrides = audit_overrides(trail, write_key(tmp_path), write_ahead_timeout=0.3)
    async with simulator() as sim, tapped(sim.url, trail) as (tap, tap_url):
        async with running_gateway(tap_url, overrides) as listeners:
            audit = listeners.gate.audit
            assert audit is not None
            await wait_until(lambda: audit.depth() == 0)
            gated = GatedSink(audit.workers[0].sink)
            audit.workers[0].sink = gated
            gated.hold()
            action = f"/v2.1/servers/{sim.seeded('p1')}/action"
            refused = await send(base_url(listeners), "POST", action, body={"pause": None})
            assert tap.actions == {}  # Nova never saw it
            gated.release()
            await wait_until(lambda: audit.depth() == 0, what="the stalled records")
            after = await send(base_url(listeners), "POST", action, body={"pause": None})
    assert refused.status == 503
    assert json.loads(refused.body)["serviceUnavailable"]["message"].startswith(
        "The gateway cannot record this request in its audit trail"
    )
    assert after.status == 202 and set(tap.actions) == {after.global_id}
    records = [r for r in read_records(trail) if r.get("global_request_id") == refused.global_id]
    assert [r["event"] for r in records] == ["decision", "outcome"]
    assert records[1]["forwarded"] is False and records[1]["status"] == 503
