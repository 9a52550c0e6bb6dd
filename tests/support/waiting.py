"""Waiting on a condition, bounded: what the tests use instead of a fixed sleep.

Owns the one polling helper of the suites (async and blocking forms); it must never
wait without a deadline, nor pass when the condition did not hold.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

POLL_INTERVAL = 0.005
T = TypeVar("T")


async def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> float:
    """Seconds it took for ``predicate()`` to hold; AssertionError past ``timeout``."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout} s waiting for {what or predicate}"
        )
        await asyncio.sleep(POLL_INTERVAL)
    return time.monotonic() - started


def wait_until_blocking(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> float:
    """``wait_until`` for code that is not on an event loop (threads, subprocess tests)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout} s waiting for {what or predicate}"
        )
        time.sleep(POLL_INTERVAL)
    return time.monotonic() - started


async def wait_for_value(
    fetch: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout: float = 10.0,
    what: str = "",
) -> T:
    """The first value ``fetch()`` gives that ``accept`` takes (an API polled until a
    state settles); AssertionError, with the last value, past ``timeout``."""
    started = time.monotonic()
    while not accept(value := await fetch()):
        assert time.monotonic() - started < timeout, (
            f"timed out after {timeout} s waiting for {what}; last: {value!r}"
        )
        await asyncio.sleep(POLL_INTERVAL)
    return value
