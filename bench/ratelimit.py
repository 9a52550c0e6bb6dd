"""Rate-limit check cost against the limit and the number of active projects (bench.micro).

Owns the scaling rows: ``RateLimiter.check()`` on a captured ``lock`` Call at limits of 10
and 100 000 per minute, with 10 and 100 000 projects taking turns (every one of them
counted once before timing), in memory and in Redis; it must never touch a Redis key
outside its own prefix, and deletes those when done.

A storage's four cells are timed interleaved: every repeat times each cell once, in an
order rotated per repeat, so that a burst of another tenant's load falls on all four
rather than on the one being timed (the cells are compared with each other: ±15 %).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stats import rotated

LIMITS = (10, 100_000)
PROJECTS = (10, 100_000)
PERIOD = 60.0
WARM_BATCH = 20  # Redis: counted concurrently (within the client's pool), batch by batch
WARM_CALLS = 50  # timed calls' paths warmed before the first repeat

Check = Callable[[], Awaitable[None]]
TimeOnce = Callable[[Check], Awaitable[tuple[float, float]]]  # (CPU, wall) µs per call
Finish = Callable[[str, str, list[float], list[float]], Any]  # name, note, CPU, wall -> row


class Clock:
    """Time as the limiter sees it: moves on by ``step`` each call, so that every project
    stays under its limit (a refusal takes another path; admitted calls are measured)."""

    def __init__(self, step: float) -> None:
        self.now = 1_800_000_000.0
        self.step = step

    def __call__(self) -> float:
        return self.now


def step_for(limit: int, projects: int) -> float:
    # Each project gets one call in `projects`: at half its limit per period.
    return PERIOD / (0.5 * limit * projects)


@dataclass
class Cell:
    """One (storage, limit, projects) limiter, warm, and what its repeats measured."""

    name: str
    limiter: Any
    prefix: str
    check: Check
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


async def scaling_rows(
    ratelimit: Any,
    call: Any,
    policy: Any,
    storages: Sequence[tuple[str, str]],
    time_once: TimeOnce,
    finish: Finish,
    prefix: str,
    repeat: int,
) -> tuple[list[Any], list[str]]:
    """One row per (storage, limit, projects), a storage's cells timed interleaved; notes
    for what could not run."""
    rows: list[Any] = []
    notes: list[str] = []
    base = call.credentials
    callers = [dataclasses.replace(base, project_id=f"p{i:06d}") for i in range(max(PROJECTS))]
    for label, url in storages:
        cells: list[Cell] = []
        try:
            for limit, projects in itertools.product(LIMITS, PROJECTS):
                name = f"check(), {label}, {limit:,} per minute, {projects:,} projects"
                cell_prefix = f"{prefix}_{limit}_{projects}"
                try:
                    cells.append(
                        await _cell(
                            ratelimit,
                            call,
                            policy,
                            url,
                            cell_prefix,
                            name,
                            limit,
                            callers[:projects],
                        )
                    )
                except Exception as exc:
                    notes.append(f"* {name}: {type(exc).__name__}: {exc}")
            for cell in cells:
                for _ in range(WARM_CALLS):
                    await cell.check()
            for turn in range(repeat):
                for cell in rotated(cells, turn):
                    cpu, wall = await time_once(cell.check)
                    cell.cpu.append(cpu)
                    cell.wall.append(wall)
            rows += [finish(cell.name, _note(cell.limiter), cell.cpu, cell.wall) for cell in cells]
        except Exception as exc:
            notes.append(f"* {label}: {type(exc).__name__}: {exc} (its cells not reported)")
        finally:
            for cell in cells:
                await cell.limiter.close()
                await _forget(url, cell.prefix)
    call.credentials = base
    return rows, notes


async def _cell(
    ratelimit: Any,
    call: Any,
    policy: Any,
    url: str,
    prefix: str,
    name: str,
    limit: int,
    who: list[Any],
) -> Cell:
    """A started limiter with one rule at ``limit``, every project in ``who`` counted once."""
    rules = {
        "rules": [
            {
                "name": "server-actions",
                "limit": f"{limit} per minute",
                "methods": ["POST"],
                "path": "/servers/*/action",
            }
        ]
    }
    clock = Clock(step_for(limit, len(who)))
    limiter = ratelimit.RateLimiter(
        ratelimit.parse_rules(rules),
        policy,
        storage_url=url,
        key_prefix=prefix,
        timeout=2.0,
        clock=clock,
    )
    await limiter.start()
    try:
        # Every project active before timing (in Redis: a batch at a time).
        for start in range(0, len(who), WARM_BATCH):
            batch = [_copy(call, caller) for caller in who[start : start + WARM_BATCH]]
            if limiter.shared:
                await asyncio.gather(*(limiter.check(c) for c in batch))
            else:
                for c in batch:
                    await limiter.check(c)
            clock.now += clock.step * len(batch)
    except BaseException:
        await limiter.close()
        await _forget(url, prefix)
        raise
    turn = itertools.count()

    async def check() -> None:
        call.credentials = who[next(turn) % len(who)]
        clock.now += clock.step
        await limiter.check(call)
        call.answer_headers.clear()
        if call.rate_limit != "allowed":
            raise RuntimeError(f"not admitted: {call.rate_limit}")

    return Cell(name, limiter, prefix, check)


def _copy(call: Any, credentials: Any) -> Any:
    copy = dataclasses.replace(call, answer_headers=[])
    copy.credentials = credentials
    return copy


def _note(limiter: Any) -> str:
    errors = limiter.storage_errors
    return f"{errors} STORAGE ERRORS: not valid" if errors else ""


async def _forget(url: str, prefix: str) -> None:
    if url.startswith("memory"):
        return
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=6379)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
    finally:
        await client.aclose()
