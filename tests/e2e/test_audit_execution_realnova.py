"""Execution evidence against the real Nova 34 publishing to the real RabbitMQ: an audited
gateway with the notification feed forwards actions to one server, Nova runs them (one fails
in the compute after its 202), and the trail records how each one went; judged against Nova's
own instance-action log (its events' results), not against the gateway's table.

Owns the session's notifying realnova's first p2 seed while it runs (left ACTIVE and unlocked)
and the messages its failing action makes Nova put on ``versioned_notifications.error``.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.audit import cli as audit_cli
from gateway.audit.trail import AuditTrail
from gateway.nova.action_events import Phase
from tests.support.api_client import ApiClient
from tests.support.audit import audit_overrides, write_key
from tests.support.facts_lab import Worker, mirror_options, wait_live
from tests.support.gateway import running_gateway
from tests.support.labs import RealNova
from tests.support.rabbit import purge, require_rabbit, unique
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

OWNER = "bob:p2"
READER = "carol:p2:reader"
ADMIN = "admin:admin"
NOVA_TOPIC = "versioned_notifications"
ERROR_QUEUE = f"{NOVA_TOPIC}.error"  # Nova's own, filled by the failing rebuild below
ARRIVAL = 30.0  # the compute's last event after the last answer (one CPU-bound lab)
# Through the gateway, in order; the rebuild asks for what the fake driver cannot do
# (nova/compute/manager.py _rebuild_default_impl: PreserveEphemeralNotSupported).
EXPECTED = {
    "pause": "ended",
    "unpause": "ended",
    "lock": "ended",
    "unlock": "ended",
    "os-stop": "ended",
    "os-start": "ended",
    "createImage": "ended",
    "rebuild": "failed",
}


@pytest.fixture
def error_queue_purged() -> Iterator[None]:
    yield
    purge(ERROR_QUEUE)  # what this test's failure made Nova publish there


async def settle(nova: ApiClient, server: str) -> None:
    """ACTIVE, unlocked and idle, whatever an earlier run left."""
    reply = await nova.server(server, ADMIN)
    assert reply.status == 200, reply.body
    if reply.body["server"]["status"] == "ERROR":
        reset = await nova.action(server, {"os-resetState": {"state": "active"}}, ADMIN)
        assert reset.status == 202, reset.body
    if reply.body["server"].get("locked"):
        assert (await nova.action(server, {"unlock": None}, ADMIN)).status == 202
    status = reply.body["server"]["status"]
    if status == "SHUTOFF":
        assert (await nova.action(server, {"os-start": None}, ADMIN)).status == 202
    elif status == "PAUSED":
        assert (await nova.action(server, {"unpause": None}, ADMIN)).status == 202
    await idle(nova, server, "ACTIVE")


async def idle(nova: ApiClient, server: str, status: str, timeout: float = 60.0) -> None:
    """The server shows ``status`` with no task running (ERROR included, unlike the client)."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await nova.server(server, ADMIN)).body["server"]
        if body["status"] == status and body["OS-EXT-STS:task_state"] is None:
            return
        assert time.monotonic() < deadline, f"{server}: {body['status']}, wanted {status}"
        await asyncio.sleep(0.1)


async def act(gateway: ApiClient, server: str, body: dict[str, Any], token: str = OWNER) -> int:
    return (await gateway.action(server, body, token)).status


def cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return audit_cli.main(argv, out=out), out.getvalue()


async def nova_results(nova: ApiClient, server: str, request_id: str) -> list[str | None]:
    """The results of the events Nova's instance-action log has for one request."""
    reply = await nova.request(
        "GET", f"/servers/{server}/os-instance-actions/{request_id}", token=ADMIN
    )
    assert reply.status == 200, reply.body
    return [event.get("result") for event in reply.body["instanceAction"].get("events", [])]


async def test_each_action_nova_ran_is_recorded_as_it_went(
    realnova_bus: RealNova,
    http_session: aiohttp.ClientSession,
    tmp_path: Path,
    error_queue_purged: None,
) -> None:
    rabbit = require_rabbit()
    nova = ApiClient(http_session, realnova_bus.url)
    server = realnova_bus.seed("p2", 0)
    await settle(nova, server)
    image = (await nova.server(server, ADMIN)).body["server"]["image"]["id"]
    trail, witness, key_file = tmp_path / "audit", tmp_path / "witness", write_key(tmp_path)
    options = {
        **mirror_options(rabbit, NOVA_TOPIC, unique("nova-gateway-e2e")),
        **audit_overrides(trail, key_file, witness_directory=str(witness)),
    }
    try:
        async with running_gateway(realnova_bus.url, options) as listeners:
            worker = Worker(listeners)
            await wait_live([worker])
            audit = listeners.gate.audit
            assert isinstance(audit, AuditTrail) and audit.execution_evidence
            gateway = ApiClient(http_session, worker.url + "/v2.1")
            assert await act(gateway, server, {"pause": None}) == 202
            await idle(nova, server, "PAUSED")
            assert await act(gateway, server, {"unpause": None}) == 202
            await idle(nova, server, "ACTIVE")
            assert await act(gateway, server, {"lock": None}) == 202
            assert await act(gateway, server, {"pause": None}, READER) == 403  # a denial
            assert await act(gateway, server, {"unlock": None}) == 202
            assert await act(gateway, server, {"os-stop": None}) == 202
            await idle(nova, server, "SHUTOFF")
            assert await act(gateway, server, {"os-start": None}) == 202
            await idle(nova, server, "ACTIVE")
            snapshot = {"createImage": {"name": unique("e2e-execution")}}
            assert await act(gateway, server, snapshot) == 202
            await idle(nova, server, "ACTIVE")
            rebuild = {"rebuild": {"imageRef": image, "preserve_ephemeral": True}}
            assert await act(gateway, server, rebuild) == 202  # accepted; the compute fails it
            await idle(nova, server, "ERROR")
            await wait_until(
                lambda: (
                    audit.executions_by_phase == {Phase.STARTED: 6, Phase.ENDED: 7, Phase.FAILED: 1}
                ),
                ARRIVAL,
                f"the execution records (so far {audit.executions_by_phase})",
            )
    finally:
        await settle(nova, server)

    code, verified = cli(
        ["verify", "--key-file", str(key_file), "--witness-dir", str(witness), str(trail)]
    )
    assert code == 0, verified
    assert (
        "executions: 8 forwarded action(s) Nova publishes events for: 7 ended, 1 failed; "
        "0 without any execution record"
    ) in verified
    code, answer = cli(
        ["query", "--key-file", str(key_file), "--format", "jsonl", "--server", server, str(trail)]
    )
    assert code == 0
    rows = [json.loads(line) for line in answer.splitlines()]
    allowed = [row for row in rows if row["decision"] == "allow"]
    assert {row["action"]: row["execution"] for row in allowed} == EXPECTED
    [denied] = [row for row in rows if row["decision"] == "deny"]
    assert (denied["action"], denied["status"], denied["execution"]) == ("pause", 403, None)

    # Nova's own log is the independent record of how each request went.
    for row in allowed:
        results = await nova_results(nova, server, row["nova_request_id"])
        assert ("Error" in results) == (row["execution"] == "failed"), (row["action"], results)
    records = [json.loads(line) for path in sorted(trail.glob("*.jsonl")) for line in path.open()]
    nova_ids = {row["request_id"]: row["nova_request_id"] for row in allowed}
    for record in (r for r in records if r.get("event") == "execution"):
        assert record["nova"]["request_id"] == nova_ids[record["request_id"]]
    [failed] = [r for r in records if r.get("phase") == "failed"]
    assert failed["nova"]["event_type"] == "instance.rebuild.error"
    assert failed["nova"]["fault"].startswith("PreserveEphemeralNotSupported: ")
