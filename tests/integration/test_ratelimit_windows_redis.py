"""The sliding-window counter in a real Redis: the same decisions as in memory, one round
trip per check whatever the number of rules, and one limit shared exactly by processes;
through the gateway's pipe (one Redis) and through redis-py (Sentinel, a cluster) alike."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from limits import parse

from gateway.ratelimit.pipe import Address, PipedScript, RedisPipe
from gateway.ratelimit.windows import CHECK_SCRIPT, MemoryWindows, RedisWindows, redis_py_runner
from tests.conftest import skip_or_fail
from tests.integration.test_ratelimit_redis import REDIS_HOST, REDIS_PORT, redis_reachable

MINUTE = 60.0
EDGE = 29_000_000 * MINUTE


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    if not redis_reachable():
        skip_or_fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (the rate-limit tests need one)")
    import redis.asyncio

    client = redis.asyncio.Redis(host=REDIS_HOST, port=REDIS_PORT)
    prefix = f"nova-gateway-test-{uuid.uuid4().hex}"
    client.test_prefix = prefix  # type: ignore[attr-defined]
    yield client
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(params=["pipe", "redis-py"])
async def shared(request: pytest.FixtureRequest, client: Any) -> AsyncIterator[RedisWindows]:
    """Counters in Redis, through the pipe or through redis-py's Script."""
    if request.param == "redis-py":
        yield RedisWindows(redis_py_runner(client))
        return
    pipe = RedisPipe(Address(REDIS_HOST, REDIS_PORT), 2.0)
    yield RedisWindows(PipedScript(pipe, CHECK_SCRIPT))
    await pipe.close()


async def test_redis_decides_as_memory_does(client: Any, shared: RedisWindows) -> None:
    """A seeded walk through time (window edges included), costs 1-3 and three rules of
    different periods: every decision and every number the same in both stores."""
    prefix = client.test_prefix
    memory = MemoryWindows()
    limits = [parse("7/minute"), parse("20/hour"), parse("3 per 10 seconds")]
    keys = [f"{prefix}:{{p}}:{name}" for name in ("minute", "hour", "ten")]
    walk = random.Random(20261206)
    now = EDGE - 30
    admitted_count = 0
    for step in range(300):
        now += walk.choice([0.0, 0.5, 1.7, 4.0, 9.9, 30.0])
        cost = walk.choice([0, 1, 1, 1, 2, 3])
        picked = sorted(walk.sample(range(3), walk.randint(1, 3)))
        these = [keys[i] for i in picked]
        items = [limits[i] for i in picked]
        expected = await memory.check(these, items, cost, now)
        seen = await shared.check(these, items, cost, now)
        assert seen == expected, (step, now, cost, picked)
        admitted_count += expected[0]
    assert 20 < admitted_count < 250  # the walk exercised both answers


async def test_one_round_trip_for_every_rule(client: Any) -> None:
    """Counted by a second connection's MONITOR: what reached Redis, whatever the client."""
    prefix = client.test_prefix
    pipe = RedisPipe(Address(REDIS_HOST, REDIS_PORT), 2.0)
    items = [parse("10/minute"), parse("100/hour"), parse("1000/day")]
    keys = [f"{prefix}:{{p1}}:{name}" for name in ("a", "b", "c")]
    shared = RedisWindows(PipedScript(pipe, CHECK_SCRIPT))
    await shared.check(keys, items, 1, time.time())  # connected, script loaded
    async with client.monitor() as monitor:
        seen: list[str] = []

        async def watch() -> None:
            async for command in monitor.listen():
                # Not the script's own commands (client "lua"): what the client sent.
                if prefix in command["command"] and command.get("client_type") != "lua":
                    seen.append(command["command"].split()[0])

        watcher = asyncio.create_task(watch())
        try:
            for _ in range(5):
                ok, _ = await shared.check(keys, items, 1, time.time())
                assert ok
            deadline = time.monotonic() + 5
            while len(seen) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await shared.check(keys[:1], items[:1], 0, time.time())  # a marker, then stop
            while len(seen) < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            watcher.cancel()
    await pipe.close()
    assert seen == ["EVALSHA"] * 6, seen  # one command per check, whatever the rules


async def test_one_round_trip_for_every_rule_through_redis_py(client: Any) -> None:
    prefix = client.test_prefix
    shared = RedisWindows(redis_py_runner(client))
    sent: list[str] = []
    execute = client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await execute(*args, **options)

    client.execute_command = counting
    items = [parse("10/minute"), parse("100/hour"), parse("1000/day")]
    keys = [f"{prefix}:{{p1}}:{name}" for name in ("a", "b", "c")]
    await shared.check(keys, items, 1, time.time())  # loads the script (NOSCRIPT first)
    sent.clear()
    for _ in range(5):
        ok, _ = await shared.check(keys, items, 1, time.time())
        assert ok
    assert sent == ["EVALSHA"] * 5


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import redis.asyncio
    from limits import parse
    from gateway.ratelimit.pipe import Address, PipedScript, RedisPipe
    from gateway.ratelimit.windows import CHECK_SCRIPT, RedisWindows, redis_py_runner

    async def main(key, start_at, calls):
        # One process counts through the pipe, the other through redis-py: one limit.
        client = redis.asyncio.Redis(host=sys.argv[4], port=int(sys.argv[5]))
        if sys.argv[6] == "pipe":
            pipe = RedisPipe(Address(sys.argv[4], int(sys.argv[5])), 2.0)
            windows = RedisWindows(PipedScript(pipe, CHECK_SCRIPT))
        else:
            windows = RedisWindows(redis_py_runner(client))
        item = parse("50/minute")
        await windows.check([key], [item], 0, time.time())  # connected, script loaded
        while time.time() < start_at:
            await asyncio.sleep(0.001)
        admitted = 0
        for _ in range(calls):
            ok, _ = await windows.check([key], [item], 1, time.time())
            admitted += ok
        await client.aclose()
        print(json.dumps(admitted))

    asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
    """
)


async def test_two_processes_share_one_limit_exactly(client: Any) -> None:
    key = f"{client.test_prefix}:{{p1}}:shared"
    # Both start at the same instant, well inside one minute (no window edge mid-run).
    start_at = time.time() + 2.0
    if int(start_at // MINUTE) != int((start_at + 20) // MINUTE):
        start_at = (start_at // MINUTE + 1) * MINUTE + 0.5
    argv = [sys.executable, "-c", WORKER, key, repr(start_at), "60", REDIS_HOST, str(REDIS_PORT)]
    workers = [
        await asyncio.to_thread(
            subprocess.Popen, [*argv, client_kind], stdout=subprocess.PIPE, text=True
        )
        for client_kind in ("pipe", "redis-py")
    ]
    outputs = [await asyncio.to_thread(worker.communicate, timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    admitted = [json.loads(out) for out, _ in outputs]
    assert sum(admitted) == 50, admitted  # 120 tries, 50 admitted: not one more
