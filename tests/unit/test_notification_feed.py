"""The feed's pure parts: transport URLs, queue names, and its liveness rule."""

from __future__ import annotations

import time

import pytest

from gateway.notifications.feed import (
    FeedConfigError,
    FeedSettings,
    NotificationFeed,
    broker_urls,
    queue_name,
)


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
