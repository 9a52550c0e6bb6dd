"""The server-facts metrics: what a finished call moves, and what the sampler reads from the
store and its notification feed."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.call import Call
from gateway.metrics import GatewayMetrics, MetricsObserver
from gateway.notifications.feed import FeedSettings, NotificationFeed
from gateway.servers.facts import Grade
from gateway.servers.store import FactsStore, StoreSettings


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    text = generate_latest(metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def gate_with(store: FactsStore) -> Any:
    return SimpleNamespace(
        policy=SimpleNamespace(reloads=0, reload_failures=0, last_reload_ok=True),
        servers=store,
        identity=SimpleNamespace(),
        rate_limiter=None,
        audit=None,
    )


def test_a_call_counts_its_reads_grade_and_confirmation() -> None:
    metrics = GatewayMetrics()
    store = FactsStore(cast(Any, None), StoreSettings(10, 2.0, 0.05, 2.0))
    observer = MetricsObserver(gate_with(store), 1.0, metrics)
    call = Call("req-1", "POST", "/v2.1/servers/x/action", [], "127.0.0.1", "http", "gw")
    call.decision, call.status = "allow", 202
    call.server_reads = ["confirm"]
    call.facts_grade = Grade.FRESH
    call.refusal_confirmation = "overturned"
    observer.observe(call)
    assert value(metrics, "nova_gateway_server_reads_total", reason="confirm") == 1
    assert value(metrics, "nova_gateway_server_facts_decisions_total", grade="fresh") == 1
    assert value(metrics, "nova_gateway_refusal_confirmations_total", outcome="overturned") == 1


def test_the_sampler_reads_the_feed() -> None:
    metrics = GatewayMetrics()
    feed = NotificationFeed(FeedSettings("rabbit://h/", "nova", ("versioned",), "q", 0.5))
    store = FactsStore(cast(Any, None), StoreSettings(10, 2.0, 0.05, 2.0), feed)
    observer = MetricsObserver(gate_with(store), 1.0, metrics)
    observer.sample()
    assert value(metrics, "nova_gateway_server_facts_degraded") == 1  # never connected
    assert value(metrics, "nova_gateway_notification_heartbeat_age_seconds") == float("inf")
    feed.connected, feed.epoch, feed.last_heartbeat = True, 1, time.monotonic()
    feed.counters.instance_events, feed.counters.heartbeats = 3, 5
    feed.counters.delays.extend([0.004, 0.2])
    observer.sample()
    assert value(metrics, "nova_gateway_server_facts_degraded") == 0
    assert value(metrics, "nova_gateway_notification_heartbeat_age_seconds") < 1
    assert value(metrics, "nova_gateway_notifications_total", kind="instance") == 3
    assert value(metrics, "nova_gateway_notifications_total", kind="heartbeat") == 5
    assert value(metrics, "nova_gateway_notification_delay_seconds_count") == 2
    assert not feed.counters.delays  # taken once
