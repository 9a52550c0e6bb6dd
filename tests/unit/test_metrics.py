"""Metrics: what each finished call moves, the sampled counters, the audit helpers, and
the alert rules and dashboard naming only metrics the gateway exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from gateway import metrics
from gateway.call import Call
from gateway.metrics import GatewayMetrics, MetricsObserver
from gateway.nova.action_events import Phase
from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import Fault
from gateway.ratelimit.limiter import CircuitBreaker

REPO = Path(__file__).resolve().parents[2]


def values(gauges: GatewayMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(gauges.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(gauges: GatewayMetrics, name: str, **labels: str) -> float:
    return values(gauges).get((name, tuple(sorted(labels.items()))), 0.0)


class FakeGate(SimpleNamespace):
    pass


def fake_gate(**overrides: Any) -> Any:
    gate = FakeGate(
        policy=SimpleNamespace(reloads=0, reload_failures=0, last_reload_ok=True),
        servers=SimpleNamespace(hits=0, misses=0, feed=None, degraded=lambda: False, held=0),
        identity=SimpleNamespace(),  # noauth: no cache
        rate_limiter=SimpleNamespace(storage_errors=0, breaker=CircuitBreaker(5.0)),
        audit=None,
    )
    for key, item in overrides.items():
        setattr(gate, key, item)
    return gate


@pytest.fixture
def gauges() -> GatewayMetrics:
    return GatewayMetrics()


def finished(
    action: str | None = None,
    decision: str = "allow",
    status: int = 200,
    fault: Fault | None = None,
    **fields: Any,
) -> Call:
    call = Call("req-1", "POST", "/v2.1/servers/x/action", [], "127.0.0.1", "http", "gw")
    call.action = BY_KEY[action] if action else None
    call.decision = decision
    call.status = status
    call.fault = fault
    call.decided_seconds = 0.002
    for key, item in fields.items():
        setattr(call, key, item)
    return call


def test_allowed_call(gauges: GatewayMetrics) -> None:
    observer = MetricsObserver(cast(Any, fake_gate()), 1.0, gauges)
    call = finished("reboot", status=202, rate_limit="allowed", rate_limit_rule="reboots")
    call.exchange.status, call.exchange.seconds = 202, 0.01
    observer.observe(call)
    labels = {"action": "reboot", "decision": "allow", "reason": "none", "status": "202"}
    assert value(gauges, "nova_gateway_requests_total", **labels) == 1
    assert value(gauges, "nova_gateway_upstream_duration_seconds_count") == 1
    assert value(gauges, "nova_gateway_decision_duration_seconds_count", decision="allow") == 1
    assert value(gauges, "nova_gateway_request_duration_seconds_count", decision="allow") == 1
    assert value(gauges, "nova_gateway_rate_limit_decisions_total", outcome="allowed") == 1
    assert value(gauges, "nova_gateway_rate_limit_refusals_total", rule="reboots") == 0


def test_refusals_and_upstream_errors(gauges: GatewayMetrics) -> None:
    observer = MetricsObserver(cast(Any, fake_gate()), 1.0, gauges)
    limited = Fault(429, "slow down", reason="rate_limited", retry_after=3)
    observer.observe(
        finished("reboot", "deny", 429, limited, rate_limit="refused", rate_limit_rule="reboots")
    )
    observer.observe(finished(None, "deny", 403, Fault(403, "no", reason="policy")))
    broken = finished(None, "error", 504, Fault(504, "late", reason="upstream_timeout"))
    broken.exchange.error, broken.exchange.seconds = "timeout", 60.0
    observer.observe(broken)
    assert value(gauges, "nova_gateway_rate_limit_refusals_total", rule="reboots") == 1
    assert value(gauges, "nova_gateway_rate_limit_decisions_total", outcome="refused") == 1
    assert (
        value(
            gauges,
            "nova_gateway_requests_total",
            action="none",
            decision="deny",
            reason="policy",
            status="403",
        )
        == 1
    )
    assert value(gauges, "nova_gateway_upstream_errors_total", kind="timeout") == 1
    assert value(gauges, "nova_gateway_upstream_duration_seconds_count") == 1
    assert value(gauges, "nova_gateway_request_duration_seconds_count", decision="error") == 1


def test_observe_never_raises(gauges: GatewayMetrics, monkeypatch: pytest.MonkeyPatch) -> None:
    observer = MetricsObserver(cast(Any, fake_gate()), 1.0, gauges)

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(gauges.requests, "labels", broken)
    observer.observe(finished())


def test_sampled_counters_move_by_their_growth(gauges: GatewayMetrics) -> None:
    identity = SimpleNamespace(hits=10, misses=2)  # keystone's token cache
    gate = fake_gate(identity=identity)
    gate.servers.hits, gate.servers.misses = 3, 1
    observer = MetricsObserver(cast(Any, gate), 1.0, gauges)
    observer.sample()
    server_hits = {"cache": "server", "result": "hit"}
    assert value(gauges, "nova_gateway_cache_lookups_total", **server_hits) == 3
    assert value(gauges, "nova_gateway_cache_lookups_total", cache="identity", result="hit") == 10
    gate.servers.hits = 7
    identity.misses = 5
    gate.policy.reloads, gate.policy.reload_failures = 2, 1
    gate.policy.last_reload_ok = False
    gate.rate_limiter.storage_errors = 4
    gate.rate_limiter.breaker.failed()
    observer.sample()
    observer.sample()  # nothing grew in between: nothing added
    assert value(gauges, "nova_gateway_cache_lookups_total", **server_hits) == 7
    assert value(gauges, "nova_gateway_cache_lookups_total", cache="identity", result="miss") == 5
    assert value(gauges, "nova_gateway_policy_reloads_total") == 2
    assert value(gauges, "nova_gateway_policy_reload_failures_total") == 1
    assert value(gauges, "nova_gateway_policy_last_reload_ok") == 0
    assert value(gauges, "nova_gateway_rate_limit_storage_errors_total") == 4
    assert value(gauges, "nova_gateway_rate_limit_breaker_open") == 1


def test_audit_trail_is_sampled(gauges: GatewayMetrics) -> None:
    class Worker:
        def __init__(self, name: str) -> None:
            self.sink = SimpleNamespace(name=name)
            self.failures = 0
            self.pending = 0

        def depth(self) -> int:
            return self.pending

    file_sink, bus = Worker("file"), Worker("notifications")
    phases = dict.fromkeys(Phase, 0)
    trail = SimpleNamespace(
        workers=[file_sink, bus], dropped=0, executions_by_phase=phases, executions_unmatched=0
    )
    observer = MetricsObserver(cast(Any, fake_gate(audit=trail)), 1.0, gauges)
    observer.sample()
    file_sink.failures, bus.pending, trail.dropped = 2, 40, 3
    phases[Phase.ENDED], phases[Phase.FAILED], trail.executions_unmatched = 5, 1, 7
    observer.sample()
    phases[Phase.ENDED] += 2
    observer.sample()
    assert value(gauges, "nova_gateway_audit_sink_failures_total", sink="file") == 2
    assert value(gauges, "nova_gateway_audit_sink_failures_total", sink="notifications") == 0
    assert value(gauges, "nova_gateway_audit_queue_depth", sink="notifications") == 40
    assert value(gauges, "nova_gateway_audit_events_dropped_total", sink="all") == 3
    assert value(gauges, "nova_gateway_audit_executions_total", phase="ended") == 7
    assert value(gauges, "nova_gateway_audit_executions_total", phase="failed") == 1
    assert value(gauges, "nova_gateway_audit_executions_total", phase="started") == 0
    assert value(gauges, "nova_gateway_audit_executions_unmatched_total") == 7


def test_noauth_identity_has_no_cache_series(gauges: GatewayMetrics) -> None:
    MetricsObserver(cast(Any, fake_gate()), 1.0, gauges).sample()
    assert value(gauges, "nova_gateway_cache_lookups_total", cache="identity", result="hit") == 0
    assert all(
        dict(labels).get("cache") != "identity"
        for name, labels in values(gauges)
        if name == "nova_gateway_cache_lookups_total"
    )


def test_audit_helpers_report_in_this_process() -> None:
    process = metrics.process_metrics()
    before = value(process, "nova_gateway_audit_sink_failures_total", sink="file")
    metrics.audit_sink_failed("file")
    metrics.audit_events_dropped("bus", 3)
    metrics.audit_queue_depth("bus", 17)
    assert value(process, "nova_gateway_audit_sink_failures_total", sink="file") == before + 1
    assert value(process, "nova_gateway_audit_events_dropped_total", sink="bus") >= 3
    assert value(process, "nova_gateway_audit_queue_depth", sink="bus") == 17
    assert metrics.process_metrics() is process
    build = [key for key in values(process) if key[0] == "nova_gateway_build_info"]
    assert len(build) == 1 and dict(build[0][1])["version"]


# -- alert rules and dashboard -------------------------------------------------------


def exported() -> dict[str, frozenset[str]]:
    """Every sample name /metrics can show, with the labels it carries."""
    names: dict[str, frozenset[str]] = {}
    for metric in vars(GatewayMetrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client keeps the declared name and labels privately; reading them
        # keeps this test independent of which label values happen to exist.
        base, kind = metric._name, metric._type
        labels = frozenset(metric._labelnames)
        if kind == "counter":
            names[base + "_total"] = labels
        elif kind == "histogram":
            names[base + "_bucket"] = labels | {"le"}
            names[base + "_sum"] = labels
            names[base + "_count"] = labels
        else:
            names[base] = labels
    return names


def alert_expressions() -> list[str]:
    document = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((REPO / "deploy" / "grafana" / "nova-gateway.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"(nova_gateway_[A-Za-z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")


def used_metrics(expression: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on it) for every selector in a PromQL text."""
    used = []
    for match in _SELECTOR.finditer(expression):
        matchers = _STRING.sub('""', match.group(2) or "")
        used.append((match.group(1), set(_MATCHER.findall(matchers))))
    return used


def test_expression_parser_finds_names_and_labels() -> None:
    assert used_metrics('sum(rate(nova_gateway_x_total{kind=~"a|b", le="1.0"}[5m])) / y') == [
        ("nova_gateway_x_total", {"kind", "le"})
    ]


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_deploy_files_use_only_exported_metrics(source: str) -> None:
    expressions = alert_expressions() if source == "alerts" else dashboard_expressions()
    assert expressions
    names = exported()
    for expression in expressions:
        used = used_metrics(expression)
        assert used, expression
        for name, labels in used:
            assert name in names, f"{name} is not exported by the gateway ({expression})"
            assert labels <= names[name], f"{name} has no label(s) {labels - names[name]}"


def test_dashboard_covers_every_exported_family() -> None:
    used = {name for e in dashboard_expressions() for name, _ in used_metrics(e)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported()}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert families <= shown, families - shown
