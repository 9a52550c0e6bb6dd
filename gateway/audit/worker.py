"""One sink's writer: its queue, its chain, its thread; group commit and the witnessed head.

Owns sealing queued records in order, writing them in batches, telling the event loop when a
write-ahead record is stored, and publishing the chain's head to the witnesses; it must
never drop or reorder a record it accepted, nor block the event loop (``put`` is all the
loop calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.audit.cadf import EVENT_TYPE as CADF_EVENT_TYPE
from gateway.audit.cadf import REQUEST_EVENT_TYPE as CADF_REQUEST_EVENT_TYPE
from gateway.audit.cadf import to_cadf, to_cadf_outcome
from gateway.audit.chain import Chain, canonical, line_hash
from gateway.audit.records import DECISION, EXECUTION, OUTCOME, REQUEST, timestamp
from gateway.audit.sinks import Sealed, Sink, SinkError
from gateway.audit.witness import Head, Witness, WitnessError

log = structlog.get_logger(__name__)

EVENT_TYPES = {  # the notification event type of each record in the gateway's own format
    REQUEST: "nova_gateway.audit.request",
    DECISION: "nova_gateway.audit.decision",
    OUTCOME: "nova_gateway.audit.outcome",
    EXECUTION: "nova_gateway.audit.execution",
}
CONTROL_EVENT_TYPE = "nova_gateway.audit.chain"
ALERT_EVERY_SECONDS = 10.0  # a failing sink is reported once, then at most this often
SPILL_LOCK_SECONDS = 5.0
LINGER_SECONDS = 0.02  # how long a woken writer waits for more records to batch
# Sealing time between two GIL releases in a burst. By time, not by count: a release
# (sleep(0)) costs about 20 µs of CPU, as much as sealing a record.
YIELD_AFTER_SECONDS = 0.0005


def render(
    record: dict[str, Any], record_format: str, context: Mapping[str, Any] | None = None
) -> tuple[Mapping[str, Any], str]:
    """The document a sink stores for a record in its format, and its notification type.

    ``context`` is the DECISION an OUTCOME follows: in CADF the outcome is the decision's
    event again, answered (as keystonemiddleware sends audit.http.request, then .response).
    """
    event = record.get("event")
    if event not in EVENT_TYPES:
        return record, CONTROL_EVENT_TYPE
    if record_format == "cadf" and event != EXECUTION:
        try:
            if event == OUTCOME:
                if context is not None:
                    return to_cadf_outcome(context, record), CADF_EVENT_TYPE
            else:
                kind = CADF_REQUEST_EVENT_TYPE if event == DECISION else CADF_EVENT_TYPE
                return to_cadf(record), kind
        except Exception:  # keep the record in the gateway's own form rather than lose it
            log.exception("audit_cadf_render_failed", request_id=record.get("request_id"))
    return record, EVENT_TYPES[str(event)]


@dataclass(eq=False)
class Waiter:
    """A write-ahead record's promise to the event loop: resolved once the sink stored it."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for future in futures:
        if not future.done():  # a caller that gave up cancelled it
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


def settle(waiters: Sequence[Waiter | None], error: BaseException | None = None) -> None:
    """Resolve waiters from the writer thread: one hand-over to each loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        if waiter is not None:
            by_loop.setdefault(waiter.loop, []).append(waiter.future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, futures, error)


Queued = tuple[dict[str, Any], Mapping[str, Any] | None, Waiter | None]


@dataclass(frozen=True)
class WitnessPolicy:
    """Where the chain's head is published, and how far the writer may run ahead of it."""

    witnesses: Sequence[Witness]
    key: bytes
    every: int = 1000  # never more records written than this past the published head
    interval: float = 1.0  # publish a moved head at least this often (seconds)


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
        witness: WitnessPolicy | None = None,
    ) -> None:
        self.sink = sink
        self.chain = chain
        self.record_format = record_format
        self._retry_interval = retry_interval
        self._tick_interval = tick_interval
        self._closing_record = closing_record
        self._witness = witness if witness is not None and witness.witnesses else None
        self._queue: deque[Queued] = deque()
        self._batch: list[Sealed] = []
        self._batch_waiters: list[Waiter | None] = []
        self._wake = threading.Event()
        self._hurry = threading.Event()  # a write-ahead record waits: no lingering
        self._abandon = threading.Event()
        # Held while sealing and writing, so a spill at shutdown never races a write.
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self.healthy = True
        self.failures = 0
        self.written = 0
        self.batches = 0  # successful writes: written / batches is the group-commit factor
        self.last_error: str | None = None
        self._last_alert = 0.0
        # The last record stored, and the last head the witnesses took.
        self._written_seq = 0
        self._written_hash = ""
        self._witnessed_seq = 0
        self._witnessed_at = time.monotonic()
        self._witness_closed = False
        self._thread = threading.Thread(target=self._run, name=f"audit-{sink.name}", daemon=True)

    # -- called from the event loop (cheap, never blocking) ------------------------------

    def put(
        self,
        record: dict[str, Any],
        context: Mapping[str, Any] | None = None,
        waiter: Waiter | None = None,
    ) -> None:
        self._queue.append((record, context, waiter))  # deque.append is atomic: no lock
        if waiter is not None:
            # Someone waits for this one: the writer must not linger for company. An
            # Event already set is not set again (set() takes its lock and notifies);
            # the writer clears both before it drains, so it sees this record either way.
            if not self._hurry.is_set():
                self._hurry.set()
            if not self._wake.is_set():
                self._wake.set()
        elif len(self._queue) == 1:
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
        self._hurry.set()

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
            return [canonical(record) for record, _, _ in list(self._queue)]
        try:
            lines = [item.line for item in self._batch]
            self._batch.clear()
            self._batch_waiters.clear()
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
                # Let a few more records arrive: one batch, one write, one fsync; unless a
                # write-ahead record is waiting (then the records that arrive during this
                # write and sync form the next batch: group commit without a delay).
                self._hurry.wait(LINGER_SECONDS)
            self._wake.clear()
            self._hurry.clear()
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
                        self._queue.append((self._closing_record(), None, None))
                        if not self._drain():
                            self._closed = False
                            backoff = self._retry_interval / 20
                            continue
                if self._closed:
                    if not self._witness_close():
                        backoff = self._retry_interval / 20
                        continue
                    self._close_sink()
                    return

    def _drain(self) -> bool:
        """Write everything queued; False (and unhealthy) at the first failure."""
        while True:
            try:
                if not self._batch:
                    room = self._witness_room()
                    released = time.perf_counter()
                    while self._queue and len(self._batch) < room:
                        queued = self._queue.popleft()
                        self._batch.append(self._seal(queued))
                        self._batch_waiters.append(queued[2])
                        if time.perf_counter() - released >= YIELD_AFTER_SECONDS:
                            # Sealing is pure CPU under the GIL: let the event loop in now
                            # and then, or a burst would hold it for a switch interval.
                            time.sleep(0)
                            released = time.perf_counter()
                if not self._batch:
                    self.sink.tick()
                    self._publish_head(due_only=True)
                    return True
                self.sink.write(self._batch)
            except SinkError as exc:
                self._stored(exc.written)
                self._failed(exc)
                return False
            except Exception as exc:  # a sink bug must not end the thread: retry
                self._failed(exc)
                return False
            self._stored(len(self._batch))
            self.batches += 1
            if not self.healthy:
                log.warning("audit_sink_recovered", sink=self.sink.name, failures=self.failures)
            self.healthy = True
            try:
                self._publish_head(due_only=True)
            except WitnessError as exc:
                self._failed(exc)
                return False

    def _stored(self, count: int) -> None:
        """The first ``count`` records of the batch are stored: tell whoever waits for them."""
        if count <= 0:
            return
        last = self._batch[count - 1]
        self._written_seq = int(last.record["seq"])
        self._written_hash = line_hash(last.line)
        settle(self._batch_waiters[:count])
        del self._batch[:count]
        del self._batch_waiters[:count]
        self.written += count

    def _seal(self, queued: Queued) -> Sealed:
        record, context, _ = queued
        document, event_type = render(record, self.record_format, context)
        sealed, line = self.chain.seal(document)
        return Sealed(sealed, line, event_type)

    # -- the witnessed head ----------------------------------------------------------------

    def _witness_room(self) -> int:
        """How many records the next batch may hold: never past ``every`` unwitnessed ones."""
        if self._witness is None:
            return self.sink.batch_size
        room = self._witnessed_seq + self._witness.every - self._written_seq
        if room <= 0:
            self._publish_head(due_only=False)  # may raise WitnessError: the writer retries
            room = self._witness.every
        return min(self.sink.batch_size, room)

    def _publish_head(self, *, due_only: bool, closed: bool = False) -> None:
        policy = self._witness
        if policy is None or (self._written_seq == self._witnessed_seq and not closed):
            return
        now = time.monotonic()
        if (
            due_only
            and self._written_seq - self._witnessed_seq < policy.every
            and now - self._witnessed_at < policy.interval
        ):
            return
        head = Head(
            self.chain.chain_id,
            self._written_seq,
            self._written_hash,
            timestamp(),
            closed,
            policy.every,
        ).sealed(policy.key)
        for witness in policy.witnesses:
            witness.publish(self.chain.chain_id, head)
        self._witnessed_seq = self._written_seq
        self._witnessed_at = now

    def _witness_close(self) -> bool:
        if self._witness is None or self._witness_closed:
            return True
        try:
            self._publish_head(due_only=False, closed=True)
        except WitnessError as exc:
            self._failed(exc)
            return False
        self._witness_closed = True
        for witness in self._witness.witnesses:
            with contextlib.suppress(Exception):
                witness.close()
        return True

    # -- failures ------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = str(exc)
        was_healthy, self.healthy = self.healthy, False  # before anyone waiting hears of it
        # Whoever waits for a record of this batch hears now, not at its deadline; the
        # record stays in the batch and is written once the sink recovers.
        settle(self._batch_waiters, SinkError(f"audit sink {self.sink.name} failed: {exc}"))
        self._batch_waiters = [None] * len(self._batch_waiters)
        now = time.monotonic()
        if was_healthy or now - self._last_alert >= ALERT_EVERY_SECONDS:
            self._last_alert = now
            log.error(
                "audit_sink_failed",
                sink=self.sink.name,
                error=str(exc),
                pending=self.depth(),
                failures=self.failures,
            )

    def _close_sink(self) -> None:
        try:
            self.sink.close()
        except Exception as exc:
            log.error("audit_sink_close_failed", sink=self.sink.name, error=str(exc))
