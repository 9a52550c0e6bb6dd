"""The real RabbitMQ for audit tests: a notification listener, queue clean-up, broker restarts.

Owns test plumbing around the shared broker; it must never touch a queue or exchange a test
did not declare itself, and it brings a broker it stopped back up before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import skip_or_fail

RABBIT_URL = os.environ.get("NOVA_GATEWAY_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
# Durable queues (and exchange) for a sink and a consumer that must survive a broker
# restart: oslo.messaging reads driver options from the transport URL's query.
DURABLE = "?amqp_durable_queues=true"
BROKER_TIMEOUT = 60.0


def broker_address(url: str = RABBIT_URL) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def require_rabbit(url: str = RABBIT_URL) -> str:
    """The broker URL, or a skip (a failure under CI=true) when it does not answer."""
    try:
        socket.create_connection(broker_address(url), timeout=2).close()
    except OSError as exc:
        skip_or_fail(f"RabbitMQ not reachable at {broker_address(url)}: {exc}")
    return url


class Received:
    """Notifications one oslo.messaging listener got: (event_type, payload, publisher)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any], str]] = []
        self.lock = threading.Lock()

    def info(
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any
    ) -> None:
        with self.lock:
            self.items.append((event_type, payload, publisher_id))

    def payloads(self) -> list[dict[str, Any]]:
        with self.lock:
            return [payload for _, payload, _ in self.items]

    def count(self) -> int:
        with self.lock:
            return len(self.items)


@contextlib.contextmanager
def listener(url: str, topic: str, exchange: str | None = None) -> Iterator[Received]:
    """An oslo.messaging notification listener on ``<topic>.info`` (of ``exchange``, else the
    control exchange); the queue, and an exchange the test named, are deleted after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import oslo_messaging  # type: ignore[import-untyped]  # ships no type hints
        from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([], project="audit-test-consumer", default_config_files=[], default_config_dirs=[])
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    received = Received()
    server = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(exchange=exchange, topic=topic)],
        [received],
        executor="threading",
    )
    server.start()
    try:
        yield received
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        delete_queues(url, [f"{topic}.info"], [exchange] if exchange else [])


def delete_queues(url: str, names: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    """Delete queues (and exchanges) this test declared: the broker is shared, never more."""
    import kombu

    with kombu.Connection(_amqp(url), connect_timeout=5) as connection:
        for name in names:
            with contextlib.suppress(Exception):
                connection.channel().queue_delete(name)
        for name in exchanges:
            with contextlib.suppress(Exception):
                connection.channel().exchange_delete(name)


def _amqp(url: str) -> str:
    """kombu's spelling of an oslo.messaging rabbit:// URL (default vhost)."""
    parts = urlsplit(url)
    return f"amqp://{parts.username}:{parts.password}@{parts.hostname}:{parts.port or 5672}//"


def rabbitmqctl() -> str | None:
    return shutil.which("rabbitmqctl")


@contextlib.asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """``rabbitmqctl stop_app`` now, ``start_app`` on leaving (also on error): the broker is
    shared, so the caller keeps the outage to a few seconds."""
    await _rabbitmqctl("stop_app")
    try:
        yield
    finally:
        await _rabbitmqctl("start_app")
        await asyncio.to_thread(wait_for_broker)


async def _rabbitmqctl(command: str) -> None:
    executable = rabbitmqctl()
    assert executable is not None
    process = await asyncio.create_subprocess_exec(
        executable, command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), BROKER_TIMEOUT)
    assert process.returncode == 0, f"rabbitmqctl {command}: {output.decode(errors='replace')}"


def wait_for_broker(timeout: float = BROKER_TIMEOUT) -> None:
    """Until the broker accepts AMQP connections again (polled, bounded)."""
    import kombu

    deadline = time.monotonic() + timeout
    while True:
        try:
            with kombu.Connection(_amqp(RABBIT_URL), connect_timeout=2) as connection:
                connection.connect()
                return
        except Exception:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
