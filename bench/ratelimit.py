"""Rate-limit check cost against the limit and the number of active projects (bench.micro).

Owns the scaling rows: ``RateLimiter.check()`` on a captured ``lock`` Call at limits of 10
and 100 000 per minute, with 10 and 100 000 projects taking turns (every one of them
counted once before timing), in memory and in Redis; it must never touch a Redis key
outside its own prefix, and deletes those when done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

LIMITS = (10, 100_000)
PROJECTS = (10, 100_000)
PERIOD = 60.0
WARM_BATCH = 20  # Redis: counted concurrently (within the client's pool), batch by batch


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


async def scaling_rows(
    ratelimit: Any,
    call: Any,
    policy: Any,
    storages: Sequence[tuple[str, str]],
    measure: Callable[[Callable[[], Any], str, str], Any],
    prefix: str,
) -> tuple[list[Any], list[str]]:
    """One measure per (storage, limit, projects); notes for what could not run."""
    rows, notes = [], []
    base = call.credentials
    callers = [dataclasses.replace(base, project_id=f"p{i:06d}") for i in range(max(PROJECTS))]
    for (label, url), limit, projects in itertools.product(storages, LIMITS, PROJECTS):
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
        clock = Clock(step_for(limit, projects))
        limiter = ratelimit.RateLimiter(
            ratelimit.parse_rules(rules),
            policy,
            storage_url=url,
            key_prefix=f"{prefix}_{limit}_{projects}",
            timeout=2.0,
            clock=clock,
        )
        who = callers[:projects]
        turn = itertools.count()
        try:
            await limiter.start()
            # Every project active before timing (in Redis: a batch at a time).
            for start in range(0, projects, WARM_BATCH):
                batch = [_copy(call, caller) for caller in who[start : start + WARM_BATCH]]
                if limiter.shared:
                    await asyncio.gather(*(limiter.check(c) for c in batch))
                else:
                    for c in batch:
                        await limiter.check(c)
                clock.now += clock.step * len(batch)

            async def check(
                limiter: Any = limiter,
                who: list[Any] = who,
                clock: Clock = clock,
                turn: Iterator[int] = turn,
            ) -> None:
                call.credentials = who[next(turn) % len(who)]
                clock.now += clock.step
                await limiter.check(call)
                call.answer_headers.clear()
                if call.rate_limit != "allowed":
                    raise RuntimeError(f"not admitted: {call.rate_limit}")

            name = f"check(), {label}, {limit:,} per minute, {projects:,} projects"
            rows.append(await measure(check, name, _note(limiter)))
        except Exception as exc:
            notes.append(
                f"* {label}, {limit}/minute, {projects} projects: {type(exc).__name__}: {exc}"
            )
        finally:
            await limiter.close()
            await _forget(url, f"{prefix}_{limit}_{projects}")
    call.credentials = base
    return rows, notes


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
