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


class _Deadline:
    def __init__(self, timeout: float, what: object) -> None:
        self.started = time.monotonic()
        self.timeout = timeout
        self.what = what

    def check(self, last: object = None) -> None:
        """AssertionError once the time is up, naming what was awaited (and what was seen)."""
        seen = "" if last is None else f"; last: {last!r}"
        assert time.monotonic() - self.started < self.timeout, (
            f"timed out after {self.timeout} s waiting for {self.what}{seen}"
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


async def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> float:
    """Seconds it took for ``predicate()`` to hold; AssertionError past ``timeout``."""
    deadline = _Deadline(timeout, what or predicate)
    while not predicate():
        deadline.check()
        await asyncio.sleep(POLL_INTERVAL)
    return deadline.elapsed


def wait_until_blocking(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> float:
    """``wait_until`` for code that is not on an event loop (threads, subprocess tests)."""
    deadline = _Deadline(timeout, what or predicate)
    while not predicate():
        deadline.check()
        time.sleep(POLL_INTERVAL)
    return deadline.elapsed


async def wait_for_value(
    fetch: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    timeout: float = 10.0,
    what: str = "",
) -> T:
    """The first value ``fetch()`` gives that ``accept`` takes (an API polled until a
    state settles); AssertionError, with the last value, past ``timeout``."""
    deadline = _Deadline(timeout, what or fetch)
    while not accept(value := await fetch()):
        deadline.check(value)
        await asyncio.sleep(POLL_INTERVAL)
    return value
