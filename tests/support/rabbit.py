"""The real RabbitMQ for tests: its URL, per-run names, queue checks and a short outage.

Owns test wiring only; it must never delete or purge a queue the test did not cause, and
an outage it makes is always ended (``broker_outage`` restarts the broker in a finally).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

from tests.conftest import skip_or_fail

RABBIT_URL = os.environ.get("NOVA_GATEWAY_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
# The queue Nova itself declares for its versioned notifications (never the gateway's).
VERSIONED_QUEUE = "versioned_notifications.info"


def broker_address() -> tuple[str, int]:
    parts = urlsplit(RABBIT_URL)
    return parts.hostname or "127.0.0.1", parts.port or 5672


def require_rabbit() -> str:
    """The broker's URL; skips (fails under CI=true) when it does not answer."""
    try:
        socket.create_connection(broker_address(), timeout=2).close()
    except OSError as exc:
        skip_or_fail(f"RabbitMQ not reachable at {broker_address()}: {exc}")
    return RABBIT_URL


def unique(name: str) -> str:
    """A per-run name, so that tests running at once never share a topic or queue."""
    return f"{name}_{uuid.uuid4().hex[:10]}"


def _kombu_url() -> str:
    parts = urlsplit(RABBIT_URL)
    return f"amqp://{parts.netloc}/%2F"


def queues_named(prefix: str) -> list[str]:
    """Queues whose name starts with ``prefix`` (rabbitmqctl; the broker is local here)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        skip_or_fail("rabbitmqctl is not installed: cannot list the broker's queues")
    done = subprocess.run(
        [str(ctl), "-q", "list_queues", "name"], capture_output=True, text=True, timeout=30
    )
    return [line.strip() for line in done.stdout.splitlines() if line.startswith(prefix)]


def purge(queue: str) -> None:
    """Empty ``queue`` if it exists (only for queues the test's own calls filled)."""
    import kombu

    with kombu.Connection(_kombu_url(), connect_timeout=2) as connection:
        with contextlib.suppress(*connection.channel_errors):
            connection.channel().queue_purge(queue=queue)


@contextlib.contextmanager
def broker_outage() -> Iterator[None]:
    """The broker's application stopped for the block (the node stays up), then started
    again whatever happens: other tests share it, keep the block to a few seconds."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        skip_or_fail("rabbitmqctl is not installed: cannot stop and restart the broker")
    subprocess.run([str(ctl), "-q", "stop_app"], check=True, timeout=60, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([str(ctl), "-q", "start_app"], check=True, timeout=120, capture_output=True)
