"""Server facts against the real Nova 34 and the real RabbitMQ.

With the mirror, in front of a realnova that publishes its versioned notifications: two
worker gates in this process (each with its own mirror and private queue, as every forked
worker has), one gateway process with ``--workers 2`` (connections told apart by the
workers' audit files), and two gateway processes. A stop forwarded by one is honoured by
the other on the next call, sent within 100 ms of Nova showing SHUTOFF; a pause made at
Nova directly is honoured within the notification delay, without a read.

Without a bus: today's stale refusal (worker B refuses a start on the copy it read just
before A's stop) is reproduced on B's copy, and gone from B's answers.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import gates
from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import Fault
from tests.e2e.gateway_fixtures import GatewayLab, start_gateway
from tests.support.api_client import ApiClient
from tests.support.audit import write_key
from tests.support.facts_lab import Worker, mirror_options, wait_live
from tests.support.gateway import running_gateway
from tests.support.labs import RealNova
from tests.support.rabbit import require_rabbit, unique
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

ALICE = "alice:p1"
NOVA_TOPIC = "versioned_notifications"  # what realnova's Nova publishes to (exchange nova)
START_WITHIN = 0.1  # seconds from Nova showing the stop done to the start being sent
NOTIFICATION_DELAY = 1.0  # the lab measures 6-22 ms; a loaded machine needs more


@asynccontextmanager
async def workers(upstream: str, **options: Any) -> AsyncIterator[list[Worker]]:
    async with AsyncExitStack() as stack:
        pair = [
            Worker(await stack.enter_async_context(running_gateway(upstream, options)))
            for _ in range(2)
        ]
        yield pair


def mirrored(rabbit: str) -> dict[str, Any]:
    return mirror_options(rabbit, NOVA_TOPIC, unique("nova-gateway-e2e"))


async def settle_active(nova: ApiClient, server: str) -> None:
    """Leave the seed ACTIVE and unlocked for the next test (they share realnova)."""
    reply = await idle(nova, server)
    if reply.body["server"].get("locked"):
        assert (await nova.action(server, {"unlock": None}, "admin:admin")).status == 202
    status = reply.body["server"]["status"]
    if status == "SHUTOFF":
        assert (await nova.action(server, {"os-start": None}, ALICE)).status == 202
    elif status == "PAUSED":
        assert (await nova.action(server, {"unpause": None}, ALICE)).status == 202
    await nova.wait_for_status(server, "ACTIVE", ALICE, interval=0.05)


async def idle(nova: ApiClient, server: str, timeout: float = 30.0) -> Any:
    """The server once no task runs on it (SHUTOFF also reads while powering on)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await nova.server(server, "admin:admin")
        assert reply.status == 200, reply.body
        if reply.body["server"]["OS-EXT-STS:task_state"] is None:
            return reply
        assert time.monotonic() < deadline, f"{server} still busy: {reply.body}"
        await asyncio.sleep(0.05)


async def stop_then_start(
    nova: ApiClient,
    server: str,
    stop: Callable[[], Any],
    start: Callable[[], Any],
) -> int:
    """Stop through one, wait for Nova to show it done, then at once start through the other."""
    assert await stop() == 202
    await nova.wait_for_status(server, "SHUTOFF", ALICE, interval=0.02)
    shown = time.monotonic()
    status = start()
    assert time.monotonic() - shown < START_WITHIN
    return int(await status)


async def test_two_workers_honour_each_others_changes(
    realnova_bus: RealNova, http_session: aiohttp.ClientSession
) -> None:
    rabbit = require_rabbit()
    nova = ApiClient(http_session, realnova_bus.url)
    server = realnova_bus.seed("p1", 0)
    await settle_active(nova, server)
    async with workers(realnova_bus.url, **mirrored(rabbit)) as (a, b):
        await wait_live([a, b])
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B knows it: ACTIVE
        status = await stop_then_start(
            nova,
            server,
            lambda: a.act(server, {"os-stop": None}),
            lambda: b.act(server, {"os-start": None}),
        )
        assert status == 202, "worker B refused the start that A's stop made valid"
        await nova.wait_for_status(server, "ACTIVE", ALICE, interval=0.05)

        # A pause made at Nova directly, not through the gateway.
        assert (await nova.action(server, {"pause": None}, ALICE)).status == 202
        await nova.wait_for_status(server, "PAUSED", ALICE, interval=0.02)
        delay = await wait_until(
            lambda: (
                getattr(b.facts(server), "vm_state", None) == "paused"
                and getattr(b.facts(server), "task_state", "x") is None
            ),
            NOTIFICATION_DELAY,
            "worker B's mirror to show the pause made at Nova",
        )
        reads = b.reads
        assert await b.act(server, {"unpause": None}) == 202
        assert b.reads == reads, "the unpause was decided on the mirror, with no read"
        assert delay < NOTIFICATION_DELAY
    await settle_active(nova, server)


async def metric_sum(admin: str, name: str, session: aiohttp.ClientSession) -> float:
    async with session.get(admin + "/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def test_two_gateway_processes_honour_each_others_changes(
    realnova_bus: RealNova,
    http_session: aiohttp.ClientSession,
    tmp_path: Path,
    lab_logs: Path,
) -> None:
    rabbit = require_rabbit()
    nova = ApiClient(http_session, realnova_bus.url)
    server = realnova_bus.seed("p1", 1)
    await settle_active(nova, server)
    prefix = unique("nova-gateway-e2e")
    sections = {
        "identity": {"mode": "noauth", "allow_noauth": "true"},
        "server_facts": {
            "notifications_url": rabbit,
            "queue_prefix": prefix,
            "heartbeat_interval": "0.1",
            "max_lag": "1.0",
        },
    }
    labs: list[GatewayLab] = []
    try:
        for name in ("a", "b"):
            labs.append(start_gateway(realnova_bus.url, tmp_path / name, lab_logs, sections))
        a, b = (ApiClient(http_session, lab.url) for lab in labs)
        for lab in labs:  # each process's feed has proven itself by its heartbeat
            await _wait_ready_mirror(lab.admin_url, http_session)
        assert (await b.action(server, {"os-getConsoleOutput": {}}, ALICE)).status == 200
        reads = await metric_sum(labs[1].admin_url, "nova_gateway_server_reads_total", http_session)
        status = await stop_then_start(
            nova,
            server,
            lambda: _status(a.action(server, {"os-stop": None}, ALICE)),
            lambda: _status(b.action(server, {"os-start": None}, ALICE)),
        )
        assert status == 202, "process B refused the start that A's stop made valid"
        after = await metric_sum(labs[1].admin_url, "nova_gateway_server_reads_total", http_session)
        print(f"process B read the server {after - reads:g} time(s) to decide the start")
    finally:
        for lab in labs:
            lab.process.stop()
        await settle_active(nova, server)


AUDIT_FILE = re.compile(r"^audit-.+-(\d+)-\d{8}T\d{6}-[0-9a-f]+-\d+\.jsonl$")


def serving_pid(audit_dir: Path, global_id: str) -> int | None:
    """The worker whose audit file holds the call sent with ``global_id`` (each worker
    writes its own files, named with its pid)."""
    for path in audit_dir.glob("*.jsonl"):
        match = AUDIT_FILE.match(path.name)
        if match and global_id in path.read_text(encoding="utf-8", errors="replace"):
            return int(match.group(1))
    return None


async def call_via(
    session: aiohttp.ClientSession, base: str, server: str, body: Any, audit_dir: Path
) -> tuple[int, int]:
    """(status, pid of the worker that served it) for an action sent on ``session``."""
    global_id = f"req-{uuid.uuid4()}"
    async with session.post(
        f"{base}/servers/{server}/action",
        json=body,
        headers={"X-Auth-Token": ALICE, "X-OpenStack-Request-ID": global_id},
    ) as response:
        await response.read()
        status = response.status
    pid: int | None = None

    def found() -> bool:
        nonlocal pid
        pid = serving_pid(audit_dir, global_id)
        return pid is not None

    await wait_until(found, 10.0, "the call's audit record")
    assert pid is not None
    return status, pid


async def test_two_workers_of_one_gateway_process(
    realnova_bus: RealNova, http_session: aiohttp.ClientSession, tmp_path: Path, lab_logs: Path
) -> None:
    """``--workers 2`` on one port: two keep-alive connections that the kernel gave to
    different workers (told apart by the workers' own audit files) carry the stop and
    the start."""
    rabbit = require_rabbit()
    nova = ApiClient(http_session, realnova_bus.url)
    server = realnova_bus.seed("p1", 0)
    await settle_active(nova, server)
    audit_dir = tmp_path / "audit"
    sections = {
        "identity": {"mode": "noauth", "allow_noauth": "true"},
        "server_facts": {
            "notifications_url": rabbit,
            "queue_prefix": unique("nova-gateway-e2e"),
            "heartbeat_interval": "0.1",
            "max_lag": "1.0",
        },
        "audit": {
            "enabled": "true",
            "hmac_key_file": str(write_key(tmp_path)),
            "file_directory": str(audit_dir),
            "file_fsync": "never",
        },
    }
    lab = start_gateway(realnova_bus.url, tmp_path / "gw", lab_logs, sections, workers=2)
    sessions: list[aiohttp.ClientSession] = []
    try:
        by_pid: dict[int, aiohttp.ClientSession] = {}
        for _ in range(16):  # each new connection lands on a worker the kernel picks
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            sessions.append(session)
            status, pid = await call_via(
                session, lab.url, server, {"os-getConsoleOutput": {}}, audit_dir
            )
            assert status == 200
            by_pid.setdefault(pid, session)
            if len(by_pid) == 2:
                break
        assert len(by_pid) == 2, "every connection went to the same worker"
        (pid_a, a), (pid_b, b) = by_pid.items()
        # Each worker now holds the server ACTIVE (B read it just before, as in the issue).
        stop, served = await call_via(a, lab.url, server, {"os-stop": None}, audit_dir)
        assert (stop, served) == (202, pid_a)
        await nova.wait_for_status(server, "SHUTOFF", ALICE, interval=0.02)
        shown = time.monotonic()
        start = asyncio.ensure_future(call_via(b, lab.url, server, {"os-start": None}, audit_dir))
        await asyncio.sleep(0)
        assert time.monotonic() - shown < START_WITHIN
        status, served = await start
        assert served == pid_b
        assert status == 202, "worker B refused the start that worker A's stop made valid"
    finally:
        for session in sessions:
            await session.close()
        lab.process.stop()
        await settle_active(nova, server)


async def _status(reply: Any) -> int:
    return int((await reply).status)


async def _wait_ready_mirror(admin: str, session: aiohttp.ClientSession) -> None:
    deadline = time.monotonic() + 20
    while True:
        async with session.get(admin + "/readyz") as response:
            checks = (await response.json())["checks"]
        if checks.get("server_facts_degraded") is False:
            return
        assert time.monotonic() < deadline, f"the mirror never came up: {checks}"
        await asyncio.sleep(0.05)


async def test_without_a_bus_the_stale_refusal_is_gone(realnova: RealNova, nova: ApiClient) -> None:
    server = realnova.seed("p1", 1)
    await settle_active(nova, server)
    async with workers(realnova.url, **{"server_lookup.cache_ttl": 30.0}) as (a, b):
        assert await b.act(server, {"os-getConsoleOutput": {}}) == 200  # B's copy: ACTIVE
        assert await a.act(server, {"os-stop": None}) == 202
        await nova.wait_for_status(server, "SHUTOFF", ALICE, interval=0.02)
        copy = b.facts(server)
        assert copy is not None and copy.vm_state == "active"
        with pytest.raises(Fault) as refused:  # today's decision, on B's copy
            gates.check_state(BY_KEY["os-start"], copy, None)
        assert (refused.value.status, "vm_state active" in refused.value.message) == (409, True)
        assert await b.act(server, {"os-start": None}) == 202
    await settle_active(nova, server)
