"""The messaging sink against the real RabbitMQ: an oslo.messaging notification listener
reads back every record, sealed and in order, through a broker outage too.

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), or $NOVA_GATEWAY_RABBIT_URL. Missing, the
tests skip; under CI=true they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.audit.chain import Where, line_of, read_entry, verify
from tests.support.audit import (
    KEY,
    Answer,
    audit_overrides,
    send,
    simulator,
    write_key,
)
from tests.support.bus import broker_address, listener, require_rabbit
from tests.support.gateway import base_url, running_gateway
from tests.support.waiting import wait_until

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")


@pytest.fixture(scope="module")
def rabbit() -> str:
    return require_rabbit()


def check_chain(payloads: list[dict[str, Any]]) -> Any:
    lines = [line_of(payload) for payload in payloads]
    [report] = verify([read_entry(Where("bus", n + 1), line, KEY) for n, line in enumerate(lines)])
    return report


async def test_records_reach_a_notification_listener(rabbit: str, tmp_path: Path) -> None:
    topic = exchange = f"nova_gateway_audit_test_{uuid.uuid4().hex[:8]}"
    overrides = audit_overrides(
        tmp_path / "trail",
        write_key(tmp_path),
        sinks=["messaging", "file"],
        messaging_transport_url=rabbit,
        messaging_topics=[topic],
        messaging_exchange=exchange,
    )
    answers: list[Answer] = []
    with listener(rabbit, topic, exchange) as received:
        async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
            base = base_url(listeners)
            action = f"/v2.1/servers/{sim.seeded('p1')}/action"
            answers.append(
                await send(base, "POST", action, body={"changePassword": {"adminPass": "S3CR3T"}})
            )
            answers.append(await send(base, "POST", action, body={"pause": None}))
            answers.append(
                await send(base, "POST", action, body={"unpause": None}, token="carol:p1:reader")
            )
        # opened, 2 x (decision, outcome), 1 request, closed: delivered (and confirmed by
        # the broker) before the gateway finished closing.
        await wait_until(lambda: len(received.items) >= 7, timeout=20, what="7 notifications")
    assert [answer.status for answer in answers] == [202, 202, 403]
    event_types = [event_type for event_type, _, _ in received.items]
    assert event_types == [
        "nova_gateway.audit.chain",
        *["audit.http.request", "audit.http.response"] * 2,  # written ahead, then answered
        "audit.http.response",  # the refusal: one record, after the answer
        "nova_gateway.audit.chain",
    ]
    assert {publisher for _, _, publisher in received.items} == {
        f"nova-gateway.{socket.gethostname()}"
    }
    payloads = received.payloads()
    pending = [payloads[1], payloads[3]]
    assert [event["outcome"] for event in pending] == ["pending", "pending"]
    assert [p["id"] for p in pending] == [payloads[2]["id"], payloads[4]["id"]]
    events = [payloads[2], payloads[4], payloads[5]]
    assert [event["action"] for event in events] == [
        "update/changePassword", "update/pause", "update/unpause",
    ]  # fmt: skip
    assert [event["outcome"] for event in events] == ["success", "success", "failure"]
    assert [event["reason"]["reasonCode"] for event in events] == ["202", "202", "403"]
    gateway_records = [event["attachments"][0]["content"] for event in events]
    assert [r["global_request_id"] for r in gateway_records] == [a.global_id for a in answers]
    assert [r["event"] for r in gateway_records] == ["outcome", "outcome", "request"]
    assert "S3CR3T" not in repr(received.payloads())
    report = check_chain(received.payloads())
    assert report.problem is None and report.closed and report.last_seq == 7


class Forwarder:
    """A loopback TCP relay in front of RabbitMQ that a test can take down and bring back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._links):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._links -= {writer, up_writer}


@contextlib.asynccontextmanager
async def forwarder() -> AsyncIterator[Forwarder]:
    relay = Forwarder(broker_address())
    await relay.up()
    try:
        yield relay
    finally:
        with contextlib.suppress(Exception):
            await relay.down()


async def test_broker_outage_fails_closed_and_loses_nothing(rabbit: str, tmp_path: Path) -> None:
    topic = exchange = f"nova_gateway_audit_test_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(rabbit)
    answers: list[Answer] = []
    with listener(rabbit, topic, exchange) as received:
        async with forwarder() as relay, simulator() as sim:
            via_relay = f"rabbit://{parts.username}:{parts.password}@127.0.0.1:{relay.port}/"
            overrides = audit_overrides(
                tmp_path / "trail",
                write_key(tmp_path),
                sinks=["messaging"],
                messaging_transport_url=via_relay,
                messaging_topics=[topic],
                messaging_exchange=exchange,
                messaging_format="json",
            )
            async with running_gateway(sim.url, overrides) as listeners:
                base = base_url(listeners)
                audit = listeners.gate.audit
                assert audit is not None
                answers.append(await send(base, "GET", "/v2.1/servers"))
                await wait_until(lambda: audit.depth() == 0, what="first delivery")
                await relay.down()
                answers.append(await send(base, "GET", "/v2.1/servers"))  # admitted
                await wait_until(lambda: not audit.healthy, timeout=20, what="sink failure")
                refused = await send(base, "GET", "/v2.1/servers")
                answers.append(refused)
                assert refused.status == 503
                await relay.up()
                await wait_until(
                    lambda: audit.healthy and audit.depth() == 0, timeout=30, what="recovery"
                )
                answers.append(await send(base, "GET", "/v2.1/servers"))
        await wait_until(lambda: len(received.items) >= 6, timeout=20, what="6 notifications")
    assert [answer.status for answer in answers] == [200, 200, 503, 200]
    payloads = received.payloads()
    delivered = [p.get("global_request_id") for p in payloads if p.get("event") == "request"]
    assert delivered == [answer.global_id for answer in answers]  # all, once, in order
    report = check_chain(payloads)
    assert report.problem is None and report.closed
