"""The audit trail of one worker process: bounded queues, writer threads, health, admission.

Owns queueing records, back-pressure, fail-closed admission, retries and the shutdown
flush; it must never drop a record it accepted, nor call a sink from the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from oslo_config import cfg

from gateway.audit.cadf import EVENT_TYPE as CADF_EVENT_TYPE
from gateway.audit.cadf import to_cadf
from gateway.audit.chain import CLOSED, Chain, canonical, load_key
from gateway.audit.records import (
    SCHEMA,
    Instance,
    Redactor,
    build_record,
    fallback_record,
    timestamp,
)
from gateway.audit.sinks import FileSink, MessagingSink, Sealed, Sink, SinkError, file_stem
from gateway.call import Call
from gateway.nova.faults import Fault

log = structlog.get_logger(__name__)

JSON_EVENT_TYPE = "nova_gateway.audit.request"
CONTROL_EVENT_TYPE = "nova_gateway.audit.chain"
ALERT_EVERY_SECONDS = 10.0  # a failing sink is reported once, then at most this often
BACKPRESSURE_POLL_SECONDS = 0.005
SPILL_LOCK_SECONDS = 5.0
LINGER_SECONDS = 0.02  # how long a woken writer waits for more records to batch
YIELD_EVERY = 4  # records sealed between two GIL releases in a burst


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


def render(record: dict[str, Any], record_format: str) -> tuple[Mapping[str, Any], str]:
    """The document a sink stores for a record in its format, and its notification type."""
    if record.get("event") != "request":
        return record, CONTROL_EVENT_TYPE
    if record_format == "cadf":
        try:
            return to_cadf(record), CADF_EVENT_TYPE
        except Exception:  # keep the record in the gateway's own form rather than lose it
            log.exception("audit_cadf_render_failed", request_id=record.get("request_id"))
    return record, JSON_EVENT_TYPE


class SinkWorker:
    """One sink, its chain and its queue, written by one thread that never gives up."""

    def __init__(
        self,
        sink: Sink,
        chain: Chain,
        record_format: str,
        *,
        retry_interval: float = 1.0,
        tick_interval: float = 1.0,
        closing_record: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.sink = sink
        self.chain = chain
        self.record_format = record_format
        self._retry_interval = retry_interval
        self._tick_interval = tick_interval
        self._closing_record = closing_record
        self._queue: deque[dict[str, Any]] = deque()
        self._batch: list[Sealed] = []
        self._wake = threading.Event()
        self._abandon = threading.Event()
        # Held while sealing and writing, so a spill at shutdown never races a write.
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self.healthy = True
        self.failures = 0
        self.written = 0
        self.last_error: str | None = None
        self._last_alert = 0.0
        self._thread = threading.Thread(target=self._run, name=f"audit-{sink.name}", daemon=True)

    # -- called from the event loop (cheap, never blocking) ------------------------------

    def put(self, record: dict[str, Any]) -> None:
        self._queue.append(record)  # deque.append is atomic: no lock on the loop
        if len(self._queue) == 1:
            # Only the first record after the writer emptied the queue wakes it: while
            # it drains, it takes what arrives without being told (a wake-up per record
            # would cost the loop a lock and the writer a GIL hand-over each time).
            self._wake.set()

    def depth(self) -> int:
        return len(self._queue) + len(self._batch)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    # -- called off the loop -------------------------------------------------------------

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def spill(self) -> list[str]:
        """Give up on the sink: seal what is left and hand the lines back (for the log)."""
        self._abandon.set()
        if not self._lock.acquire(timeout=SPILL_LOCK_SECONDS):
            # The writer is stuck inside the sink (a hung mount): its batch stays with
            # it; what is still queued leaves unsealed rather than not at all.
            return [canonical(record) for record in list(self._queue)]
        try:
            lines = [item.line for item in self._batch]
            self._batch.clear()
            while self._queue:
                lines.append(self._seal(self._queue.popleft()).line)
            return lines
        finally:
            self._lock.release()

    def _run(self) -> None:
        backoff = 0.0
        while not self._abandon.is_set():
            if backoff:
                self._abandon.wait(backoff)  # keep retrying; only abandon cuts it short
            elif self._wake.wait(self._tick_interval) and not self._stopping:
                # Let a few more records arrive: one batch, one write, one fsync.
                time.sleep(LINGER_SECONDS)
            self._wake.clear()
            with self._lock:
                if self._abandon.is_set():
                    return
                if self._drain():
                    backoff = 0.0
                else:
                    floor = self._retry_interval / 20
                    backoff = min(self._retry_interval, max(floor, backoff * 2))
                    continue
                if self._stopping and not self._queue and not self._closed:
                    self._closed = True
                    if self._closing_record is not None:
                        self._queue.append(self._closing_record())
                        if not self._drain():
                            self._closed = False
                            backoff = self._retry_interval / 20
                            continue
                    self._close_sink()
                    return

    def _drain(self) -> bool:
        """Write everything queued; False (and unhealthy) at the first failure."""
        while True:
            if not self._batch:
                while self._queue and len(self._batch) < self.sink.batch_size:
                    self._batch.append(self._seal(self._queue.popleft()))
                    if len(self._batch) % YIELD_EVERY == 0:
                        # Sealing is pure CPU under the GIL: let the event loop in now
                        # and then, or a burst would hold it for a switch interval.
                        time.sleep(0)
            try:
                if not self._batch:
                    self.sink.tick()
                    return True
                self.sink.write(self._batch)
            except SinkError as exc:
                del self._batch[: exc.written]
                self._failed(exc)
                return False
            except Exception as exc:  # a sink bug must not end the thread: retry
                self._failed(exc)
                return False
            self.written += len(self._batch)
            self._batch.clear()
            if not self.healthy:
                log.warning("audit_sink_recovered", sink=self.sink.name, failures=self.failures)
            self.healthy = True

    def _seal(self, record: dict[str, Any]) -> Sealed:
        document, event_type = render(record, self.record_format)
        sealed, line = self.chain.seal(document)
        return Sealed(sealed, line, event_type)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = str(exc)
        now = time.monotonic()
        if self.healthy or now - self._last_alert >= ALERT_EVERY_SECONDS:
            self._last_alert = now
            log.error(
                "audit_sink_failed",
                sink=self.sink.name,
                error=str(exc),
                pending=self.depth(),
                failures=self.failures,
            )
        self.healthy = False

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception as exc:
            log.error("audit_sink_close_failed", sink=self.sink.name, error=str(exc))


class AuditTrail:
    """The pipeline's audit observer: every answered call becomes one record in every sink.

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
    ) -> None:
        self.workers = list(workers)
        self.instance = instance
        self.redactor = redactor
        self.fail_closed = fail_closed
        self.capacity = capacity
        self.backpressure_timeout = backpressure_timeout
        self.flush_timeout = flush_timeout
        self.dropped = 0  # alert counter: records never accepted (reported in audit_gap)
        self.refused = 0  # requests answered 503 audit_unavailable
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
                )
            )

    # -- the pipeline side ---------------------------------------------------------------

    def observe(self, call: Call) -> None:
        """CallObserver: build and queue the record; never raises, never blocks."""
        try:
            record = build_record(call, self.instance, self.redactor)
        except Exception as exc:
            log.exception("audit_record_failed", request_id=call.request_id)
            record = fallback_record(call, self.instance, exc)
        self.offer(record)

    def offer(self, record: dict[str, Any]) -> None:
        if self.depth() >= self.capacity * 2:
            self._count_drop(record)
            return
        if self._gap is not None:
            gap, self._gap = self._gap, None
            self._put(gap)
        self._put(record)

    def _put(self, record: dict[str, Any]) -> None:
        for worker in self.workers:
            worker.put(record)

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
        status = str(decision.get("status"))
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
        if self._gap is not None:
            gap, self._gap = self._gap, None
            self._put(gap)
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


def build_audit_trail(conf: cfg.ConfigOpts) -> AuditTrail | None:
    """The trail [audit] describes, started; None when auditing is off.

    Raises KeyFileError without a usable key: a trail nobody can verify is refused.
    """
    group = conf.audit
    if not group.enabled:
        return None
    key = load_key(group.hmac_key_file)
    instance = Instance.current()
    stem = file_stem(instance.host, instance.pid)
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
            tick = min(1.0, group.file_fsync_interval)
        else:
            sink = MessagingSink(
                group.messaging_transport_url,
                group.messaging_topics,
                f"nova-gateway.{instance.host}",
                driver=group.messaging_driver,
            )
            record_format = group.messaging_format
            tick = 1.0
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
    )
    trail.start()
    return trail
