"""Highly available counters: two gateway processes share limits through Redis Sentinel
(and Redis Cluster) run by this test, and keep them while the primary dies under load.

The bound these tests hold the gateway to (README, "Rate limits"): with storage_failure =
closed a project is never admitted more than its limit plus the calls the dead primary had
acknowledged but not yet streamed to its replica (at most one per connection in flight),
and never less than its limit minus the calls whose answer the crash cut off; with open,
calls during the outage pass uncounted. No request waits for the counters longer than
3 times storage_timeout; the gateway follows the promoted replica by itself.
"""

from __future__ import annotations

import asyncio
import json
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
from tests.support.redis_lab import (
    ClusterLab,
    SentinelLab,
    cluster_lab,
    redis_server,
    sentinel_lab,
)
from tests.support.waiting import wait_until

LIMIT = 120
CONCURRENCY = 6  # clients sending at once, spread over the two gateways
STORAGE_TIMEOUT = 0.25
COOLDOWN = 0.5
CHECK_BOUND = 3 * STORAGE_TIMEOUT  # the longest a request may wait for the counters
# What else a request may take on this shared 2-CPU machine (identity, the server read,
# novasim's answer, the event loop under load): generous, yet far from a hang.
SLACK = 1.5
WINDOW_MARGIN = 120  # seconds: far longer than any of these tests runs
RULES = f"""
rules:
  - name: server-reads
    limit: {LIMIT} per hour
    methods: [GET]
    path: /servers/*
"""


@pytest.fixture(scope="module")
def novasim() -> Iterator[tuple[str, str]]:
    """The simulator as its own process (seeded) and the id of a p1 server."""
    with novasim_process() as started:
        yield started


@pytest.fixture
def redis_binary() -> None:
    if redis_server() is None:
        skip_or_fail("redis-server is not installed (the failover tests start their own)")


@dataclass
class Gateway:
    process: ServerProcess
    api: str
    admin: str

    async def metric(self, name: str, **labels: str) -> float:
        async with aiohttp.ClientSession() as session, session.get(f"{self.admin}/metrics") as r:
            text = await r.text()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )


async def start_gateways(
    tmp_path: Path, upstream: str, prefix: str, rate_limit: Mapping[str, Any], count: int = 2
) -> list[Gateway]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    sections: dict[str, Mapping[str, object]] = {
        "identity": {"mode": "noauth", "allow_noauth": "true"},
        "server_lookup": {"cache_ttl": 0},
        "metrics": {"sample_interval": 0.1},
        "rate_limit": {
            "rules_file": rules,
            "key_prefix": prefix,
            "storage_timeout": STORAGE_TIMEOUT,
            "breaker_cooldown": COOLDOWN,
            **rate_limit,
        },
    }

    async def start(index: int) -> Gateway:
        lab = await start_gateway_process_async(
            upstream, tmp_path, tmp_path, sections, name=f"gateway-{index}-{uuid.uuid4().hex[:8]}"
        )
        return Gateway(lab.process, f"http://{LOOPBACK}:{lab.api_port}", lab.admin_url)

    return list(await asyncio.gather(*(start(i) for i in range(count))))


def new_prefix() -> str:
    return f"nova-gateway-failover-{uuid.uuid4().hex}"


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gateway in started:
        assert gateway.process.stop() == 0, gateway.process.log_tail()


@dataclass
class Answer:
    gateway: int
    started: float
    seconds: float
    status: int
    headers: Mapping[str, str]
    body: bytes


class Load:
    """CONCURRENCY clients reading one server through both gateways until stopped."""

    def __init__(self, gateways: list[Gateway], path: str) -> None:
        self.gateways = gateways
        self.path = path
        self.answers: list[Answer] = []
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def _client(self, index: int) -> None:
        which = index % len(self.gateways)
        url = self.gateways[which].api + self.path
        async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
            while not self.stopping.is_set():
                started = time.monotonic()
                async with session.get(url) as response:
                    body = await response.read()
                self.answers.append(
                    Answer(
                        which,
                        started,
                        time.monotonic() - started,
                        response.status,
                        dict(response.headers),
                        body,
                    )
                )

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._client(i)) for i in range(CONCURRENCY)]

    async def until(self, condition: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            for task in self.tasks:
                if task.done():
                    task.result()  # a client that failed says why
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)

    def admitted(self) -> list[Answer]:
        return [a for a in self.answers if a.status == 200]


def assert_bounded(answers: list[Answer]) -> None:
    slowest = max(answers, key=lambda a: a.seconds)
    assert slowest.seconds < CHECK_BOUND + SLACK, (
        f"a request took {slowest.seconds:.2f} s (status {slowest.status})"
    )


def assert_storage_refusal(answer: Answer) -> None:
    assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert 1 <= int(answer.headers["Retry-After"]) <= 1 + COOLDOWN
    assert answer.headers["x-openstack-request-id"].startswith("req-")
    fault = json.loads(answer.body)["serviceUnavailable"]
    assert fault["code"] == 503
    assert "Rate limiting is temporarily unavailable" in fault["message"]


def counted(lab: SentinelLab, prefix: str) -> int:
    """Calls counted in the promoted replica under this run's key prefix: the default
    sliding-window counter's hash holds the previous window's count and the current's."""
    client = lab.replica.client()
    keys = client.keys(f"{prefix}:*")
    assert len(keys) == 1, keys
    previous, current = client.hmget(keys[0], "p", "c")
    return int(previous or 0) + int(current or 0)


async def clear_of_the_hour_edge() -> None:
    """The rule counts per clock-aligned hour with the default sliding-window counter,
    which admits exactly the limit inside one hour but more across its edge (the previous
    hour fades out). A test starts only with WINDOW_MARGIN seconds left in the hour, far
    more than it runs, so the bound it checks is exact; at worst it waits for the edge."""
    await wait_until(
        lambda: 3600 - time.time() % 3600 > WINDOW_MARGIN,
        timeout=WINDOW_MARGIN + 5,
        what="an hour with room for the test",
    )


async def test_sentinel_failover_under_load_keeps_limits_closed(
    novasim: tuple[str, str], redis_binary: None, tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    # A sentinel address that accepts and never answers, listed first: discovery must
    # move on to the next sentinel within storage_timeout instead of hanging there.
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    silent_address = f"127.0.0.1:{silent.sockets[0].getsockname()[1]}"
    try:
        with sentinel_lab(tmp_path / "redis") as lab:
            prefix = new_prefix()
            await clear_of_the_hour_edge()
            started = await start_gateways(
                tmp_path,
                upstream,
                prefix,
                {"storage_url": lab.url(extra_first=[silent_address]), "storage_failure": "closed"},
            )
            gateways.extend(started)
            load = Load(started, f"/v2.1/servers/{server}")
            load.start()
            await load.until(lambda: len(load.admitted()) >= LIMIT // 3, "a third of the limit")
            for gateway in started:
                assert await gateway.metric("nova_gateway_rate_limit_storage_errors_total") == 0
            killed_at = time.monotonic()
            lab.primary.kill()
            # Until the replica is promoted every check fails fast (503), then the
            # gateways count on the new primary until the limit is spent (429).
            await load.until(
                lambda: (
                    {a.gateway for a in load.answers if a.started > killed_at and a.status == 429}
                    == {0, 1}
                ),
                "both gateways refuse over the limit on the promoted replica",
            )
            await load.stop()
            assert lab.primary_port() == lab.replica.port
            recovered = min(
                a.started + a.seconds
                for a in load.answers
                if a.started > killed_at and a.status in (200, 429)
            )
            answers = load.answers
            statuses = {a.status for a in answers}
            assert statuses <= {200, 429, 503}, statuses
            refusals = [a for a in answers if a.status == 503]
            assert refusals, "the primary was killed under load: some checks must have failed"
            for answer in refusals:
                assert_storage_refusal(answer)
            assert_bounded(answers)
            admitted = len(load.admitted())
            # Every admitted call was counted on the primary of the moment; only what the
            # crash swallowed can differ (one call per connection in flight, each way).
            in_flight = CONCURRENCY
            assert LIMIT - in_flight <= admitted <= LIMIT + in_flight, admitted
            assert counted(lab, prefix) == LIMIT
            outage = recovered - killed_at
            # Detection (down-after) + election + promotion + one breaker cooldown.
            assert outage < lab.down_after_ms / 1000 + 10 + COOLDOWN, outage
            print(
                f"\nsentinel failover (closed): {len(answers)} requests, {len(refusals)} "
                f"answered 503 during {outage:.2f} s without a primary, {admitted} admitted "
                f"for a limit of {LIMIT}, slowest {max(a.seconds for a in answers):.3f} s"
            )
    finally:
        silent.close()
        await silent.wait_closed()


async def test_sentinel_hung_primary_fails_open_without_waiting(
    novasim: tuple[str, str], redis_binary: None, tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    with sentinel_lab(tmp_path / "redis") as lab:
        await clear_of_the_hour_edge()
        started = await start_gateways(
            tmp_path, upstream, new_prefix(), {"storage_url": lab.url(), "storage_failure": "open"}
        )
        gateways.extend(started)
        load = Load(started, f"/v2.1/servers/{server}")
        load.start()
        await load.until(lambda: len(load.admitted()) >= 10, "the first counted reads")
        frozen_at = time.monotonic()
        # A primary that hangs: connections stay open, commands never answer, so only
        # the gateway's own timeouts stand between a request and a hang.
        lab.primary.freeze()
        await load.until(
            lambda: any(
                a.started > frozen_at and "RateLimit-Limit" not in a.headers for a in load.answers
            ),
            "reads pass unlimited while the primary hangs",
        )
        await asyncio.to_thread(lab.wait_for_failover)
        promoted_at = time.monotonic()
        await load.until(
            lambda: (
                {
                    a.gateway
                    for a in load.answers
                    if a.started > promoted_at + COOLDOWN and "RateLimit-Limit" in a.headers
                }
                == {0, 1}
            ),
            "both gateways count on the promoted replica",
        )
        await load.stop()
        answers = load.answers
        assert {a.status for a in answers} <= {200, 429}
        assert_bounded(answers)
        unlimited = [a for a in answers if a.status == 200 and "RateLimit-Limit" not in a.headers]
        for gateway in started:
            assert (
                await gateway.metric(
                    "nova_gateway_rate_limit_decisions_total", outcome="storage_down_open"
                )
                >= 1
            )
        # Counting resumed from what the replica held: no answer counted on the new
        # primary shows the budget of a fresh window.
        before = [a for a in answers if a.started < frozen_at and a.status == 200]
        counting_again = promoted_at + COOLDOWN
        counted_after = (a for a in answers if "RateLimit-Limit" in a.headers)
        after = [a for a in counted_after if a.started > counting_again]
        assert after and all(
            int(a.headers["RateLimit-Remaining"]) <= LIMIT - len(before) for a in after
        )
        print(
            f"\nsentinel hung primary (open): {len(answers)} requests, {len(unlimited)} served "
            f"unlimited, slowest {max(a.seconds for a in answers):.3f} s"
        )


async def test_cluster_shares_limits_and_survives_a_primary(
    novasim: tuple[str, str], redis_binary: None, tmp_path: Path, gateways: list[Gateway]
) -> None:
    upstream, server = novasim
    with cluster_lab(tmp_path / "cluster") as lab:
        prefix = new_prefix()
        await clear_of_the_hour_edge()
        started = await start_gateways(
            tmp_path, upstream, prefix, {"storage_url": lab.url(), "storage_failure": "closed"}
        )
        gateways.extend(started)
        load = Load(started, f"/v2.1/servers/{server}")
        load.start()
        await load.until(lambda: len(load.admitted()) >= LIMIT // 3, "a third of the limit")
        owner = _slot_owner(lab, prefix)
        killed_at = time.monotonic()
        owner.kill()
        await load.until(
            lambda: (
                {a.gateway for a in load.answers if a.started > killed_at and a.status == 429}
                == {0, 1}
            ),
            "both gateways refuse over the limit once a replica took the slot over",
        )
        await load.stop()
        answers = load.answers
        assert {a.status for a in answers} <= {200, 429, 503}
        for answer in (a for a in answers if a.status == 503):
            assert_storage_refusal(answer)
        assert_bounded(answers)
        admitted = len(load.admitted())
        assert LIMIT - CONCURRENCY <= admitted <= LIMIT + CONCURRENCY, admitted
        print(
            f"\ncluster failover (closed): {len(answers)} requests, "
            f"{sum(a.status == 503 for a in answers)} answered 503, {admitted} admitted for "
            f"a limit of {LIMIT}, slowest {max(a.seconds for a in answers):.3f} s"
        )


def _slot_owner(lab: ClusterLab, prefix: str) -> Any:
    """The primary that holds this run's counter key."""
    for node in lab.primaries:
        client = node.client()
        if client.keys(f"{prefix}:*"):
            return node
    raise AssertionError(f"no primary holds a key under {prefix}")
