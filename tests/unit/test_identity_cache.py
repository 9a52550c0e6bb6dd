"""The identity cache: per-entry deadlines, least-recently-used eviction, hashed keys."""

from __future__ import annotations

import hashlib

from gateway.identity.cache import ExpiringCache, token_key


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_ends_at_its_own_deadline() -> None:
    clock = Clock()
    cache: ExpiringCache[str] = ExpiringCache(4, clock)
    cache.put(b"short", "S", 5)
    cache.put(b"long", "L", 50)
    cache.put(b"zero", "Z", 0)  # nothing to keep
    cache.put(b"negative", "N", -1)
    assert cache.get(b"zero") is None and cache.get(b"negative") is None
    clock.now = 104.99
    assert (cache.get(b"short"), cache.get(b"long")) == ("S", "L")
    clock.now = 105.0
    assert cache.get(b"short") is None
    assert cache.get(b"long") == "L"
    assert len(cache) == 1
    clock.now = 150.0
    assert cache.get(b"long") is None
    assert len(cache) == 0


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    clock = Clock()
    cache: ExpiringCache[int] = ExpiringCache(2, clock)
    cache.put(b"a", 1, 60)
    cache.put(b"b", 2, 60)
    assert cache.get(b"a") == 1  # a is now the most recently used
    cache.put(b"c", 3, 60)
    assert len(cache) == 2
    assert cache.get(b"b") is None
    assert (cache.get(b"a"), cache.get(b"c")) == (1, 3)


def test_discard_and_clear() -> None:
    cache: ExpiringCache[int] = ExpiringCache(3, Clock())
    cache.put(b"a", 1, 60)
    cache.put(b"b", 2, 60)
    cache.discard(b"a")
    cache.discard(b"never")
    assert cache.get(b"a") is None and cache.get(b"b") == 2
    cache.clear()
    assert len(cache) == 0


def test_the_key_is_the_sha256_of_the_token_never_the_token() -> None:
    token = "gAAAAB-some-token"
    assert token_key(token) == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in token_key(token)
