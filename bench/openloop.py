"""A fixed-rate (open-loop) load generator: requests leave on a schedule, not on answers.

Owns the schedule and the latency record (measured from each request's planned send
time, so a stalled server is not hidden); it must never send to anything but loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence

import aiohttp

from bench.procs import LOOPBACK
from bench.scenarios import SCENARIOS, Scenario
from bench.stats import percentile

MAX_IN_FLIGHT = 2000  # beyond this the server has fallen far behind: stop sending more


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    scenario: Scenario,
    planned: float,
    latencies: list[float],
    statuses: dict[str, int],
) -> None:
    try:
        async with session.request(
            scenario.method, url, data=scenario.body or None, headers=scenario.headers()
        ) as response:
            await response.read()
            key = str(response.status)
    except (TimeoutError, aiohttp.ClientError) as exc:
        key = type(exc).__name__
    latencies.append(time.perf_counter() - planned)
    statuses[key] = statuses.get(key, 0) + 1


async def generate(
    port: int,
    scenario: Scenario,
    server_ids: Sequence[str],
    rate: float,
    seconds: float,
    connections: int,
) -> dict[str, object]:
    total = max(1, int(rate * seconds))
    interval = 1.0 / rate
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    skipped = 0
    urls = [f"http://{LOOPBACK}:{port}{scenario.path(server_id)}" for server_id in server_ids]
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        # Open the pool's connections first so the schedule does not pay for connects.
        await asyncio.gather(
            *(
                _one(session, urls[i % len(urls)], scenario, time.perf_counter(), [], {})
                for i in range(connections)
            )
        )
        start = time.perf_counter() + 0.05
        for index in range(total):
            planned = start + index * interval
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= MAX_IN_FLIGHT:
                skipped += 1
                continue
            task = asyncio.create_task(
                _one(session, urls[index % len(urls)], scenario, planned, latencies, statuses)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        elapsed = time.perf_counter() - start
    ordered = sorted(latencies)
    return {
        "planned": total,
        "sent": total - skipped,
        "completed": len(latencies),
        "elapsed_s": elapsed,
        "achieved_rate": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "statuses": statuses,
        "p50_ms": percentile(ordered, 50) * 1000,
        "p90_ms": percentile(ordered, 90) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": (ordered[-1] if ordered else 0.0) * 1000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.openloop", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="lock")
    parser.add_argument("--server", action="append", required=True, help="server id (repeatable)")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.connections <= 0:
        parser.error("rate, seconds and connections must be positive")
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(
        generate(
            args.port,
            SCENARIOS[args.scenario],
            args.server,
            args.rate,
            args.seconds,
            args.connections,
        )
    )
    print("OPENLOOPJSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
