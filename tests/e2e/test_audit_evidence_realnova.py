"""Audit evidence against the real Nova: whatever Nova ran is in the trail, even when the gateway
is killed (``kill -9``) under a stream of actions or the broker restarts; an auditor's questions
are answered by `nova-gateway audit query`.

Owns two servers of its own (booted and deleted here; the seeds are never touched), the
audited gateways in front of the session's realnova, and the judgement of each trail against
Nova's instance-action log (the independent record of what ran) and against what the clients
sent and were answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import skip_or_fail
from tests.e2e.audited_gateway import instance_actions, nova_gateway_command
from tests.e2e.gateway_fixtures import GATEWAY_CONFIG, GatewayLab, start_gateway
from tests.support.api_client import ApiClient
from tests.support.bus import DURABLE, broker_stopped, listener, rabbitmqctl, require_rabbit
from tests.support.lab_servers import boot_active
from tests.support.labs import RealNova
from tests.support.processes import ProcessStartError

MEMBER = "alice:p1"
READER = "carol:p1:reader"
ADMIN = "admin:admin"
SERVERS = 2
STREAMS = 6  # concurrent clients, each one request at a time
RUNS = 3  # gateways killed
SETUP_TIMEOUT = 120.0
SETTLE_TIMEOUT = 20.0
REQUEST_TIMEOUT = 30.0
SEED = int(os.environ.get("NOVA_GATEWAY_CRASH_SEED", "13"))  # the kill points; printed on failure


@dataclass
class Sent:
    """One request a client sent through the gateway, and what it heard back."""

    global_id: str
    server: str
    action: str
    token: str
    status: int | None = None  # None: no answer (the gateway died first)


@dataclass
class Evidence:
    """A trail written by gateways that were killed, and what the clients saw meanwhile."""

    trail: Path
    witness: Path
    key_file: Path
    servers: list[str]
    baseline: dict[str, frozenset[str]]  # Nova's request ids per server before any run
    started: str  # ISO time before the first request
    sent: list[Sent] = field(default_factory=list)
    denials: list[Sent] = field(default_factory=list)


# -- servers, gateways, Nova's log ---------------------------------------------------------


async def boot_servers(nova: ApiClient, count: int) -> list[str]:
    return [
        await boot_active(nova, f"e2e-evidence-{number}", MEMBER, SETUP_TIMEOUT)
        for number in range(count)
    ]


async def delete_servers(nova: ApiClient, ids: list[str]) -> None:
    for server_id in ids:
        await nova.action(server_id, {"unlock": None}, ADMIN)
        await nova.request("DELETE", f"/servers/{server_id}", token=ADMIN)
    deadline = time.monotonic() + SETUP_TIMEOUT
    for server_id in ids:  # bounded: later tests see a quiet Nova
        while (await nova.server(server_id, ADMIN)).status != 404:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.2)


async def nova_log(nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    return await instance_actions(nova, server_id, ADMIN)


async def settled_log(nova: ApiClient, servers: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Nova's logs once they stop changing: a request the dead gateway had already sent may
    still be running in Nova. Polled until three reads agree, bounded."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    previous: dict[str, list[tuple[str, str]]] = {}
    agreed = 0
    while True:
        current = {server: await nova_log(nova, server) for server in servers}
        agreed = agreed + 1 if current == previous else 0
        if agreed >= 2 or time.monotonic() >= deadline:
            return current
        previous = current
        await asyncio.sleep(0.3)


def audit_section(trail: Path, witness: Path, key_file: Path, **extra: str) -> dict[str, str]:
    return {
        "enabled": "true",
        "sinks": "file",
        "hmac_key_file": str(key_file),
        "file_directory": str(trail),
        "file_fsync": "interval",
        "witness_directory": str(witness),
        "witness_interval": "0.2",
        **extra,
    }


def start(realnova: RealNova, home: Path, log_dir: Path, audit: Mapping[str, str]) -> GatewayLab:
    sections = {**GATEWAY_CONFIG, "audit": dict(audit)}
    try:
        return start_gateway(realnova.url, home, log_dir, sections)
    except ProcessStartError as exc:
        pytest.fail(f"the audited gateway did not start: {exc}", pytrace=False)


def kill_9(lab: GatewayLab) -> None:
    """SIGKILL the gateway's whole process group (supervisor and workers): no flush, no close."""
    os.killpg(lab.process.pid, signal.SIGKILL)
    lab.process._popen.wait(10)
    lab.process.stop()


# -- clients -------------------------------------------------------------------------------


class Streams:
    """STREAMS clients sending lock/unlock to the servers, one request at a time each."""

    def __init__(self, url: str, servers: list[str], sent: list[Sent]) -> None:
        self.url = url
        self.servers = servers
        self.sent = sent
        self.stop = asyncio.Event()
        self.resume = asyncio.Event()
        self.resume.set()
        self.answered = 0
        self._changed = asyncio.Condition()

    async def run(self, session: aiohttp.ClientSession, stream: int) -> None:
        server = self.servers[stream % len(self.servers)]
        number = 0
        while not self.stop.is_set():
            await self.resume.wait()
            action = "lock" if (number + stream) % 2 == 0 else "unlock"
            number += 1
            item = Sent(f"req-{uuid.uuid4()}", server, action, MEMBER)
            self.sent.append(item)
            item.status = await post_action(session, self.url, item)
            if item.status is None:
                return  # the gateway is gone
            if item.status == 503:
                self.resume.clear()  # the trail cannot take records: wait to be told
            async with self._changed:
                self.answered += 1
                self._changed.notify_all()

    async def wait_answered(self, count: int, timeout: float = 60.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.answered >= count), timeout)


async def post_action(session: aiohttp.ClientSession, url: str, item: Sent) -> int | None:
    headers = {
        "X-Auth-Token": item.token,
        "X-OpenStack-Request-ID": item.global_id,
        "Content-Type": "application/json",
    }
    try:
        async with session.post(
            f"{url}/servers/{item.server}/action",
            data=json.dumps({item.action: None}),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        ) as response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError):
        return None


# -- reading the trail back (independently of the gateway's own reader) ---------------------


def trail_records(trail: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(trail.glob("*.jsonl"))
        for line in path.read_text(encoding="ascii").splitlines()
    ]


def unexplained(
    ran: list[tuple[str, str, str]], records: list[dict[str, Any]]
) -> tuple[list[tuple[str, str, str]], list[dict[str, Any]]]:
    """The actions Nova ran that no durable decision explains, and the unfinished decisions.

    A finished call is found by Nova's request id in its outcome. A call whose outcome never
    came (the crash window) has only its decision, written before the call left: it must
    explain at most one row, of the same action on the same server.
    """
    decisions = {r["request_id"]: r for r in records if r.get("event") == "decision"}
    outcomes = {r["request_id"]: r for r in records if r.get("event") == "outcome"}
    by_nova_id = {}
    for request_id, outcome in outcomes.items():
        nova_id = (outcome.get("upstream") or {}).get("request_id")
        if nova_id and request_id in decisions:
            by_nova_id[nova_id] = decisions[request_id]
    unfinished = [d for rid, d in decisions.items() if rid not in outcomes]
    spare = list(unfinished)
    missing = []
    for server, action, nova_id in ran:
        decision = by_nova_id.get(nova_id)
        if decision is not None:
            assert decision["decision"]["outcome"] == "allow"
            assert (decision["target"]["server_id"], decision["action"]["key"]) == (server, action)
            continue
        match = next(
            (
                d
                for d in spare
                if d["target"]["server_id"] == server and d["action"]["key"] == action
            ),
            None,
        )
        if match is None:
            missing.append((server, action, nova_id))
        else:
            spare.remove(match)
    return missing, unfinished


def run_audit(evidence: Evidence, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nova_gateway_command(), "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- the crash runs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evidence_servers(realnova: RealNova) -> Iterator[list[str]]:
    async def boot() -> list[str]:
        async with aiohttp.ClientSession() as session:
            return await boot_servers(ApiClient(session, realnova.url), SERVERS)

    async def delete(ids: list[str]) -> None:
        async with aiohttp.ClientSession() as session:
            await delete_servers(ApiClient(session, realnova.url), ids)

    ids = asyncio.run(boot())
    try:
        yield ids
    finally:
        asyncio.run(delete(ids))


@pytest.fixture(scope="module")
def crash_evidence(
    realnova: RealNova,
    evidence_servers: list[str],
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Evidence:
    """RUNS gateways, each SIGKILLed at a random point of a stream of actions; one trail."""
    home = tmp_path_factory.mktemp("crash-evidence")
    key_file = home / "audit.key"
    key_file.write_text(uuid.uuid4().hex + uuid.uuid4().hex, encoding="ascii")
    key_file.chmod(0o600)
    trail, witness = home / "audit", home / "witness"
    started = time.monotonic()
    evidence = asyncio.run(
        crash_runs(realnova, evidence_servers, home, lab_logs, trail, witness, key_file)
    )
    e2e_timings(f"audit crash test ({RUNS} kill -9 runs)", time.monotonic() - started)
    return evidence


async def crash_runs(
    realnova: RealNova,
    servers: list[str],
    home: Path,
    log_dir: Path,
    trail: Path,
    witness: Path,
    key_file: Path,
) -> Evidence:
    rng = random.Random(SEED)
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        baseline = {s: frozenset(rid for _, rid in await nova_log(nova, s)) for s in servers}
        evidence = Evidence(
            trail, witness, key_file, servers, baseline, time.strftime("%Y-%m-%dT%H:%M:%S")
        )
        audit = audit_section(trail, witness, key_file)
        for run in range(RUNS):
            lab = start(realnova, home / f"run-{run}", log_dir, audit)
            if run == 0:  # refusals too: the auditor asks for them
                for _ in range(2):
                    item = Sent(f"req-{uuid.uuid4()}", servers[0], "lock", READER)
                    item.status = await post_action(session, lab.url, item)
                    assert item.status == 403
                    evidence.denials.append(item)
            streams = Streams(lab.url, servers, evidence.sent)
            tasks = [asyncio.create_task(streams.run(session, n)) for n in range(STREAMS)]
            try:
                await streams.wait_answered(rng.randint(STREAMS, 4 * STREAMS))
            finally:
                kill_9(lab)  # mid-stream: requests in flight, outcomes queued, nothing closed
                streams.stop.set()
                await asyncio.gather(*tasks)
    return evidence


async def test_every_action_nova_ran_has_a_durable_decision_after_kill_9(
    realnova: RealNova, crash_evidence: Evidence
) -> None:
    evidence = crash_evidence
    async with aiohttp.ClientSession() as session:
        logs = await settled_log(ApiClient(session, realnova.url), evidence.servers)
    ran = [
        (server, action, nova_id)
        for server, rows in logs.items()
        for action, nova_id in rows
        if nova_id not in evidence.baseline[server]
    ]
    assert len(ran) >= RUNS * STREAMS, f"too little ran to judge: {ran}"
    records = trail_records(evidence.trail)
    missing, unfinished = unexplained(ran, records)
    assert missing == [], (
        f"Nova ran {len(missing)} action(s) with no durable decision record (seed {SEED}): "
        f"{missing}"
    )
    # Seen from the clients: every call answered 202 was decided on the record first.
    decided = {r["global_request_id"] for r in records if r.get("event") == "decision"}
    accepted = [s.global_id for s in evidence.sent if s.status == 202]
    assert accepted and set(accepted) <= decided
    # Decisions without an outcome are calls of ours, cut by a kill.
    sent_ids = {s.global_id for s in evidence.sent}
    assert {d["global_request_id"] for d in unfinished} <= sent_ids

    verified = run_audit(
        evidence, "verify", "--key-file", str(evidence.key_file),
        "--witness-dir", str(evidence.witness), str(evidence.trail),
    )  # fmt: skip
    report = verified.stdout
    assert verified.returncode == 0, report + verified.stderr
    chains = [line for line in report.splitlines() if line.startswith(("OK", "FAIL"))]
    assert len(chains) == RUNS and all(line.startswith("OK ") for line in chains), report
    assert all("closed" not in line for line in chains), report  # killed: never closed
    listed = [line for line in report.splitlines() if line.startswith("UNFINISHED")]
    assert sorted(line.split()[2] for line in listed) == sorted(
        d["request_id"] for d in unfinished
    ), report


async def test_an_auditor_gets_every_denial_and_every_action_on_a_server(
    realnova: RealNova, crash_evidence: Evidence
) -> None:
    evidence = crash_evidence
    key = ["--key-file", str(evidence.key_file), "--witness-dir", str(evidence.witness)]
    denials = run_audit(
        evidence, "query", *key, "--decision", "deny", "--project", "p1",
        "--since", evidence.started, "--format", "jsonl", str(evidence.trail),
    )  # fmt: skip
    assert denials.returncode == 0, denials.stderr
    rows = [json.loads(line) for line in denials.stdout.splitlines()]
    assert [row["global_request_id"] for row in rows] == [s.global_id for s in evidence.denials]
    assert {(row["user_id"], row["status"], row["verified"]) for row in rows} == {
        ("carol", 403, "ok")
    }
    assert "verified intact" in denials.stderr

    server = evidence.servers[0]
    actions = run_audit(
        evidence, "query", *key, "--server", server, "--actions-only", "--format", "jsonl",
        str(evidence.trail),
    )  # fmt: skip
    assert actions.returncode == 0, actions.stderr
    rows = [json.loads(line) for line in actions.stdout.splitlines()]
    async with aiohttp.ClientSession() as session:
        log = await settled_log(ApiClient(session, realnova.url), [server])
    ran = {nova_id for _, nova_id in log[server] if nova_id not in evidence.baseline[server]}
    answered = {row["nova_request_id"] for row in rows if row["nova_request_id"]}
    unfinished = [row for row in rows if row["unfinished"]]
    # Everything Nova ran is there by Nova's id, or among the decisions cut by a kill.
    assert len(ran - answered) <= len(unfinished), (ran - answered, unfinished)
    assert all(row["verified"] == "ok" and row["server_id"] == server for row in rows)
    sent_here = {s.global_id for s in evidence.sent + evidence.denials if s.server == server}
    assert {row["global_request_id"] for row in rows} <= sent_here
    table = run_audit(evidence, "query", *key, "--server", server[:8], str(evidence.trail))
    assert table.returncode == 0 and "verified intact" in table.stdout


# -- the broker restart ------------------------------------------------------------------------


async def wait_ready(admin_url: str, ready: bool, timeout: float = 60.0) -> None:
    """Until the gateway's /readyz says ``ready`` (its audit sinks healthy or not)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{admin_url}/readyz") as response:
                if (response.status == 200) == ready:
                    return
            assert time.monotonic() < deadline, f"/readyz never became ready={ready}"
            await asyncio.sleep(0.1)


async def test_a_broker_restart_mid_run_loses_no_record_on_the_bus(
    realnova: RealNova,
    evidence_servers: list[str],
    tmp_path: Path,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> None:
    rabbit = require_rabbit()
    if rabbitmqctl() is None:
        skip_or_fail("rabbitmqctl is not installed: the broker cannot be restarted")
    # A private exchange: durable, it must not meet the shared control exchange's settings.
    topic = exchange = f"nova_gateway_audit_e2e_{uuid.uuid4().hex[:8]}"
    durable = rabbit + DURABLE  # queues that survive the restart, for sink and consumer alike
    key_file = tmp_path / "audit.key"
    key_file.write_text(uuid.uuid4().hex + uuid.uuid4().hex, encoding="ascii")
    audit = audit_section(
        tmp_path / "audit", tmp_path / "witness", key_file,
        sinks="file,messaging", messaging_transport_url=durable,
        messaging_topics=topic, messaging_exchange=exchange, messaging_format="json",
        retry_interval="0.5",
    )  # fmt: skip
    sent: list[Sent] = []
    started = time.monotonic()
    with listener(durable, topic, exchange) as received:
        lab = start(realnova, tmp_path / "config", lab_logs, audit)
        try:
            async with aiohttp.ClientSession() as session:
                streams = Streams(lab.url, evidence_servers, sent)
                tasks = [asyncio.create_task(streams.run(session, n)) for n in range(3)]
                try:
                    await streams.wait_answered(6)
                    stopped = time.monotonic()
                    async with broker_stopped():  # a few seconds: the broker is shared
                        await wait_ready(lab.admin_url, ready=False)
                    outage = time.monotonic() - stopped
                    await wait_ready(lab.admin_url, ready=True)
                    streams.resume.set()
                    await streams.wait_answered(streams.answered + 6)
                finally:
                    streams.stop.set()
                    streams.resume.set()
                    await asyncio.gather(*tasks)
        finally:
            assert lab.process.stop(30) == 0  # SIGTERM: flushed, both chains closed
        files = trail_records(tmp_path / "audit")
        expected = len(files)

        def all_there() -> bool:
            return len({(p["chain"], p["seq"]) for p in received.payloads()}) >= expected

        deadline = time.monotonic() + 60
        while not all_there():  # the consumer reconnects after the restart, then drains
            assert time.monotonic() < deadline, f"{received.count()} of {expected} arrived"
            await asyncio.sleep(0.2)
    e2e_timings("audit broker restart test (outage included)", time.monotonic() - started)
    e2e_timings("RabbitMQ outage (stop_app to start_app done)", outage)
    assert any(s.status == 503 for s in sent), "the outage should have refused a call"
    bus: dict[int, dict[str, Any]] = {}
    for payload in received.payloads():
        previous = bus.setdefault(payload["seq"], payload)
        assert previous == payload, "a second, different record under one seq"  # duplicates ok
    assert sorted(bus) == list(range(1, len(bus) + 1)), "a gap in the bus chain"
    on_bus = [(r.get("event"), r.get("request_id")) for _, r in sorted(bus.items())]
    in_file = [(r.get("event"), r.get("request_id")) for r in files]
    assert on_bus == in_file  # the same records in the same order: none lost
    assert on_bus[-1][0] == "chain_closed"
