"""The feed's pure parts: transport URLs, queue names, and its liveness rule."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.notifications.feed import (
    FeedConfigError,
    FeedSettings,
    NotificationFeed,
    broker_urls,
    queue_name,
)
from tests.support.waiting import wait_until


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rabbit://guest:guest@127.0.0.1:5672/", ["amqp://guest:guest@127.0.0.1:5672/%2F"]),
        ("rabbit://u:p@h1:5672,u:p@h2:5673/vh", ["amqp://u:p@h1:5672/vh", "amqp://u:p@h2:5673/vh"]),
        ("amqps://u:p%40ss@rabbit/", ["amqps://u:p%40ss@rabbit/%2F"]),
        ("rabbit://[::1]:5672/", ["amqp://[::1]:5672/%2F"]),
    ],
)
def test_oslo_transport_urls_become_kombu_urls(url: str, expected: list[str]) -> None:
    assert broker_urls(url) == expected


@pytest.mark.parametrize("url", ["kafka://h:9092/", "rabbit://u:secret@/", "http://h/"])
def test_unusable_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(FeedConfigError) as refused:
        broker_urls(url)
    assert "secret" not in str(refused.value)


def test_every_worker_gets_its_own_queue_never_novas() -> None:
    names = {queue_name("nova-gateway-facts") for _ in range(50)}
    assert len(names) == 50
    assert all(name.startswith("nova-gateway-facts.") for name in names)
    assert "versioned_notifications.info" not in names


def test_the_feed_is_live_only_connected_and_with_a_recent_heartbeat() -> None:
    feed = NotificationFeed(FeedSettings("rabbit://h/", "nova", ("versioned",), "q", 0.5))
    now = time.monotonic()
    assert feed.live_epoch(2.0, now) is None  # never connected
    feed.connected, feed.epoch = True, 3
    assert feed.live_epoch(2.0, now) is None  # connected, but no heartbeat proved the path
    feed.last_heartbeat = now - 1.0
    assert feed.live_epoch(2.0, now) == 3
    assert feed.live_epoch(0.5, now) is None  # lagging past the bound
    feed.connected = False
    assert feed.live_epoch(2.0, now) is None


async def test_the_loop_is_woken_once_per_batch_and_everything_keeps_its_order() -> None:
    """A busy Nova sends bursts: the feed's thread wakes the event loop once for all it
    has handed since the loop last took, and a reconnection between two messages still
    separates them (the new epoch's messages are kept, the old one's dropped)."""
    feed = NotificationFeed(FeedSettings("rabbit://h/", "nova", ("versioned",), "q", 0.5))
    loop = asyncio.get_running_loop()
    wakeups = 0

    class CountingLoop:
        def call_soon_threadsafe(self, callback: Any, *args: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return loop.call_soon_threadsafe(callback, *args)

    feed._loop = CountingLoop()  # type: ignore[assignment]
    feed._post(feed._on_connected, 1, "q.1")
    for _ in range(50):
        feed._hand(1, None)  # an event the gateway does not use: counted as ignored
    feed._post(feed._on_connected, 2, "q.2")
    for _ in range(50):
        feed._hand(2, None)
    feed._hand(1, None)  # the old connection's, arriving after the new one began
    assert wakeups == 1  # the loop did not run in between: one batch
    await wait_until(lambda: feed._taken == 101, what="the batch taken")
    assert (feed.epoch, feed.counters.connects, feed.counters.ignored) == (2, 2, 100)
    feed._hand(2, None)
    assert wakeups == 2  # taken: the next message wakes the loop again
    await wait_until(lambda: feed._taken == 102, what="the next message")
