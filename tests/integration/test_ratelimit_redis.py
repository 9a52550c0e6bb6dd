"""Rate limits shared by gateway processes through a real Redis, the storage-down choices,
and the metrics every outcome moves (also with two workers behind one port)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import skip_or_fail
from tests.support.gateway import start_gateway_process_async
from tests.support.processes import (
    LOOPBACK,
    ServerProcess,
    novasim_process,
)

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LIMIT = 5
RULES = f"""
rules:
  - name: reboots
    limit: {LIMIT} per minute
    actions: [reboot]
"""
REBOOT = json.dumps({"reboot": {"type": "SOFT"}}).encode()
JSON = {"Content-Type": "application/json"}


def redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own in the real Redis; its keys are deleted after."""
    if not redis_reachable():
        skip_or_fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (the rate-limit tests need one)")
    import redis.asyncio

    prefix = f"nova-gateway-test-{uuid.uuid4().hex}"
    yield prefix
    client = redis.asyncio.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def novasim() -> Iterator[tuple[str, str]]:
    """The simulator as its own process (seeded) and the id of a p1 server."""
    with novasim_process() as started:
        yield started


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def shared_redis(prefix: str) -> dict[str, Any]:
    # Counting is what these tests are about: a timeout generous enough that a loaded
    # machine's event-loop lag never reads as a Redis outage (outages are tested apart).
    return {
        "storage_url": f"async+redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "key_prefix": prefix,
        "storage_timeout": 0.5,
    }


@dataclass
class Gateway:
    process: ServerProcess
    api: str
    admin: str

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.admin}/metrics") as r:
            assert r.status == 200
            text = await r.text()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


async def start_gateway(
    tmp_path: Path, upstream: str, settings: Mapping[str, Mapping[str, Any]], workers: int = 1
) -> Gateway:
    name = f"gateway-{uuid.uuid4().hex[:8]}"
    rules = tmp_path / f"{name}-rules.yaml"
    rules.write_text(RULES)
    sections: dict[str, dict[str, Any]] = {
        "identity": {"mode": "noauth", "allow_noauth": "true"},
        "rate_limit": {"rules_file": rules},
        "metrics": {"sample_interval": 0.1},
        "server_lookup": {"cache_ttl": 0},
    }
    for group, values in settings.items():
        sections.setdefault(group, {}).update(values)
    lab = await start_gateway_process_async(
        upstream, tmp_path, tmp_path, sections, workers, name=name
    )
    return Gateway(lab.process, f"http://{LOOPBACK}:{lab.api_port}", lab.admin_url)


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        assert gateway.process.stop() == 0, gateway.process.log_tail()


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    seconds: float


async def send(
    api: str, method: str, path: str, token: str = "alice:p1", body: bytes | None = None
) -> Answer:
    # A fresh connection each time, so SO_REUSEPORT spreads requests over the workers.
    started = time.monotonic()
    async with (
        aiohttp.ClientSession(headers={"X-Auth-Token": token, **JSON}) as session,
        session.request(method, api + path, data=body) as response,
    ):
        payload = await response.read()
        headers = {key: value for key, value in response.headers.items()}
    return Answer(response.status, headers, payload, time.monotonic() - started)


def total(
    metrics: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(
        value
        for (sample, sample_labels), value in metrics.items()
        if sample == name and wanted <= set(sample_labels)
    )


async def metrics_settle(
    gateways: list[Gateway], name: str, expected: float, **labels: str
) -> None:
    """Wait for the samplers (0.1 s) and the scrapes to agree on a total."""
    deadline = time.monotonic() + 10
    while True:
        seen = [total(await gateway.metrics(), name, **labels) for gateway in gateways]
        if sum(seen) == expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert sum(seen) == expected, (name, labels, seen)


async def test_two_gateways_share_one_limit_through_redis(
    novasim: tuple[str, str], redis_prefix: str, tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    shared = {"rate_limit": shared_redis(redis_prefix)}
    first, second = await asyncio.gather(
        start_gateway(tmp_path, upstream, shared), start_gateway(tmp_path, upstream, shared)
    )
    gateways.extend([first, second])
    path = f"/v2.1/servers/{server}/action"
    answers = await asyncio.gather(
        *(send((first, second)[i % 2].api, "POST", path, body=REBOOT) for i in range(3 * LIMIT))
    )
    admitted = [a for a in answers if a.status != 429]
    refused = [a for a in answers if a.status == 429]
    await metrics_settle([first, second], "nova_gateway_rate_limit_storage_errors_total", 0)
    # Exactly the limit, not one more: each check reads and counts in one Redis script.
    assert len(admitted) == LIMIT, [a.status for a in answers]
    assert {a.status for a in admitted} == {202}
    for answer in admitted:
        assert answer.headers["RateLimit-Limit"] == str(LIMIT)
        assert 0 <= int(answer.headers["RateLimit-Remaining"]) < LIMIT
        assert answer.headers["RateLimit-Policy"] == f"{LIMIT};w=60"
    for answer in refused:
        # The sliding-window counter frees room once this window has faded into the
        # next: at most two periods away.
        retry_after = int(answer.headers["Retry-After"])
        assert 1 <= retry_after <= 120
        assert answer.headers["RateLimit-Remaining"] == "0"
        assert answer.headers["RateLimit-Reset"] == str(retry_after)
        assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert answer.headers["x-openstack-request-id"].startswith("req-")
        fault = json.loads(answer.body)["overLimit"]
        assert fault["code"] == 429 and fault["retryAfter"] == str(retry_after)
        assert "rule 'reboots' allows 5 per minute per project" in fault["message"]

    # Another project has its own budget on either gateway.
    assert (await send(second.api, "POST", path, token="admin:admin", body=REBOOT)).status == 202

    # Either gateway shows the caller where it stands, in Nova's legacy limits view.
    limits = await send(first.api, "GET", "/v2.1/limits")
    assert limits.status == 200
    document = json.loads(limits.body)["limits"]
    assert document["absolute"]["maxTotalInstances"] == 10  # Nova's quotas untouched
    [entry] = document["rate"]
    assert (entry["uri"], entry["regex"]) == ("* (reboot)", ".*")
    [limit] = entry["limit"]
    assert (limit["verb"], limit["value"], limit["unit"]) == ("POST", LIMIT, "MINUTE")
    assert limit["remaining"] == max(0, LIMIT - len(admitted))
    assert limits.headers["Content-Length"] == str(len(limits.body))
    again = json.loads((await send(second.api, "GET", "/v2.1/limits")).body)["limits"]["rate"]
    assert [(e["uri"], [(x["value"], x["remaining"]) for x in e["limit"]]) for e in again] == [
        (entry["uri"], [(limit["value"], limit["remaining"])])
    ]

    gateways_seen = [first, second]
    await metrics_settle(
        gateways_seen, "nova_gateway_rate_limit_refusals_total", len(refused), rule="reboots"
    )
    await metrics_settle(
        gateways_seen,
        "nova_gateway_requests_total",
        len(refused),
        action="reboot",
        decision="deny",
        reason="rate_limited",
        status="429",
    )
    await metrics_settle(
        gateways_seen, "nova_gateway_rate_limit_decisions_total", len(admitted), outcome="allowed"
    )
    await metrics_settle(
        gateways_seen, "nova_gateway_rate_limit_decisions_total", 1, outcome="exempt"
    )
    await metrics_settle(gateways_seen, "nova_gateway_rate_limit_storage_errors_total", 0)


async def test_storage_down_open_and_closed_cost_one_short_timeout(
    novasim: tuple[str, str], tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    # Fail open against a Redis that accepts and never answers (the slow kind of outage),
    # fail closed against a port where nothing listens (the fast kind).
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_port = silent.sockets[0].getsockname()[1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    common = {"storage_timeout": 0.1, "breaker_cooldown": 2.0}
    try:
        open_gateway, closed_gateway = await asyncio.gather(
            start_gateway(tmp_path, upstream, {"rate_limit": {
                **common, "storage_url": f"async+redis://127.0.0.1:{silent_port}/0",
                "storage_failure": "open"}}),
            start_gateway(tmp_path, upstream, {"rate_limit": {
                **common, "storage_url": f"async+redis://127.0.0.1:{closed_port}/0",
                "storage_failure": "closed"}}),
        )  # fmt: skip
        gateways.extend([open_gateway, closed_gateway])
        path = f"/v2.1/servers/{server}/action"
        baseline = [await send(open_gateway.api, "GET", "/v2.1/flavors") for _ in range(5)]
        started = time.monotonic()
        opened = [await send(open_gateway.api, "POST", path, body=REBOOT) for _ in range(3 * LIMIT)]
        elapsed = time.monotonic() - started
        assert [a.status for a in opened] == [202] * (3 * LIMIT)  # served without limits
        assert all("RateLimit-Limit" not in a.headers for a in opened)
        # One 100 ms timeout, then the breaker answers at once: bounded added latency.
        slowest = max(a.seconds for a in opened)
        typical = sorted(a.seconds for a in opened)[len(opened) // 2]
        assert slowest < 1.5, [round(a.seconds, 3) for a in opened]
        assert typical < max(a.seconds for a in baseline) + 0.1
        closed = [await send(closed_gateway.api, "POST", path, body=REBOOT) for _ in range(5)]
        for answer in closed:
            assert answer.status == 503
            assert 1 <= int(answer.headers["Retry-After"]) <= 2
            fault = json.loads(answer.body)["serviceUnavailable"]
            assert "Rate limiting is temporarily unavailable" in fault["message"]
            assert answer.seconds < 1.5
        # Storage errors: one per breaker interval (2 s), not one per request.
        opened_errors = total(
            await open_gateway.metrics(), "nova_gateway_rate_limit_storage_errors_total"
        )
        assert 1 <= opened_errors <= 1 + elapsed / 2.0 + 1
        await metrics_settle(
            [open_gateway],
            "nova_gateway_rate_limit_decisions_total",
            3 * LIMIT,
            outcome="storage_down_open",
        )
        await metrics_settle(
            [closed_gateway],
            "nova_gateway_rate_limit_decisions_total",
            5,
            outcome="storage_down_closed",
        )
        await metrics_settle(
            [closed_gateway],
            "nova_gateway_requests_total",
            5,
            decision="deny",
            reason="rate_limit_unavailable",
            status="503",
        )
        await metrics_settle([open_gateway], "nova_gateway_rate_limit_breaker_open", 1)
    finally:
        silent.close()
        await silent.wait_closed()


async def test_metrics_add_up_across_two_workers(
    novasim: tuple[str, str], redis_prefix: str, tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    gateway = await start_gateway(
        tmp_path,
        upstream,
        {"rate_limit": shared_redis(redis_prefix)},
        workers=2,
    )
    gateways.append(gateway)
    path = f"/v2.1/servers/{server}/action"
    listed = [await send(gateway.api, "GET", "/v2.1/servers") for _ in range(6)]
    assert {a.status for a in listed} == {200}
    forbidden = [
        await send(gateway.api, "POST", path, token="carol:p1:reader", body=REBOOT)
        for _ in range(3)
    ]
    assert {a.status for a in forbidden} == {403}
    # carol's refused reboots were counted too: the limit comes before policy.
    reboots = [await send(gateway.api, "POST", path, body=REBOOT) for _ in range(LIMIT)]
    statuses = [a.status for a in reboots]
    assert statuses == [202] * (LIMIT - 3) + [429] * 3
    unauthenticated = await send(gateway.api, "GET", "/v2.1/servers", token="")
    assert unauthenticated.status == 401
    # Several scrapes, each answered by either worker, all see every worker's counts.
    for _ in range(4):
        await metrics_settle(
            [gateway],
            "nova_gateway_requests_total",
            6,
            action="none",
            decision="allow",
            status="200",
        )
    await metrics_settle(
        [gateway], "nova_gateway_requests_total", 3, action="reboot", reason="policy", status="403"
    )
    await metrics_settle(
        [gateway], "nova_gateway_requests_total", LIMIT - 3, action="reboot", status="202"
    )
    await metrics_settle([gateway], "nova_gateway_rate_limit_refusals_total", 3, rule="reboots")
    await metrics_settle([gateway], "nova_gateway_requests_total", 1, decision="deny", status="401")
    await metrics_settle([gateway], "nova_gateway_decision_duration_seconds_count", 15)
    await metrics_settle([gateway], "nova_gateway_request_duration_seconds_count", 15)
    await metrics_settle([gateway], "nova_gateway_upstream_duration_seconds_count", 6 + LIMIT - 3)
    # Server reads for the 3 + 5 reboots (the cache is off in these gateways).
    await metrics_settle(
        [gateway], "nova_gateway_cache_lookups_total", LIMIT - 3 + 3, cache="server", result="miss"
    )
    scraped = await gateway.metrics()
    assert total(scraped, "nova_gateway_build_info") == 1  # livemax over the workers
    assert total(scraped, "nova_gateway_policy_last_reload_ok") == 1
    assert total(scraped, "nova_gateway_rate_limit_breaker_open") == 0

    # A worker that dies takes its live gauges along, never its counts.
    workers = children_of(gateway.process.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:  # until the replacement listens (stopping it earlier is another test)
        replaced = set(children_of(gateway.process.pid)) - set(workers)
        log = gateway.process.log_path.read_text()
        if any(f'"pid": {pid}, "listen"' in log for pid in replaced):
            break
        assert time.monotonic() < deadline, "the supervisor did not replace the worker"
        await asyncio.sleep(0.1)
    await metrics_settle(
        [gateway], "nova_gateway_requests_total", 6, action="none", decision="allow", status="200"
    )
    await metrics_settle([gateway], "nova_gateway_request_duration_seconds_count", 15)
    assert total(await gateway.metrics(), "nova_gateway_build_info") == 1
