"""RabbitMQ over TLS with oslo.messaging's own ``[oslo_messaging_rabbit]`` options read from
the gateway's configuration file: they reach the audit sink's transport.

This machine's RabbitMQ has no TLS listener (``rabbitmq-diagnostics listeners``: AMQP on
5672 only), and starting a second broker node per test run would cost far more than the
test. So a TLS-terminating relay made here (tests/support/tls_lab.py), with a certificate
of this run's CA and asking for a client certificate, stands in front of the real broker:
the sink's connection is a real TLS handshake verified with ``ssl_ca_file``, and its
records reach a real queue. A plain consumer on 5672 reads them back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway import config
from gateway.audit.sinks import MessagingSink, Sealed, SinkError
from gateway.audit.trail import build_audit_trail
from gateway.config import ConfigError
from gateway.tls.messaging import RabbitTLS, messaging_conf
from tests.support.audit import write_key
from tests.support.bus import broker_address, listener, require_rabbit
from tests.support.tls_lab import (
    Authority,
    Issued,
    TlsRelay,
    every_log_level,  # noqa: F401
    tls_relay,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("every_log_level")


@dataclass(frozen=True)
class Lab:
    rabbit: str  # the plain broker URL (for the consumer)
    authority: Authority
    stranger: Authority
    client: Issued  # the gateway's client certificate
    relay: TlsRelay  # TLS in front of the real broker; asks for client certificates
    directory: Path

    def url(self) -> str:
        """The sink's transport URL: the relay, by a name its certificate carries."""
        return f"rabbit://guest:guest@localhost:{self.relay.port}/"

    def config_file(self, name: str, rabbit_section: str, extra: str = "") -> Path:
        path = self.directory / f"{name}.conf"
        path.write_text(f"{extra}[oslo_messaging_rabbit]\n{rabbit_section}")
        return path

    def tls_section(self, ca: Authority | None = None, client: bool = True) -> str:
        lines = ["ssl = true", f"ssl_ca_file = {(ca or self.authority).cert_file}"]
        if client:
            lines += [f"ssl_cert_file = {self.client.cert_file}"]
            lines += [f"ssl_key_file = {self.client.key_file}"]
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    rabbit = require_rabbit()
    directory = tmp_path_factory.mktemp("tls-rabbit")
    authority = Authority.create(directory / "ca", "Deployment CA")
    stranger = Authority.create(directory / "other", "Stranger CA")
    broker = authority.issue("rabbitmq")
    client = authority.issue("nova-gateway", client=True)
    context = authority.server_context(broker, client_ca=authority.cert_file)
    with tls_relay(context, broker_address(rabbit)[1]) as relay:
        yield Lab(rabbit, authority, stranger, client, relay, directory)


def names() -> tuple[str, str]:
    unique = uuid.uuid4().hex[:8]
    return f"nova_gateway_tls_test_{unique}", f"nova_gateway_tls_test_{unique}"


def sealed(seq: int) -> Sealed:
    record = {"chain": "tls-test", "seq": seq, "request_id": f"req-{uuid.uuid4()}"}
    return Sealed(record, f'{{"seq": {seq}}}', "audit.http.response")


async def test_the_sink_publishes_through_tls_verified_with_ssl_ca_file(lab: Lab) -> None:
    topic, exchange = names()
    conf = lab.config_file("good", lab.tls_section())
    handshakes = lab.relay.handshakes
    with listener(lab.rabbit, topic, exchange) as received:
        sink = MessagingSink(
            lab.url(), [topic], "nova-gateway.test", exchange=exchange, config_files=[str(conf)]
        )
        try:
            await asyncio.to_thread(sink.write, [sealed(1), sealed(2)])
        finally:
            await asyncio.to_thread(sink.close)
        await wait_until(lambda: received.count() >= 2, timeout=20, what="2 notifications")
    assert [payload["seq"] for payload in received.payloads()] == [1, 2]
    assert lab.relay.handshakes > handshakes  # it went over TLS, to the relay


@pytest.mark.parametrize("setting", ["another CA", "no client certificate"])
async def test_a_broker_we_cannot_verify_or_that_refuses_us_gets_nothing(
    lab: Lab, setting: str
) -> None:
    topic, exchange = names()
    section = (
        lab.tls_section(ca=lab.stranger)
        if setting == "another CA"
        else lab.tls_section(client=False)
    )
    conf = lab.config_file(setting.replace(" ", "-"), section)
    failed = lab.relay.failed_handshakes
    with listener(lab.rabbit, topic, exchange) as received:
        sink = MessagingSink(
            lab.url(), [topic], "nova-gateway.test", exchange=exchange, config_files=[str(conf)]
        )
        try:
            with pytest.raises(SinkError, match="notification not delivered"):
                await asyncio.to_thread(sink.write, [sealed(1)])
        finally:
            await asyncio.to_thread(sink.close)
        assert received.count() == 0
    assert lab.relay.failed_handshakes > failed  # refused in the handshake, not later


async def test_the_gateways_audit_trail_reads_the_section_from_its_own_file(
    lab: Lab, tmp_path: Path
) -> None:
    """From the command line's --config-file to the transport: the trail's first record
    (the chain's opening) arrives through the TLS relay."""
    topic, exchange = names()
    key = write_key(tmp_path)
    audit = (
        "[audit]\nenabled = true\nsinks = messaging\n"
        f"hmac_key_file = {key}\nmessaging_transport_url = {lab.url()}\n"
        f"messaging_topics = {topic}\nmessaging_exchange = {exchange}\n"
    )
    conf_file = lab.config_file("gateway", lab.tls_section(), extra=audit)
    conf = config.load(["--config-file", str(conf_file)])
    with listener(lab.rabbit, topic, exchange) as received:
        trail = build_audit_trail(conf)
        assert trail is not None
        try:
            await wait_until(lambda: received.count() >= 1, timeout=20, what="the chain opening")
        finally:
            await trail.close()
    assert received.items[0][0] == "nova_gateway.audit.chain"


def test_tls_files_without_ssl_refuse_to_start(lab: Lab) -> None:
    conf = lab.config_file("no-ssl", f"ssl_ca_file = {lab.authority.cert_file}\n")
    with pytest.raises(ConfigError, match=r"\[oslo_messaging_rabbit\] ssl_ca_file: set, but ssl"):
        MessagingSink(lab.url(), ["t"], "nova-gateway.test", config_files=[str(conf)])


def test_the_url_query_turns_tls_on_as_oslo_messaging_reads_it(lab: Lab) -> None:
    conf = lab.config_file("url-ssl", f"ssl_ca_file = {lab.authority.cert_file}\n")
    with pytest.raises(ConfigError):
        MessagingSink(lab.url(), ["t"], "nova-gateway.test", config_files=[str(conf)])
    url = lab.url() + "?ssl=true"
    MessagingSink(url, ["t"], "nova-gateway.test", config_files=[str(conf)]).close()


def test_tls_without_a_ca_file_warns_that_hostnames_go_unchecked(lab: Lab) -> None:
    conf = lab.config_file("no-ca", "ssl = true\n")
    with capture_logs() as logs:
        sink = MessagingSink(lab.url(), ["t"], "nova-gateway.test", config_files=[str(conf)])
        sink.close()
    [warning] = [entry for entry in logs if entry["event"] == "rabbit_tls_hostname_unchecked"]
    assert warning["log_level"] == "warning" and "ssl_ca_file" in warning["detail"]
    assert "guest" not in repr(logs)  # the transport URL's password is never logged


@pytest.mark.parametrize(
    ("ca", "names", "connects"),
    [
        ("deployment", ("localhost", "127.0.0.1"), True),
        ("stranger", ("localhost", "127.0.0.1"), False),
        ("deployment", ("rabbit.example.org",), False),  # not the name connected to
    ],
)
def test_a_kombu_connection_gets_the_same_tls_and_always_checks_the_name(
    lab: Lab, ca: str, names: tuple[str, ...], connects: bool
) -> None:
    """For a consumer made with kombu itself (as the server-facts feed is): the same
    section, and the broker's name checked even though oslo.messaging would not."""
    import kombu

    authority = lab.authority if ca == "deployment" else lab.stranger
    conf = lab.config_file(f"kombu-{ca}-{len(names)}", lab.tls_section(ca=authority))
    tls = RabbitTLS.of(messaging_conf([str(conf)]), lab.url())
    broker = lab.authority.server_context(lab.authority.issue("rabbitmq", hosts=names))
    with tls_relay(broker, broker_address(lab.rabbit)[1]) as relay:
        connection = kombu.Connection(
            f"amqp://guest:guest@localhost:{relay.port}//", ssl=tls.kombu_ssl(), connect_timeout=5
        )
        try:
            # One attempt, no pause before giving up (kombu waits 2 s by default).
            once = {"max_retries": 1, "interval_start": 0, "interval_step": 0}
            if connects:
                connection.ensure_connection(**once)
                assert connection.connected
            else:
                with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED"):
                    connection.ensure_connection(**once)
        finally:
            connection.release()


@pytest.mark.parametrize("ca", ["deployment", "stranger"])
async def test_the_server_facts_feed_reads_the_section_and_verifies_the_broker(
    lab: Lab, ca: str
) -> None:
    """The gateway's own feed (server facts, execution evidence), built from its file: its
    heartbeat makes the round trip through the TLS relay and the real broker; a broker of
    another CA is never consumed from."""
    from gateway.web.app import build_feed

    authority = lab.authority if ca == "deployment" else lab.stranger
    facts = f"[server_facts]\nnotifications_url = {lab.url()}\nheartbeat_interval = 0.2\n"
    conf_file = lab.config_file(f"feed-{ca}", lab.tls_section(ca=authority), extra=facts)
    feed = build_feed(config.load(["--config-file", str(conf_file)]))
    assert feed is not None
    await feed.start()
    try:
        if ca == "deployment":
            await wait_until(
                lambda: feed.live_epoch(max_age=5) is not None, timeout=20, what="a heartbeat"
            )
        else:
            await wait_until(lambda: feed.last_error is not None, timeout=20, what="the refusal")
            assert "CERTIFICATE_VERIFY_FAILED" in (feed.last_error or "")
            assert not feed.connected and feed.last_heartbeat is None
    finally:
        await feed.stop()
