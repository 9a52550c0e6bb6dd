"""The audit trail of one worker process: admission, write-ahead, records for every sink.

Owns turning calls into records (a decision made durable before its call leaves, the
outcome after), back-pressure, fail-closed admission and the shutdown flush; it must never
drop a record it accepted, nor wait on a sink except by awaiting a future on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from oslo_config import cfg

from gateway.audit.chain import CLOSED, Chain, load_key
from gateway.audit.execution import (
    DecisionIndex,
    DecisionRef,
    Execution,
    Phase,
    build_execution_record,
    phase_for,
)
from gateway.audit.records import (
    DECISION,
    OUTCOME,
    SCHEMA,
    Instance,
    Redactor,
    build_decision_record,
    build_outcome_record,
    build_record,
    fallback_record,
    timestamp,
)
from gateway.audit.sinks import FileSink, MessagingSink, Sink, SinkError, file_stem
from gateway.audit.witness import build_witnesses
from gateway.audit.worker import SinkWorker, Waiter, WitnessPolicy
from gateway.call import Call
from gateway.notifications.events import InstanceEvent
from gateway.notifications.feed import NotificationFeed
from gateway.nova.action_events import is_action_event
from gateway.nova.faults import Fault

log = structlog.get_logger(__name__)

ALERT_EVERY_SECONDS = 10.0
BACKPRESSURE_POLL_SECONDS = 0.005
WRITE_AHEAD_SCOPES = ("mutating", "all", "off")
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # Nova changes nothing for these
# Forwarded decisions a notification may still be joined to: Nova's .end of a long
# action (resize, migrate, snapshot) can come minutes after the answer.
EXECUTION_JOIN_SECONDS = 3600.0
EXECUTION_JOIN_SIZE = 10000


def unavailable() -> Fault:
    return Fault(
        503,
        "The gateway cannot record this request in its audit trail right now; retry later.",
        reason="audit_unavailable",
        retry_after=1,
    )


def control_record(event: str, instance: Instance, **fields: Any) -> dict[str, Any]:
    """A record about the trail itself (opened, closed, gap): never rendered as CADF."""
    return {
        "schema": SCHEMA,
        "event": event,
        "time": timestamp(),
        "instance": instance.as_dict(),
        **fields,
    }


@dataclass
class InFlight:
    """A call whose DECISION record was queued before forwarding; its OUTCOME is due."""

    decision: dict[str, Any]
    ref: DecisionRef
    forwarded: bool = False  # the decision is durable (or fail-open) and the call left


class AuditTrail:
    """The pipeline's audit observer: every answered call leaves its record in every sink.

    A call about to be forwarded (``write_ahead``: mutating methods by default) first
    leaves a DECISION record and waits until every sink has stored it (group-committed
    by the writer threads); its OUTCOME record follows the answer. Other calls leave one
    REQUEST record after the answer.

    Capacity bounds the records waiting for the slowest sink. A request is admitted
    (``admit``, the check_audit_ready stage) only while there is room, after waiting up
    to ``backpressure_timeout``; fail-closed also refuses while any sink is failing.
    Records of calls refused before admission may use a second ``capacity`` of room;
    past that they are counted and reported as one ``audit_gap`` record.
    """

    def __init__(
        self,
        workers: Sequence[SinkWorker],
        instance: Instance,
        redactor: Redactor,
        *,
        fail_closed: bool = True,
        capacity: int = 10000,
        backpressure_timeout: float = 1.0,
        flush_timeout: float = 30.0,
        write_ahead: str = "mutating",
        write_ahead_timeout: float = 5.0,
        execution_evidence: bool = False,
    ) -> None:
        if write_ahead not in WRITE_AHEAD_SCOPES:
            raise ValueError(
                f"write_ahead must be one of {WRITE_AHEAD_SCOPES}, not {write_ahead!r}"
            )
        self.workers = list(workers)
        self.instance = instance
        self.redactor = redactor
        self.fail_closed = fail_closed
        self.capacity = capacity
        self.backpressure_timeout = backpressure_timeout
        self.flush_timeout = flush_timeout
        self.write_ahead_scope = write_ahead
        self.write_ahead_timeout = write_ahead_timeout
        # Subscribed to Nova's notifications (said in every chain_opened record, so that
        # verify and query can tell "no execution record" from "none could be made").
        self.execution_evidence = execution_evidence
        self.dropped = 0  # alert counter: records never accepted (reported in audit_gap)
        self.refused = 0  # requests answered 503 audit_unavailable
        self.write_ahead_failed = 0  # decisions not stored in time (refused, or fail-open)
        self.executions = 0  # EXECUTION records queued
        self.executions_by_phase = dict.fromkeys(Phase, 0)
        self.executions_unmatched = 0  # action notifications that followed no decision of ours
        self.index = DecisionIndex(EXECUTION_JOIN_SIZE, EXECUTION_JOIN_SECONDS)
        self._in_flight: dict[str, InFlight] = {}
        self._gap: dict[str, Any] | None = None
        self._last_drop_alert = 0.0
        self._closing = False

    @property
    def healthy(self) -> bool:
        return all(worker.healthy for worker in self.workers)

    @property
    def failures(self) -> int:
        return sum(worker.failures for worker in self.workers)

    def depth(self) -> int:
        return max((worker.depth() for worker in self.workers), default=0)

    def stats(self) -> dict[str, int | bool]:
        """Counters for metrics and readiness."""
        return {
            "healthy": self.healthy,
            "pending": self.depth(),
            "written": min((worker.written for worker in self.workers), default=0),
            "sink_failures": self.failures,
            "dropped": self.dropped,
            "refused": self.refused,
            "write_ahead_failed": self.write_ahead_failed,
            "executions": self.executions,
            "executions_unmatched": self.executions_unmatched,
            "batches": min((worker.batches for worker in self.workers), default=0),
        }

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
            worker.put(
                control_record(
                    "chain_opened",
                    self.instance,
                    sink=worker.sink.name,
                    format=worker.record_format,
                    failure_mode="fail-closed" if self.fail_closed else "fail-open",
                    execution_evidence=self.execution_evidence,
                )
            )

    # -- the pipeline side ---------------------------------------------------------------

    def observe(self, call: Call) -> None:
        """CallObserver: build and queue the record; never raises, never blocks."""
        flight = self._in_flight.pop(call.request_id, None)
        if flight is not None:
            self._observe_outcome(call, flight)
            return
        try:
            record = build_record(call, self.instance, self.redactor)
        except Exception as exc:
            log.exception("audit_record_failed", request_id=call.request_id)
            record = fallback_record(call, self.instance, exc)
        self.offer(record)
        if call.exchange.request_id is not None and call.method not in READ_ONLY_METHODS:
            # Forwarded without write-ahead: Nova's notifications may still join it.
            ref = self._ref(call)
            self.index.add(ref)
            self.index.answered(ref, call.exchange.request_id)

    def _observe_outcome(self, call: Call, flight: InFlight) -> None:
        try:
            record = build_outcome_record(
                call, self.instance, self.redactor, forwarded=flight.forwarded
            )
        except Exception as exc:
            log.exception("audit_record_failed", request_id=call.request_id)
            record = fallback_record(call, self.instance, exc, event=OUTCOME)
        if flight.forwarded and call.exchange.request_id is not None:
            self.index.answered(flight.ref, call.exchange.request_id)
        self.offer(record, flight.decision)

    def wants_write_ahead(self, call: Call) -> bool:
        if self.write_ahead_scope == "off":
            return False
        return self.write_ahead_scope == "all" or call.method not in READ_ONLY_METHODS

    async def write_ahead(self, call: Call) -> None:
        """Store the call's DECISION record in every sink before the call is forwarded.

        Group commit: the record joins the writer's next batch (no lingering while someone
        waits), so concurrent calls share one write and one fsync. A decision not stored
        within ``write_ahead_timeout`` (or a sink failing) is a 503 when fail-closed;
        fail-open forwards anyway. Either way the OUTCOME record follows it.
        """
        if not self.wants_write_ahead(call):
            return
        room = self.depth() < self.capacity * 2
        if self.fail_closed and not (room and self.healthy):
            self.refused += 1
            raise unavailable()  # nothing queued: the REQUEST record tells this refusal
        if not room:
            return  # fail-open and full: forwarded unrecorded, counted in the audit_gap
        try:
            record = build_decision_record(call, self.instance, self.redactor)
        except Exception as exc:
            log.exception("audit_record_failed", request_id=call.request_id)
            record = fallback_record(call, self.instance, exc, event=DECISION)
        flight = InFlight(record, self._ref(call))
        self._in_flight[call.request_id] = flight
        self.index.add(flight.ref)
        if not self.healthy:
            # fail-open with a failing sink: the decision waits in the queue for the sink
            # to recover; the call does not wait for it.
            self.write_ahead_failed += 1
            self.offer(record)
            flight.forwarded = True
            return
        loop = asyncio.get_running_loop()
        waiters = [Waiter(loop, loop.create_future()) for _ in self.workers]
        self._flush_gap()
        for worker, waiter in zip(self.workers, waiters, strict=True):
            worker.put(record, None, waiter)
        try:
            async with asyncio.timeout(self.write_ahead_timeout):
                for waiter in waiters:
                    await waiter.future
        except (TimeoutError, SinkError) as exc:
            self._abandon(waiters)
            self.write_ahead_failed += 1
            if self.fail_closed:
                self.refused += 1
                raise unavailable() from None
            log.error("audit_write_ahead_skipped", request_id=call.request_id, error=str(exc))
        except asyncio.CancelledError:
            self._abandon(waiters)  # the client went away: never forwarded
            raise
        flight.forwarded = True

    @staticmethod
    def _abandon(waiters: Sequence[Waiter]) -> None:
        for waiter in waiters:
            waiter.future.cancel()

    def _ref(self, call: Call) -> DecisionRef:
        return DecisionRef(
            call.request_id,
            call.global_request_id or call.request_id,  # what Nova gets as its global id
            call.route.server_id if call.route is not None else None,
            call.action_key,
        )

    def on_notification(self, event: InstanceEvent) -> None:
        """The notification feed's subscriber (on the event loop, in the bus's order)."""
        self.record_execution(Execution.from_event(event))

    def record_execution(self, execution: Execution) -> bool:
        """Record what Nova says it did with an action this worker forwarded.

        Call it on the event loop, once per ``instance.*`` notification. An EXECUTION
        record (started / ended / failed, by Nova's table of each action's events) follows
        the DECISION it belongs to when the notification names a server and request id
        this worker forwarded in the last EXECUTION_JOIN_SECONDS, and says more than what
        is already recorded for it; True if it did. An action's event that follows no call
        of this worker (another worker's, another gateway's, a direct call to Nova, or one
        older than the index) is only counted.
        """
        if self._closing or not is_action_event(execution.event_type):
            # Closing: the writers are flushing for the last time and would never write
            # it. instance.update, instance.exists: no action's own event.
            return False
        ref = self.index.find(execution)
        if ref is None:
            self.executions_unmatched += 1
            return False
        phase = phase_for(ref.action, execution.event_type)
        if phase is None or not self.index.advance(ref, phase):
            return False  # not this action's event, or a step that says nothing new
        self.offer(build_execution_record(ref, execution, phase, self.instance))
        self.executions += 1
        self.executions_by_phase[phase] += 1
        return True

    def offer(self, record: dict[str, Any], context: Mapping[str, Any] | None = None) -> None:
        if self.depth() >= self.capacity * 2:
            self._count_drop(record)
            return
        self._flush_gap()
        for worker in self.workers:
            worker.put(record, context)

    def _flush_gap(self) -> None:
        if self._gap is not None:
            gap, self._gap = self._gap, None
            for worker in self.workers:
                worker.put(gap)

    def _count_drop(self, record: Mapping[str, Any]) -> None:
        self.dropped += 1
        decision = record.get("decision") or {}
        if self._gap is None:
            self._gap = control_record(
                "audit_gap",
                self.instance,
                reason="queue_full",
                dropped=0,
                first_time=record.get("time"),
                statuses={},
            )
        self._gap["dropped"] += 1
        self._gap["last_time"] = record.get("time")
        statuses = self._gap["statuses"]
        status = str(record.get("status", decision.get("status")))
        statuses[status] = statuses.get(status, 0) + 1
        now = time.monotonic()
        if now - self._last_drop_alert >= ALERT_EVERY_SECONDS:
            self._last_drop_alert = now
            log.error("audit_records_dropped", dropped=self.dropped, pending=self.depth())

    async def admit(self, call: Call) -> None:
        """The check_audit_ready stage: refuse (503) what could not be recorded."""
        healthy = self.healthy
        if not healthy:
            if self.fail_closed:
                self.refused += 1
                raise unavailable()
            return  # fail-open: serve; a failing sink will not make room by waiting
        if self.depth() < self.capacity:
            return
        deadline = time.monotonic() + self.backpressure_timeout
        while self.depth() >= self.capacity and time.monotonic() < deadline:
            await asyncio.sleep(BACKPRESSURE_POLL_SECONDS)
        if self.depth() >= self.capacity and self.fail_closed:
            self.refused += 1
            raise unavailable()

    # -- shutdown --------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush every accepted record (SIGTERM); what a dead sink keeps goes to the log."""
        if self._closing:
            return
        self._closing = True
        self._flush_gap()
        for worker in self.workers:
            worker.stop()
        flushed = await asyncio.to_thread(self._join_all, self.flush_timeout)
        if flushed:
            return
        for worker in self.workers:
            lines = worker.spill()
            for line in lines:
                # Never silently lost: the process log is the last place left.
                log.error("audit_record_unwritten", sink=worker.sink.name, record=line)
            if lines:
                log.error(
                    "audit_flush_timeout",
                    sink=worker.sink.name,
                    unwritten=len(lines),
                    error=worker.last_error,
                )

    def _join_all(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        # all() stops at the first worker still busy at the deadline: the rest had no time left.
        return all(worker.join(max(0.0, deadline - time.monotonic())) for worker in self.workers)


# --------------------------------------------------------------------------------------


def build_audit_trail(
    conf: cfg.ConfigOpts, feed: NotificationFeed | None = None
) -> AuditTrail | None:
    """The trail [audit] describes, started; None when auditing is off. With ``feed``
    (Nova's notifications), it records the execution of the calls this worker forwards.

    Raises KeyFileError without a usable key: a trail nobody can verify is refused.
    """
    group = conf.audit
    if not group.enabled:
        return None
    key = load_key(group.hmac_key_file)
    instance = Instance.current()
    stem = file_stem(instance.host, instance.pid)
    witness = WitnessPolicy(
        build_witnesses(group.witness_directory, group.witness_redis_url, group.witness_key_prefix),
        key,
        every=group.witness_every,
        interval=group.witness_interval,
    )
    workers: list[SinkWorker] = []
    for name in group.sinks:
        sink: Sink
        if name == "file":
            sink = FileSink(
                Path(group.file_directory).expanduser(),
                stem,
                fsync=group.file_fsync,
                fsync_interval=group.file_fsync_interval,
                rotate_bytes=group.file_rotate_bytes,
                rotate_seconds=group.file_rotate_seconds,
            )
            record_format = group.file_format
            tick = min(1.0, group.file_fsync_interval, group.witness_interval)
        else:
            sink = MessagingSink(
                group.messaging_transport_url,
                group.messaging_topics,
                f"nova-gateway.{instance.host}",
                driver=group.messaging_driver,
                exchange=group.messaging_exchange,
                config_files=conf.config_file or (),
                config_dirs=conf.config_dir or (),
            )
            record_format = group.messaging_format
            tick = min(1.0, group.witness_interval)
        chain = Chain(key, f"{stem}/{name}")

        def closing(sink_name: str = name) -> dict[str, Any]:
            return control_record(CLOSED, instance, sink=sink_name)

        workers.append(
            SinkWorker(
                sink,
                chain,
                record_format,
                retry_interval=group.retry_interval,
                tick_interval=tick,
                closing_record=closing,
                witness=witness,
            )
        )
    trail = AuditTrail(
        workers,
        instance,
        Redactor(group.redact_fields),
        fail_closed=group.failure_mode == "fail-closed",
        capacity=group.queue_size,
        backpressure_timeout=group.backpressure_timeout,
        flush_timeout=group.flush_timeout,
        write_ahead=group.write_ahead,
        write_ahead_timeout=group.write_ahead_timeout,
        execution_evidence=feed is not None,
    )
    if feed is not None:
        feed.subscribe(trail.on_notification)
    trail.start()
    return trail
