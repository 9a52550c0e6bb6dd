"""The sliding-window counter: O(1) counting whatever the limit and the number of callers.

Owns the window arithmetic and its two stores, in memory and in Redis (one Lua script per
check, covering every rule the call matches); it must never decide which rules apply, nor
let a refused call consume anything.

Each counter keeps two numbers, the count of the current window of its period and of the
previous one; the previous window is taken to have been spread evenly over it, so at a
fraction ``f`` of the current window the count is ``previous * (1 - f) + current``. A call
of cost ``n`` is admitted when ``limit - count >= n`` for every rule it counts for, and
then adds ``n`` to each current window; otherwise nothing is added anywhere.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from limits import RateLimitItem

# Expired counters removed per counter touched: more than one, so a backlog left by a
# wave of callers that went quiet shrinks while traffic goes on, and a bounded number, so
# no call pays for the whole backlog.
SWEEP_PER_TOUCH = 2

# Counted and Window are named tuples: several of each are made per check, and a frozen
# dataclass sets each field through object.__setattr__ (two rules: 14 µs against 9).


class Counted(NamedTuple):
    """Where one rule stands for one caller after a check."""

    limit: RateLimitItem
    remaining: int  # before this call was counted
    reset_at: float  # epoch seconds: see Window.reset_at


class Window(NamedTuple):
    """A counter as it stands at ``now``: its period, where ``now`` is in it, the counts."""

    period: float
    start: float  # of the current window
    previous: int
    current: int

    def count_at(self, now: float) -> float:
        # The same operations, in the same order, as the Redis script: one decision.
        return self.previous * weight_left(self.period, self.start, now) + self.current

    def available_in(self, limit: int, need: int, now: float) -> float:
        """Seconds from ``now`` until ``need`` units fit under ``limit`` (no new calls)."""
        if limit - self.count_at(now) >= need:
            return 0.0
        if self.previous and limit - self.current >= need:
            # Within this window, as the previous one fades out.
            fade = 1.0 - (limit - self.current - need) / self.previous
            return max(0.0, self.start + self.period * fade - now)
        # In the next window, as this one fades out (need <= limit: rules guarantee it).
        fade = max(0.0, 1.0 - (limit - need) / self.current) if self.current else 0.0
        return self.start + self.period * (1.0 + fade) - now

    def reset_at(self, limit: int, now: float) -> float:
        """What RateLimit-Reset shows an admitted call: when one more unit is free, or
        the window ends (and its count starts to fade), whichever comes first."""
        remaining = math.floor(limit - self.count_at(now))
        frees = self.available_in(limit, min(limit, remaining + 1), now)
        return now + min(frees, self.start + self.period - now)


def window_start(period: float, now: float) -> float:
    return math.floor(now / period) * period


def weight_left(period: float, start: float, now: float) -> float:
    """How much of the previous window still counts at ``now`` (1 - f)."""
    return (start + period - now) / period


def counted(limit: RateLimitItem, window: Window, cost: int, admitted: bool, now: float) -> Counted:
    """The usage a check reports: for an admitted call, RateLimit-Reset after counting
    it; otherwise when ``cost`` (at least one) would fit: a refusal's honest Retry-After,
    which may be up to two periods away (the current window must fade out)."""
    remaining = math.floor(limit.amount - window.count_at(now))
    if admitted:
        after = Window(window.period, window.start, window.previous, window.current + cost)
        return Counted(limit, remaining, after.reset_at(limit.amount, now))
    need = max(1, cost)
    if remaining < need:
        return Counted(limit, remaining, now + window.available_in(limit.amount, need, now))
    return Counted(limit, remaining, window.reset_at(limit.amount, now))


class WindowStore(Protocol):
    """Counts one call against several counters at once: all or nothing."""

    async def check(
        self, keys: Sequence[str], limits: Sequence[RateLimitItem], cost: int, now: float
    ) -> tuple[bool, list[Counted]]:
        """Admit (and count) the call, or refuse it without counting; ``cost`` 0 reads."""
        ...


class MemoryWindows:
    """Counters inside this process: a dict lookup per rule, and expired counters swept a
    few at a time, so neither the limit nor the number of callers changes a check's cost."""

    def __init__(self) -> None:
        # One ordered map per period: touched counters move to the end, so the front is
        # always the least recently touched, i.e. the first to expire.
        self._by_period: dict[float, OrderedDict[str, list[int]]] = {}

    def __len__(self) -> int:
        return sum(len(counters) for counters in self._by_period.values())

    async def check(
        self, keys: Sequence[str], limits: Sequence[RateLimitItem], cost: int, now: float
    ) -> tuple[bool, list[Counted]]:
        return self.check_now(keys, limits, cost, now)

    def check_now(
        self, keys: Sequence[str], limits: Sequence[RateLimitItem], cost: int, now: float
    ) -> tuple[bool, list[Counted]]:
        entries = [self._entry(key, limit, now) for key, limit in zip(keys, limits, strict=True)]
        windows = [window for _, window in entries]
        admitted = cost > 0 and all(
            not limit.amount - window.count_at(now) < cost
            for limit, window in zip(limits, windows, strict=True)
        )
        if admitted:
            for entry, _ in entries:
                entry[2] += cost
        return admitted, [
            counted(limit, window, cost, admitted, now)
            for limit, window in zip(limits, windows, strict=True)
        ]

    def _entry(self, key: str, limit: RateLimitItem, now: float) -> tuple[list[int], Window]:
        period = float(limit.get_expiry())
        start = window_start(period, now)
        index = int(start // period)
        counters = self._by_period.get(period)
        if counters is None:
            counters = self._by_period[period] = OrderedDict()
        self._sweep(counters, index - 1)
        entry = counters.get(key)
        if entry is None:
            entry = counters[key] = [index, 0, 0]  # window index, previous, current
        else:
            counters.move_to_end(key)
            if entry[0] != index:
                entry[1] = entry[2] if entry[0] == index - 1 else 0
                entry[2] = 0
                entry[0] = index
        return entry, Window(period, start, entry[1], entry[2])

    @staticmethod
    def _sweep(counters: OrderedDict[str, list[int]], previous: int) -> None:
        """Drop a few counters whose windows are both over (they count nothing now)."""
        for _ in range(SWEEP_PER_TOUCH):
            if not counters:
                return
            key = next(iter(counters))
            if counters[key][0] >= previous:
                return
            del counters[key]


# KEYS: one hash per counter, all of one caller (one hash tag: one Redis Cluster slot).
# ARGV: the cost, then per counter one string "limit index weight ttl": the limit, the
# window index, the weight left of the previous window (1 - f, as Python wrote it) and
# the hash's time to live in ms (one argument per counter: the client encodes each
# argument apart, and that is most of its work). Fields: w (window index), p and c
# (previous and current counts). Returns [admitted, previous_1, current_1, previous_2,
# ...] as they were before counting.
CHECK_SCRIPT = """
local cost = tonumber(ARGV[1])
local counts = {}
local windows = {}
local admitted = cost > 0
for i, key in ipairs(KEYS) do
  local limit, index, weight, ttl = string.match(ARGV[i + 1], '^(%S+) (%S+) (%S+) (%S+)$')
  limit, index, weight = tonumber(limit), tonumber(index), tonumber(weight)
  windows[i] = {index, ttl}
  local stored = redis.call('HMGET', key, 'w', 'p', 'c')
  local previous, current = 0, 0
  local at = tonumber(stored[1])
  if at == index then
    previous, current = tonumber(stored[2]), tonumber(stored[3])
  elseif at == index - 1 then
    previous = tonumber(stored[3])
  end
  counts[2 * i - 1] = previous
  counts[2 * i] = current
  if limit - (previous * weight + current) < cost then
    admitted = false
  end
end
if admitted then
  for i, key in ipairs(KEYS) do
    redis.call('HSET', key, 'w', windows[i][1], 'p', counts[2 * i - 1],
      'c', counts[2 * i] + cost)
    redis.call('PEXPIRE', key, windows[i][2])
  end
end
table.insert(counts, 1, admitted and 1 or 0)
return counts
"""


class ScriptRunner(Protocol):
    """Runs CHECK_SCRIPT in Redis: the pipe (gateway.ratelimit.pipe) or redis-py's Script."""

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any: ...


def redis_py_runner(client: Any) -> ScriptRunner:
    """CHECK_SCRIPT through a redis-py client (Sentinel's primary, a cluster): its Script
    runs EVALSHA and loads the script again after a Redis restart."""
    script = client.register_script(CHECK_SCRIPT)

    async def run(keys: Sequence[str], args: Sequence[str | int]) -> Any:
        return await script(keys=list(keys), args=list(args))

    return run


class RedisWindows:
    """Counters in Redis shared by every worker and replica: one script call per check,
    whatever the number of rules, so a check costs one round trip."""

    def __init__(self, run_script: ScriptRunner) -> None:
        self._run_script = run_script

    async def check(
        self, keys: Sequence[str], limits: Sequence[RateLimitItem], cost: int, now: float
    ) -> tuple[bool, list[Counted]]:
        arguments: list[str | int] = [cost]
        windows: list[tuple[float, float]] = []
        for limit in limits:
            period = float(limit.get_expiry())
            start = window_start(period, now)
            windows.append((period, start))
            index, weight = int(start // period), weight_left(period, start, now)
            arguments.append(f"{limit.amount} {index} {weight!r} {int(2000 * period)}")
        answer = await self._run_script(keys, arguments)
        admitted = bool(int(answer[0]))
        return admitted, [
            counted(
                limit,
                Window(period, start, int(answer[1 + 2 * i]), int(answer[2 + 2 * i])),
                cost,
                admitted,
                now,
            )
            for i, (limit, (period, start)) in enumerate(zip(limits, windows, strict=True))
        ]
