"""The sliding-window counter: its arithmetic against hand-computed values, all-or-nothing
counting, exact limits, and a memory store that forgets callers who went quiet."""

from __future__ import annotations

import math

import pytest
from limits import parse

from gateway.ratelimit.windows import MemoryWindows, Window, window_start

MINUTE = 60.0
EDGE = 29_000_000 * MINUTE  # a minute boundary, as epoch seconds


def test_count_weighs_the_previous_window_by_what_is_left_of_it() -> None:
    window = Window(MINUTE, EDGE, previous=30, current=5)
    assert window.count_at(EDGE) == 35  # the whole previous window still counts
    assert window.count_at(EDGE + 15) == pytest.approx(30 * 0.75 + 5)
    assert window.count_at(EDGE + 45) == pytest.approx(30 * 0.25 + 5)
    assert window.count_at(EDGE + MINUTE) == 5


def test_available_in_within_the_window_and_in_the_next() -> None:
    # 10 per minute, 8 before and 4 now: 12 at the start; room for one once the previous
    # window has faded to 5 (3/8 of it gone: 22.5 s in).
    window = Window(MINUTE, EDGE, previous=8, current=4)
    assert window.available_in(10, 1, EDGE) == pytest.approx(22.5)
    # Room for 6 = 10 - 4 once the previous window is wholly gone: at the window's end.
    assert window.available_in(10, 6, EDGE) == pytest.approx(60.0)
    # Room for 7 needs part of the current 4 to fade in the next window: 1 - 3/4 of it.
    assert window.available_in(10, 7, EDGE) == pytest.approx(60.0 + 15.0)
    assert window.available_in(20, 1, EDGE) == 0.0


def test_window_start_is_the_period_boundary() -> None:
    assert window_start(MINUTE, EDGE + 59.9) == EDGE
    assert window_start(MINUTE, EDGE + 60.0) == EDGE + MINUTE
    assert window_start(3600.0, EDGE + 10) == math.floor((EDGE + 10) / 3600) * 3600


@pytest.mark.parametrize("limit", [1, 3, 10, 100_000])
async def test_exactly_the_limit_is_admitted(limit: int) -> None:
    store = MemoryWindows()
    item = parse(f"{limit}/minute")
    admitted = [(await store.check(["k"], [item], 1, EDGE + 1))[0] for _ in range(limit + 3)]
    assert admitted == [True] * limit + [False] * 3


async def test_a_refused_call_counts_nowhere() -> None:
    store = MemoryWindows()
    tight, loose = parse("2/minute"), parse("100/minute")
    for _ in range(2):
        ok, _ = await store.check(["tight", "loose"], [tight, loose], 1, EDGE + 1)
        assert ok
    for _ in range(5):
        ok, states = await store.check(["tight", "loose"], [tight, loose], 1, EDGE + 1)
        assert not ok
        assert [state.remaining for state in states] == [0, 98]  # "loose" untouched
    ok, states = await store.check(["loose"], [loose], 1, EDGE + 1)
    assert ok and states[0].remaining == 98


async def test_a_cost_is_taken_whole_or_not_at_all() -> None:
    store = MemoryWindows()
    item = parse("10/minute")
    assert (await store.check(["k"], [item], 6, EDGE + 1))[0]
    ok, states = await store.check(["k"], [item], 5, EDGE + 1)
    assert not ok and states[0].remaining == 4
    assert (await store.check(["k"], [item], 4, EDGE + 1))[0]
    assert not (await store.check(["k"], [item], 1, EDGE + 1))[0]


async def test_reading_counts_nothing() -> None:
    store = MemoryWindows()
    item = parse("3/minute")
    for _ in range(5):
        ok, states = await store.check(["k"], [item], 0, EDGE + 1)
        assert not ok and states[0].remaining == 3
    assert (await store.check(["k"], [item], 3, EDGE + 1))[0]


async def test_across_a_window_edge_the_previous_count_fades() -> None:
    store = MemoryWindows()
    item = parse("10/minute")
    assert (await store.check(["k"], [item], 10, EDGE - 1))[0]
    # 1 s into the next minute, 59/60 of the ten still count: no room.
    ok, states = await store.check(["k"], [item], 1, EDGE + 1)
    assert not ok
    # The refusal says when one fits: once a tenth has faded, 6 s into the minute.
    assert states[0].reset_at == pytest.approx(EDGE + 6)
    assert not (await store.check(["k"], [item], 1, EDGE + 5.9))[0]
    assert (await store.check(["k"], [item], 1, EDGE + 6.0))[0]
    # Two minutes later nothing of either window is left.
    ok, states = await store.check(["k"], [item], 1, EDGE + 2 * MINUTE + 1)
    assert ok and states[0].remaining == 10


async def test_admitted_reset_is_within_the_period() -> None:
    store = MemoryWindows()
    item = parse("3/minute")
    ok, states = await store.check(["k"], [item], 1, EDGE + 10)
    assert ok
    # Nothing frees before this window ends (then its count starts to fade).
    assert states[0].reset_at == pytest.approx(EDGE + MINUTE)


async def test_quiet_callers_are_forgotten_a_few_per_check() -> None:
    store = MemoryWindows()
    item = parse("5/minute")
    callers = 10_000
    for project in range(callers):
        await store.check([f"p{project}"], [item], 1, EDGE + 1)
    assert len(store) == callers
    # Two periods later every one of those counters is over: each check of the one
    # caller still active removes a bounded few (2) of them, never all at once.
    later = EDGE + 2 * MINUTE + 1
    await store.check(["active"], [item], 1, later)
    assert len(store) == callers + 1 - 2
    for _ in range(callers // 2):
        await store.check(["active"], [item], 0, later)
    assert len(store) == 1


async def test_counters_still_counting_are_kept() -> None:
    store = MemoryWindows()
    item = parse("5/minute")
    await store.check(["old"], [item], 5, EDGE + 1)
    for _ in range(10):  # the next minute: "old" is the previous window, it still counts
        await store.check(["new"], [item], 0, EDGE + MINUTE + 1)
    assert len(store) == 2
    ok, states = await store.check(["old"], [item], 1, EDGE + MINUTE + 1)
    assert not ok and states[0].remaining == 0
