"""The notification feed: a private AMQP queue on Nova's exchange, read in a thread.

Owns the connection, the queue (exclusive: the broker deletes it when the connection ends,
kill -9 included), reconnecting, the heartbeat that proves the path and the hand-off of
parsed events to subscribers on the event loop; it must never block the event loop, keep
or log a message's secrets, nor consume from a queue it did not declare.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import kombu
import structlog

from gateway.notifications.events import InstanceEvent, parse_instance_event, unwrap

log = structlog.get_logger(__name__)

Subscriber = Callable[[InstanceEvent], None]

HEARTBEAT_HEADER = "x-nova-gateway-heartbeat"
AMQP_HEARTBEAT_SECONDS = 10  # the broker drops a silent connection (and its queue) after 2x
CONNECT_TIMEOUT_SECONDS = 2.0
RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
# An idle exclusive queue is deleted with its connection; x-expires also covers a broker
# that keeps a half-open connection alive for a while.
QUEUE_EXPIRY_MS = 60_000
# Messages read but not yet handled by the event loop; past this the feed drops the
# connection (and its queue): a new epoch, so nothing learnt before the gap is trusted.
MAX_BACKLOG = 10_000
DELAY_SAMPLES = 4096
# oslo.messaging routes a notification by ``<topic>.<priority>``: Nova's failures
# (instance.<action>.error, priority ERROR) come under .error, everything else under .info.
PRIORITIES = ("info", "error")
_SCHEMES = {"rabbit": "amqp", "amqp": "amqp", "amqps": "amqps"}


class FeedOverflow(Exception):
    """The event loop fell too far behind; the connection is dropped and made anew."""


class FeedConfigError(ValueError):
    """A transport URL the feed cannot use (the message never shows the password)."""


def broker_urls(transport_url: str) -> list[str]:
    """kombu URLs (failover order) for an oslo.messaging transport URL.

    ``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost`` is oslo.messaging's form;
    ``amqp://`` and ``amqps://`` (TLS) are accepted too. An empty virtual host is ``/``.
    """
    parts = urlsplit(transport_url)
    scheme = _SCHEMES.get(parts.scheme)
    if scheme is None:
        raise FeedConfigError(f"scheme {parts.scheme!r} is not one of {sorted(_SCHEMES)}")
    vhost = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    urls = []
    for host in parts.netloc.split(","):
        one = urlsplit(f"//{host}")
        if not one.hostname:
            raise FeedConfigError("a host of the transport URL is empty")
        credentials = ""
        if one.username is not None:
            credentials = quote(unquote(one.username), safe="")
            if one.password is not None:
                credentials += ":" + quote(unquote(one.password), safe="")
            credentials += "@"
        hostname = f"[{one.hostname}]" if ":" in one.hostname else one.hostname
        port = f":{one.port}" if one.port else ""
        urls.append(f"{scheme}://{credentials}{hostname}{port}/{quote(vhost or '/', safe='')}")
    return urls


def queue_name(prefix: str) -> str:
    """``<prefix>.<host>.<pid>.<random>``: one private queue per worker process (each
    connection adds its epoch: a queue the broker still holds for a dead connection, until
    its heartbeat times out, must not block the next one)."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    return f"{prefix}.{host[:64]}.{os.getpid()}.{secrets.token_hex(4)}"


@dataclass(frozen=True)
class FeedSettings:
    transport_url: str
    exchange: str
    topics: Sequence[str]
    queue_prefix: str
    heartbeat_interval: float
    # kombu's ``ssl`` argument, from [oslo_messaging_rabbit] (gateway.tls.messaging).
    ssl: dict[str, Any] | bool = False


@dataclass
class FeedCounters:
    """Plain integers the metrics sampler reads (written on the event loop only)."""

    instance_events: int = 0
    heartbeats: int = 0
    ignored: int = 0
    connects: int = 0
    disconnects: int = 0
    # Seconds from Nova's timestamp to arrival (publisher's clock vs ours), newest last.
    delays: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=DELAY_SAMPLES)
    )


class NotificationFeed:
    """Reads Nova's versioned notifications and hands ``instance.*`` events to subscribers.

    Every (re)connection starts a new *epoch*: whatever was learnt in an earlier one may
    have missed messages sent while no queue existed. ``heartbeat_age`` is how long ago
    the feed's own heartbeat (published to its queue every ``heartbeat_interval``) last
    came through behind everything queued before it.
    """

    def __init__(self, settings: FeedSettings) -> None:
        self.settings = settings
        self._queue_base = queue_name(settings.queue_prefix)
        self.queue = f"{self._queue_base}.1"  # the current connection's queue
        self._urls = broker_urls(settings.transport_url)
        self._subscribers: list[Subscriber] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Written by the thread only / by the loop only: their difference is the backlog.
        self._handed = 0
        self._taken = 0
        self._overflow = False  # thread only
        # Callbacks for the event loop, in order (appended by the thread, taken by the loop).
        self._inbox: collections.deque[tuple[Callable[..., None], tuple[Any, ...]]] = (
            collections.deque()
        )
        self._drain_scheduled = False
        # Event-loop state.
        self.connected = False
        self.epoch = 0
        self.last_heartbeat: float | None = None  # monotonic, when the loop took it
        self.heartbeat_delay: float | None = None  # publish -> taken by the loop, seconds
        self.last_error: str | None = None
        self.counters = FeedCounters()

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` on the event loop with every ``instance.*`` event, in order.

        A subscriber must be quick and must not raise (an exception is logged and dropped).
        """
        self._subscribers.append(subscriber)

    # -- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="notification-feed", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        # Closing the connection makes the broker delete the exclusive queue.
        await asyncio.to_thread(thread.join, CONNECT_TIMEOUT_SECONDS * 3)
        self.connected = False

    # -- what the event loop asks ----------------------------------------------------------

    def heartbeat_age(self, now: float | None = None) -> float | None:
        if self.last_heartbeat is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_heartbeat

    def live_epoch(self, max_age: float, now: float | None = None) -> int | None:
        """The current epoch if the feed is connected and its heartbeat is younger than
        ``max_age``; None while it is down, lagging or not yet proven."""
        age = self.heartbeat_age(now)
        if not self.connected or age is None or age > max_age:
            return None
        return self.epoch

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        epoch = 0
        delay = RECONNECT_MIN_SECONDS
        while not self._stopping.is_set():
            try:
                epoch += 1
                if self._consume(epoch):
                    delay = RECONNECT_MIN_SECONDS
            except Exception as exc:  # every broker or socket failure: reconnect
                self._post(self._on_disconnected, _describe(exc))
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _consume(self, epoch: int) -> bool:
        """One connection's life; True if it got as far as consuming."""
        settings = self.settings
        self._overflow = False
        with kombu.Connection(
            ";".join(self._urls),
            heartbeat=AMQP_HEARTBEAT_SECONDS,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            ssl=settings.ssl,
        ) as connection:
            connection.ensure_connection(max_retries=1)
            exchange, channel = self._exchange(connection)
            name = f"{self._queue_base}.{epoch}"
            queue = kombu.Queue(
                name,
                bindings=[
                    kombu.binding(exchange, routing_key=f"{topic}.{priority}")
                    for topic in settings.topics
                    for priority in PRIORITIES
                ],
                durable=False,
                exclusive=True,
                auto_delete=True,
                queue_arguments={"x-expires": QUEUE_EXPIRY_MS},
                channel=channel,
            )
            queue.declare()
            producer = kombu.Producer(channel)
            consumer = kombu.Consumer(
                channel, queues=[queue], no_ack=True, on_message=lambda m: self._receive(epoch, m)
            )
            with consumer:
                self._post(self._on_connected, epoch, name)
                next_beat = 0.0
                while not self._stopping.is_set():
                    now = time.monotonic()
                    if now >= next_beat:
                        producer.publish(
                            b"{}",
                            exchange="",
                            routing_key=name,
                            headers={HEARTBEAT_HEADER: now},
                            content_type="application/json",
                            retry=False,
                        )
                        next_beat = now + settings.heartbeat_interval
                    with contextlib.suppress(TimeoutError):
                        connection.drain_events(timeout=max(0.01, min(0.25, next_beat - now)))
                    if self._overflow:
                        raise FeedOverflow(f"more than {MAX_BACKLOG} messages waiting")
                    connection.heartbeat_check()
            return True

    def _exchange(self, connection: kombu.Connection) -> tuple[kombu.Exchange, Any]:
        """Nova's exchange as Nova declared it (durable or not: never redeclared), declared
        here with Nova's defaults only if absent; and the channel to go on with."""
        name = self.settings.exchange
        channel = connection.channel()
        try:
            kombu.Exchange(name, type="topic")(channel).declare(passive=True)
        except connection.channel_errors:
            # Not there yet (Nova never published); the refusal closed the channel.
            channel = connection.channel()
            kombu.Exchange(name, type="topic", durable=False)(channel).declare()
        return kombu.Exchange(name, type="topic", no_declare=True), channel

    def _receive(self, epoch: int, message: Any) -> None:
        if self._overflow or self._handed - self._taken >= MAX_BACKLOG:
            # The event loop is not keeping up: drop this connection and start anew.
            self._overflow = True
            return
        headers = getattr(message, "headers", None) or {}
        sent = headers.get(HEARTBEAT_HEADER)
        if isinstance(sent, int | float):
            self._hand(epoch, float(sent))
            return
        body = unwrap(message.body)
        event = parse_instance_event(body) if body is not None else None
        self._hand(epoch, event)

    def _hand(self, epoch: int, item: InstanceEvent | float | None) -> None:
        self._handed += 1
        self._post(self._take, epoch, item)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Hand ``callback(*args)`` to the event loop, in order with everything handed
        before. One wake-up of the loop per batch, not per message: each wake-up is a
        write to asyncio's self-pipe and a turn of the loop, which cost more than parsing
        the notification when Nova is busy."""
        loop = self._loop
        if loop is None:
            return
        self._inbox.append((callback, args))
        if self._drain_scheduled:
            return  # the loop has not run the last drain yet: it will take this too
        self._drain_scheduled = True
        try:
            loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping.set()

    def _drain(self) -> None:
        # Cleared before taking: whatever the thread appends from now on is either taken
        # by this drain or schedules the next one (the GIL orders both sides).
        self._drain_scheduled = False
        inbox = self._inbox
        while inbox:
            callback, args = inbox.popleft()
            try:
                callback(*args)
            except Exception:  # one failure must not strand what follows it
                log.exception("notification_feed_callback_failed")

    # -- on the event loop -------------------------------------------------------------

    def _on_connected(self, epoch: int, queue: str) -> None:
        self.connected = True
        self.epoch = epoch
        self.queue = queue
        self.last_heartbeat = None
        self.heartbeat_delay = None
        self.counters.connects += 1
        log.info("notification_feed_connected", queue=self.queue, epoch=epoch)

    def _on_disconnected(self, why: str) -> None:
        if self.connected:
            self.counters.disconnects += 1
            log.warning("notification_feed_disconnected", queue=self.queue, error=why)
        elif why != self.last_error:
            log.warning("notification_feed_unavailable", queue=self.queue, error=why)
        self.connected = False
        self.last_error = why

    def _take(self, epoch: int, item: InstanceEvent | float | None) -> None:
        self._taken += 1
        if epoch != self.epoch or not self.connected:
            return  # from a connection that is no longer trusted
        if isinstance(item, float):
            now = time.monotonic()
            self.last_heartbeat = now
            self.heartbeat_delay = now - item
            self.counters.heartbeats += 1
            return
        if item is None:
            self.counters.ignored += 1
            return
        self.counters.instance_events += 1
        if item.published is not None:
            self.counters.delays.append(time.time() - item.published.timestamp())
        for subscriber in self._subscribers:
            try:
                subscriber(item)
            except Exception:
                log.exception("notification_subscriber_failed", event_type=item.event_type)


def _describe(exc: BaseException) -> str:
    """An error's type and text, never the URL's password (kombu's texts do not hold it)."""
    text = str(exc).split("\n", 1)[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
