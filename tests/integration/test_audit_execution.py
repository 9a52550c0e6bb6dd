"""Execution evidence over the real RabbitMQ: two audited workers in front of a novasim that
publishes Nova's notifications (the same shapes as the real Nova's). Every worker hears every
notification; only the worker that forwarded a call records what Nova did with it (started,
ended, failed), and a worker whose feed was down when Nova published has no record of it,
which `audit verify` names.

Needs RabbitMQ on 127.0.0.1:5672 (or $NOVA_GATEWAY_RABBIT_URL); missing, the tests skip
(fail under CI=true).
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.audit import cli as audit_cli
from gateway.audit.trail import AuditTrail
from tests.support.audit import audit_overrides, read_records, send, write_key
from tests.support.facts_lab import Worker, mirror_options, wait_live
from tests.support.gateway import running_gateway
from tests.support.rabbit import require_rabbit, unique
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

# novasim publishes before it answers; a loaded machine may still take a moment.
ARRIVAL = 10.0


@dataclass
class AuditedWorker:
    worker: Worker
    trail_dir: Path

    @property
    def audit(self) -> AuditTrail:
        audit = self.worker.gate.audit
        assert audit is not None
        return audit

    async def act(self, server: str, body: Any, token: str = "alice:p1") -> int:
        answer = await send(
            self.worker.url, "POST", f"/v2.1/servers/{server}/action", body=body, token=token
        )
        return answer.status


@dataclass
class Lab:
    sim_server: TestServer
    workers: list[AuditedWorker]
    key_file: Path

    def seeded(self, project: str = "p1") -> str:
        from novasim.app import SIM

        assert self.sim_server.app is not None
        sim = self.sim_server.app[SIM]
        return str(next(sid for owner, sid in sim.seeded_ids() if owner == project))

    def verify(self, worker: AuditedWorker) -> str:
        out = io.StringIO()
        argv = ["verify", "--key-file", str(self.key_file), str(worker.trail_dir)]
        assert audit_cli.main(argv, out=out) == 0, out.getvalue()
        return out.getvalue()

    def query(self, worker: AuditedWorker, *filters: str) -> list[dict[str, Any]]:
        out = io.StringIO()
        argv = ["query", "--key-file", str(self.key_file), "--format", "jsonl", *filters]
        assert audit_cli.main([*argv, str(worker.trail_dir)], out=out) == 0
        return [json.loads(line) for line in out.getvalue().splitlines()]


@asynccontextmanager
async def audited_lab(rabbit: str, tmp_path: Path) -> AsyncIterator[Lab]:
    """novasim on a per-run topic; two workers, each with its feed and its own trail."""
    from novasim import SimConfig, create_app

    topic, prefix = unique("execution_test"), unique("nova-gateway-test")
    sim = TestServer(
        create_app(SimConfig(seed=1, notify_url=rabbit, notify_topic=topic)), host="127.0.0.1"
    )
    await sim.start_server()
    key_file = write_key(tmp_path)
    workers = []
    try:
        async with AsyncExitStack() as stack:
            for name in ("a", "b"):
                options = {
                    **mirror_options(rabbit, topic, prefix),
                    **audit_overrides(tmp_path / name, key_file),
                }
                listeners = await stack.enter_async_context(
                    running_gateway(f"http://127.0.0.1:{sim.port}/v2.1", options)
                )
                workers.append(AuditedWorker(Worker(listeners), tmp_path / name))
            await wait_live([worker.worker for worker in workers])
            yield Lab(sim, workers, key_file)
    finally:
        await sim.close()


def executions(records: list[dict[str, Any]]) -> list[tuple[str | None, str, str]]:
    return [
        (record["action"], record["phase"], record["nova"]["event_type"])
        for record in records
        if record.get("event") == "execution"
    ]


async def test_only_the_forwarding_worker_records_what_nova_did(tmp_path: Path) -> None:
    rabbit = require_rabbit()
    async with audited_lab(rabbit, tmp_path) as lab:
        a, b = lab.workers
        assert a.audit.execution_evidence and b.audit.execution_evidence
        server = lab.seeded()
        assert await a.act(server, {"pause": None}) == 202
        assert await b.act(server, {"lock": None}) == 202
        assert await b.act(server, {"unlock": None}) == 202
        # The simulated compute fails it after the 202, as the real Nova's drivers do.
        rebuild = {"imageRef": "c0ffee00-0000-4000-8000-000000000001", "preserve_ephemeral": True}
        assert await a.act(server, {"unpause": None}) == 202
        assert await a.act(server, {"rebuild": rebuild}) == 202
        await wait_until(
            lambda: a.audit.executions == 6 and b.audit.executions == 2,
            ARRIVAL,
            "both workers' execution records",
        )
        # Each heard the other's action events too, and recorded none of them.
        await wait_until(
            lambda: a.audit.executions_unmatched >= 2 and b.audit.executions_unmatched >= 6,
            ARRIVAL,
            "each worker to hear the other's events",
        )
    assert executions(read_records(a.trail_dir)) == [
        ("pause", "started", "instance.pause.start"),
        ("pause", "ended", "instance.pause.end"),
        ("unpause", "started", "instance.unpause.start"),
        ("unpause", "ended", "instance.unpause.end"),
        ("rebuild", "started", "instance.rebuild.start"),
        ("rebuild", "failed", "instance.rebuild.error"),
    ]
    assert executions(read_records(b.trail_dir)) == [
        ("lock", "ended", "instance.lock"),
        ("unlock", "ended", "instance.unlock"),
    ]
    [failed] = [r for r in read_records(a.trail_dir) if r.get("phase") == "failed"]
    assert failed["nova"]["fault"].startswith("PreserveEphemeralNotSupported: ")

    text = lab.verify(a)
    assert "3 written ahead, 3 with their outcome, 0 unfinished; 6 execution record(s)" in text
    assert (
        "executions: 3 forwarded action(s) Nova publishes events for: 2 ended, 1 failed; "
        "0 without any execution record"
    ) in text
    [row] = lab.query(a, "--execution", "failed")
    assert (row["action"], row["status"], row["execution_evidence"]) == ("rebuild", 202, True)
    assert [e["phase"] for e in row["executions"]] == ["started", "failed"]
    assert row["executions"][-1]["fault"] == failed["nova"]["fault"]
    assert {r["action"]: r["execution"] for r in lab.query(b, "--actions-only")} == {
        "lock": "ended",
        "unlock": "ended",
    }


async def test_a_worker_that_heard_nothing_has_no_execution_record_and_verify_says_so(
    tmp_path: Path,
) -> None:
    rabbit = require_rabbit()
    async with audited_lab(rabbit, tmp_path) as lab:
        a, b = lab.workers
        server = lab.seeded()
        # A's feed goes away (as when the worker dies, or its connection drops): its queue
        # is deleted with it, so what Nova publishes meanwhile never reaches A.
        feed = a.worker.gate.servers.feed
        assert feed is not None
        await feed.stop()
        assert await a.act(server, {"os-stop": None}) == 202  # decided on a read of Nova
        await wait_until(lambda: b.audit.executions_unmatched >= 2, ARRIVAL, "B to hear A's stop")
    assert executions(read_records(a.trail_dir)) == []
    text = lab.verify(a)
    assert (
        "executions: 1 forwarded action(s) Nova publishes events for: none recorded; "
        "1 without any execution record"
    ) in text
    [missing] = [line for line in text.splitlines() if line.startswith("NO EXECUTION ")]
    [row] = lab.query(a, "--execution", "none")
    assert row["action"] == "os-stop" and row["request_id"] in missing
