"""Prometheus metrics: every answered call, the caches, policy reloads, rate limits, audit.

Owns metric names, labels and the /metrics exposition, also across forked workers
(prometheus multiprocess mode); it must never change a Call, raise into the request path,
nor read metric files on the event loop.

Other modules report through the functions at the bottom (``audit_queue_depth``,
``audit_sink_failed``, ``audit_events_dropped``, ``tls_certificate_loaded``); they work in
any process, any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from gateway import __version__
from gateway.call import Call

if TYPE_CHECKING:
    from gateway.pipeline import Gate

log = structlog.get_logger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ALL_SINKS = "all"  # the sink label of records the audit trail refused for every sink

# Seconds. The gateway's own share (decision) is expected in the sub-millisecond to
# millisecond range; whole requests include Nova and can take seconds.
DECISION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
NOTIFICATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    """Every metric the gateway exports, for one process."""

    def __init__(self) -> None:
        # A private registry: a second gateway in the same process (tests) shares this
        # object instead of registering the names twice.
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "nova_gateway_requests",
            "Answered requests by action key ('none' for other API calls), decision "
            "(allow, deny, error), refusal reason ('none' when allowed) and status.",
            ["action", "decision", "reason", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "nova_gateway_request_duration_seconds",
            "Whole request time at the gateway, answer streamed included, by decision.",
            ["decision"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "nova_gateway_upstream_duration_seconds",
            "Time of the exchange with nova-api (waiting for a connection included).",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.decision_seconds = Histogram(
            "nova_gateway_decision_duration_seconds",
            "Time from arrival to the gateway's decision (identity, policy, rate limit, "
            "server read included).",
            ["decision"],
            buckets=DECISION_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "nova_gateway_upstream_errors",
            "Failed exchanges with nova-api by kind (refused, tls, reset, timeout, "
            "pool_exhausted, broken_stream).",
            ["kind"],
            registry=r,
        )
        self.rate_limit_decisions = Counter(
            "nova_gateway_rate_limit_decisions",
            "Rate-limit outcomes of requests some rule applied to (allowed, refused, exempt, "
            "storage_down_open, storage_down_closed).",
            ["outcome"],
            registry=r,
        )
        self.rate_limit_refusals = Counter(
            "nova_gateway_rate_limit_refusals",
            "Requests refused with 429, by the rule that refused them.",
            ["rule"],
            registry=r,
        )
        self.rate_limit_storage_errors = Counter(
            "nova_gateway_rate_limit_storage_errors",
            "Failures (errors, timeouts) of the rate-limit counter storage.",
            registry=r,
        )
        self.rate_limit_breaker_open = Gauge(
            "nova_gateway_rate_limit_breaker_open",
            "1 while a worker does not try the rate-limit storage after a failure.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.cache_lookups = Counter(
            "nova_gateway_cache_lookups",
            "Cache lookups by cache (identity: validated tokens; server: server reads) "
            "and result (hit, miss).",
            ["cache", "result"],
            registry=r,
        )
        self.server_reads = Counter(
            "nova_gateway_server_reads",
            "Reads of a server from Nova made to decide a call, by reason (miss, expired, "
            "pending, degraded, confirm, gateway_rule, locked_by).",
            ["reason"],
            registry=r,
        )
        self.server_facts_decisions = Counter(
            "nova_gateway_server_facts_decisions",
            "Calls decided on a server's facts, by grade: fresh (read for the call), "
            "coherent (the notification mirror), cached (a copy without a bus).",
            ["grade"],
            registry=r,
        )
        self.refusal_confirmations = Counter(
            "nova_gateway_refusal_confirmations",
            "Refusals decided on a copy and decided again on a fresh read: stood, or "
            "overturned (the copy was stale; the call went through).",
            ["outcome"],
            registry=r,
        )
        self.server_facts_degraded = Gauge(
            "nova_gateway_server_facts_degraded",
            "1 while a worker's notification mirror is degraded (feed down or lagging): "
            "its decisions read Nova. 0 when up, or when no bus is configured.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.server_facts_entries = Gauge(
            "nova_gateway_server_facts_entries",
            "Servers held in the workers' mirrors (or caches).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.notification_heartbeat_age = Gauge(
            "nova_gateway_notification_heartbeat_age_seconds",
            "Age of the last heartbeat that came through a worker's notification queue "
            "(+Inf before the first one); above [server_facts] max_lag the mirror is degraded.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.notification_delay = Histogram(
            "nova_gateway_notification_delay_seconds",
            "From the timestamp Nova put on an instance notification to its arrival at "
            "the gateway (includes clock skew between the hosts).",
            buckets=NOTIFICATION_BUCKETS,
            registry=r,
        )
        self.notifications = Counter(
            "nova_gateway_notifications",
            "Messages the notification feed received, by kind (instance, heartbeat, ignored).",
            ["kind"],
            registry=r,
        )
        self.notification_disconnects = Counter(
            "nova_gateway_notification_feed_disconnects",
            "Times a worker's notification feed lost its connection (and its queue).",
            registry=r,
        )
        self.policy_reloads = Counter(
            "nova_gateway_policy_reloads",
            "Policy files reloaded after a change.",
            registry=r,
        )
        self.policy_reload_failures = Counter(
            "nova_gateway_policy_reload_failures",
            "Policy reloads refused (the last good policy stays in force).",
            registry=r,
        )
        self.policy_last_reload_ok = Gauge(
            "nova_gateway_policy_last_reload_ok",
            "0 while a worker keeps an older policy because the files on disk are broken.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.audit_queue_depth = Gauge(
            "nova_gateway_audit_queue_depth",
            "Audit records waiting to be written, by sink.",
            ["sink"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.audit_sink_failures = Counter(
            "nova_gateway_audit_sink_failures",
            "Failed writes to an audit sink, by sink.",
            ["sink"],
            registry=r,
        )
        self.audit_events_dropped = Counter(
            "nova_gateway_audit_events_dropped",
            "Audit records that could not be delivered, by sink ('all': refused for every "
            "sink because the queues were full).",
            ["sink"],
            registry=r,
        )
        self.audit_executions = Counter(
            "nova_gateway_audit_executions",
            "Execution records: Nova's notifications of an action this worker forwarded, "
            "by the phase they recorded (started, ended, failed).",
            ["phase"],
            registry=r,
        )
        self.audit_executions_unmatched = Counter(
            "nova_gateway_audit_executions_unmatched",
            "Notifications of an action's execution that followed no call of this worker "
            "(every worker hears every one: with N workers, an action one forwarded is "
            "unmatched in the N-1 others; also direct calls to Nova, other gateways).",
            registry=r,
        )
        self.tls_certificate_expiry = Gauge(
            "nova_gateway_tls_certificate_expiry_timestamp_seconds",
            "When the certificate a listener serves expires (Unix time), by listener (api, "
            "admin); the earliest of the live workers: one that could not load a renewal "
            "still serves the old certificate.",
            ["listener"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.build_info = Gauge(
            "nova_gateway_build_info",
            "Always 1; the labels say which gateway and Python are running.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)


_process: tuple[int, GatewayMetrics] | None = None


def process_metrics() -> GatewayMetrics:
    """This process's metrics, made on first use (in a worker: after the fork)."""
    global _process
    if _process is None or _process[0] != os.getpid():
        _process = (os.getpid(), GatewayMetrics())
    return _process[1]


# --------------------------------------------------------------------------------------
# Several worker processes


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def start_multiprocess() -> str:
    """Supervisor, before forking: a fresh directory the workers write their values to.

    A directory left by an earlier run would add its counts to ours, so it is always new.
    """
    directory = tempfile.mkdtemp(prefix="nova-gateway-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    # prometheus_client picks its value class when first imported, which may be before
    # this point (the supervisor imports the whole gateway); pick again.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    return directory


def worker_exited(pid: int) -> None:
    """Supervisor: drop a dead worker's live gauges (its counters keep counting)."""
    if multiprocess_enabled():
        with contextlib.suppress(OSError):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def stop_multiprocess(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    if os.environ.get(MULTIPROC_ENV) == directory:
        del os.environ[MULTIPROC_ENV]


def exposition() -> bytes:
    """The text format of every metric: this process's, or all workers' (blocking)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(process_metrics().registry)


# --------------------------------------------------------------------------------------
# Observing calls and sampling counters that live elsewhere


@runtime_checkable
class CacheCounters(Protocol):
    hits: int
    misses: int


@dataclass
class _Delta:
    """Adds to a counter what a plain integer somewhere else grew by since last time."""

    read: Callable[[], int]
    add: Callable[[float], None]
    last: int = 0

    def sample(self) -> None:
        now = self.read()
        grown = now - self.last if now >= self.last else now  # the source was reset
        if grown:
            self.add(grown)
        self.last = now


def _reader(source: object, name: str) -> Callable[[], int]:
    return lambda: int(getattr(source, name))


def _phase_reader(counts: dict[Any, int], phase: object) -> Callable[[], int]:
    return lambda: counts[phase]


class MetricsObserver:
    """A CallObserver for one gate, plus the sampler of its caches, policy and limiter."""

    def __init__(self, gate: Gate, interval: float, metrics: GatewayMetrics | None = None):
        self._gate = gate
        self._interval = interval
        self.metrics = metrics or process_metrics()
        self._task: asyncio.Task[None] | None = None
        # Built at the first sample: the gate gets parts (audit) after its observers.
        self._deltas: list[_Delta] | None = None
        # Children bound once per label set (labels() validates and locks at every call);
        # as bounded as the metrics' own label sets.
        self._requests: dict[tuple[str, str, str, str], Counter] = {}
        self._durations: dict[str, tuple[Histogram, Histogram]] = {}
        self._grades: dict[str, Counter] = {}
        self._rate_limited: dict[str, Counter] = {}

    def _sources(self) -> list[_Delta]:
        m, gate = self.metrics, self._gate
        deltas = [
            _Delta(lambda: gate.policy.reloads, m.policy_reloads.inc),
            _Delta(lambda: gate.policy.reload_failures, m.policy_reload_failures.inc),
        ]
        for cache, source in (("server", gate.servers), ("identity", gate.identity)):
            if isinstance(source, CacheCounters):
                hit, miss = (m.cache_lookups.labels(cache, result) for result in ("hit", "miss"))
                deltas.append(_Delta(_reader(source, "hits"), hit.inc))
                deltas.append(_Delta(_reader(source, "misses"), miss.inc))
        feed = gate.servers.feed
        if feed is not None:
            counters = feed.counters
            for kind in ("instance_events", "heartbeats", "ignored"):
                label = {"instance_events": "instance", "heartbeats": "heartbeat"}.get(kind, kind)
                deltas.append(_Delta(_reader(counters, kind), m.notifications.labels(label).inc))
            deltas.append(_Delta(_reader(counters, "disconnects"), m.notification_disconnects.inc))
        limiter = gate.rate_limiter
        if limiter is not None:
            deltas.append(_Delta(lambda: limiter.storage_errors, m.rate_limit_storage_errors.inc))
        audit = gate.audit
        if audit is not None:
            for worker in audit.workers:
                failed = m.audit_sink_failures.labels(worker.sink.name)
                deltas.append(_Delta(_reader(worker, "failures"), failed.inc))
            dropped = m.audit_events_dropped.labels(ALL_SINKS)
            deltas.append(_Delta(_reader(audit, "dropped"), dropped.inc))
            for phase in audit.executions_by_phase:
                recorded = m.audit_executions.labels(phase.value)
                deltas.append(_Delta(_phase_reader(audit.executions_by_phase, phase), recorded.inc))
            unmatched = m.audit_executions_unmatched.inc
            deltas.append(_Delta(_reader(audit, "executions_unmatched"), unmatched))
        return deltas

    def observe(self, call: Call) -> None:
        try:
            self._observe(call)
        except Exception:  # an observer must never break the answer
            log.exception("metrics_observe_failed", request_id=call.request_id)

    def _observe(self, call: Call) -> None:
        m = self.metrics
        reason = call.fault.reason if call.fault is not None else "none"
        labels = (call.action_key or "none", call.decision, reason, str(call.status))
        requests = self._requests.get(labels)
        if requests is None:
            requests = self._requests[labels] = m.requests.labels(*labels)
        requests.inc()
        durations = self._durations.get(call.decision)
        if durations is None:
            durations = self._durations[call.decision] = (
                m.request_seconds.labels(call.decision),
                m.decision_seconds.labels(call.decision),
            )
        durations[0].observe(time.monotonic() - call.started)
        if call.decided_seconds:
            durations[1].observe(call.decided_seconds)
        exchange = call.exchange
        if exchange.status is not None or exchange.error is not None:
            m.upstream_seconds.observe(exchange.seconds)
        if exchange.error is not None:
            m.upstream_errors.labels(exchange.error).inc()
        for reason in call.server_reads:
            m.server_reads.labels(reason).inc()
        if call.facts_grade is not None:
            grade = call.facts_grade.value
            graded = self._grades.get(grade)
            if graded is None:
                graded = self._grades[grade] = m.server_facts_decisions.labels(grade)
            graded.inc()
        if call.refusal_confirmation is not None:
            m.refusal_confirmations.labels(call.refusal_confirmation).inc()
        if call.rate_limit is not None:
            decided = self._rate_limited.get(call.rate_limit)
            if decided is None:
                decided = self._rate_limited[call.rate_limit] = m.rate_limit_decisions.labels(
                    call.rate_limit
                )
            decided.inc()
            if call.rate_limit == "refused":
                m.rate_limit_refusals.labels(call.rate_limit_rule or "").inc()

    def sample(self) -> None:
        """Copy the counters other parts keep as plain integers into the metrics."""
        try:
            if self._deltas is None:
                self._deltas = self._sources()
            for delta in self._deltas:
                delta.sample()
            audit = self._gate.audit
            if audit is not None:
                for worker in audit.workers:
                    self.metrics.audit_queue_depth.labels(worker.sink.name).set(worker.depth())
            self.metrics.policy_last_reload_ok.set(1 if self._gate.policy.last_reload_ok else 0)
            self._sample_server_facts()
            limiter = self._gate.rate_limiter
            if limiter is not None:
                self.metrics.rate_limit_breaker_open.set(1 if limiter.breaker.open else 0)
        except Exception:
            log.exception("metrics_sample_failed")

    def _sample_server_facts(self) -> None:
        m, store = self.metrics, self._gate.servers
        m.server_facts_entries.set(store.held)
        m.server_facts_degraded.set(1 if store.degraded() else 0)
        feed = store.feed
        if feed is None:
            return
        age = feed.heartbeat_age()
        m.notification_heartbeat_age.set(float("inf") if age is None else age)
        delays = feed.counters.delays
        while delays:
            m.notification_delay.observe(max(0.0, delays.popleft()))

    async def start(self, app: web.Application | None = None) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._sample_forever(), name="metrics-sampler"
            )

    async def stop(self, app: web.Application | None = None) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.sample()

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.sample()


def metrics_handler(
    observer: MetricsObserver | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve_metrics(request: web.Request) -> web.Response:
        if observer is not None:
            observer.sample()  # this worker's figures fresh; the others' are one interval old
        body = await asyncio.to_thread(exposition)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return serve_metrics


# --------------------------------------------------------------------------------------
# For other modules (audit): simple calls, valid in any process at any time.


def audit_queue_depth(sink: str, depth: int) -> None:
    process_metrics().audit_queue_depth.labels(sink).set(depth)


def audit_sink_failed(sink: str) -> None:
    process_metrics().audit_sink_failures.labels(sink).inc()


def audit_events_dropped(sink: str, count: int = 1) -> None:
    process_metrics().audit_events_dropped.labels(sink).inc(count)


def tls_certificate_loaded(listener: str, not_after: float) -> None:
    process_metrics().tls_certificate_expiry.labels(listener).set(not_after)
