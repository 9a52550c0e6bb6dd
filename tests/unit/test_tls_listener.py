"""gateway/tls/listener.py: a listener's certificate re-read (on demand, or when its files
change) while connections made before keep working, over real loopback TLS sockets with
certificates made for this run."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from structlog.testing import capture_logs

from gateway.config import ConfigError
from gateway.tls.contexts import ServerFiles
from gateway.tls.listener import ListenerSettings, ListenerTLS
from tests.support.tls_lab import (
    Authority,
    Issued,
    every_log_level,  # noqa: F401
)

pytestmark = pytest.mark.usefixtures("every_log_level")


def install(issued: Issued, cert_file: Path, key_file: Path) -> None:
    """Renew in place, as certbot or cert-manager would: same paths, new contents."""
    shutil.copyfile(issued.key_file, key_file)
    shutil.copyfile(issued.cert_file, cert_file)


class Echo:
    """A TLS echo server on the listener's context; connections stay open until closed."""

    def __init__(self, tls: ListenerTLS) -> None:
        self.tls = tls
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Echo:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ssl.SSLError):
                while line := await reader.readline():
                    writer.write(line)
                    await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=self.tls.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()

    async def connect(
        self, client: ssl.SSLContext
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=client, server_hostname="localhost"
        )


def serial_of(writer: asyncio.StreamWriter) -> str:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping\n")
    await writer.drain()
    return await asyncio.wait_for(reader.readline(), 5)


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Authority, Issued, Path, Path]]:
    authority = Authority.create(tmp_path / "ca")
    first = authority.issue("gateway")
    cert_file, key_file = tmp_path / "tls.pem", tmp_path / "tls.key"
    install(first, cert_file, key_file)
    yield authority, first, cert_file, key_file


def settings(cert_file: Path, key_file: Path, client_ca: Path | None = None) -> ListenerSettings:
    files = ServerFiles(str(cert_file), str(key_file), str(client_ca) if client_ca else None)
    return ListenerSettings("api", "[gateway] tls_*", files)


async def test_a_renewed_certificate_serves_new_connections_and_old_ones_keep_working(
    setup: tuple[Authority, Issued, Path, Path],
) -> None:
    authority, first, cert_file, key_file = setup
    with capture_logs() as logs:
        tls = await ListenerTLS.load(settings(cert_file, key_file))
    assert tls.served.serial == first.serial_hex
    assert logs[0]["event"] == "tls_certificate_loaded" and logs[0]["why"] == "start"
    async with Echo(tls) as echo:
        old_reader, old_writer = await echo.connect(authority.client_context())
        assert serial_of(old_writer) == first.serial_hex
        assert await round_trip(old_reader, old_writer) == b"ping\n"
        renewed = authority.issue("gateway")
        install(renewed, cert_file, key_file)
        assert await tls.reload("SIGHUP")
        reader, writer = await echo.connect(authority.client_context())
        assert serial_of(writer) == renewed.serial_hex
        # The connection made before the reload: same certificate, still answering.
        assert await round_trip(old_reader, old_writer) == b"ping\n"
        assert serial_of(old_writer) == first.serial_hex
        assert await round_trip(reader, writer) == b"ping\n"
        for stream in (old_writer, writer):
            stream.close()


async def test_a_set_that_does_not_load_keeps_the_running_certificate(
    setup: tuple[Authority, Issued, Path, Path],
) -> None:
    authority, first, cert_file, key_file = setup
    tls = await ListenerTLS.load(settings(cert_file, key_file))
    other = authority.issue("gateway")
    shutil.copyfile(other.cert_file, cert_file)  # the key is still the old one: a mismatch
    with capture_logs() as logs:
        assert not await tls.reload("SIGHUP")
    [failed] = [entry for entry in logs if entry["event"] == "tls_reload_failed"]
    assert failed["serving"] == first.serial_hex and "tls.pem" in failed["error"]
    async with Echo(tls) as echo:
        _, writer = await echo.connect(authority.client_context())
        assert serial_of(writer) == first.serial_hex
        writer.close()


async def test_a_changed_file_is_picked_up_without_a_signal(
    setup: tuple[Authority, Issued, Path, Path],
) -> None:
    authority, _, cert_file, key_file = setup
    tls = await ListenerTLS.load(settings(cert_file, key_file))
    watcher = asyncio.create_task(tls.watch(0.02))
    try:
        renewed = authority.issue("gateway")
        install(renewed, cert_file, key_file)
        deadline = time.monotonic() + 10
        async with Echo(tls) as echo:
            while True:
                _, writer = await echo.connect(authority.client_context())
                served = serial_of(writer)
                writer.close()
                if served == renewed.serial_hex:
                    break
                assert time.monotonic() < deadline, "the renewed certificate was never served"
                await asyncio.sleep(0.02)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_a_new_client_ca_decides_the_next_handshakes(
    setup: tuple[Authority, Issued, Path, Path], tmp_path: Path
) -> None:
    authority, _, cert_file, key_file = setup
    old_ca = Authority.create(tmp_path / "old-ca", "Old operators CA")
    new_ca = Authority.create(tmp_path / "new-ca", "New operators CA")
    client_ca = tmp_path / "client-ca.pem"
    shutil.copyfile(old_ca.cert_file, client_ca)
    tls = await ListenerTLS.load(settings(cert_file, key_file, client_ca))
    old_operator, new_operator = (
        old_ca.issue("operator", client=True),
        new_ca.issue("operator", client=True),
    )

    async def accepted(echo: Echo, issued: Issued) -> bool:
        client = authority.client_context(issued)
        try:
            reader, writer = await echo.connect(client)
            answer = await round_trip(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            return False
        writer.close()
        return answer == b"ping\n"

    async with Echo(tls) as echo:
        assert await accepted(echo, old_operator)
        assert not await accepted(echo, new_operator)
        shutil.copyfile(new_ca.cert_file, client_ca)  # the old CA is withdrawn
        assert await tls.reload("SIGHUP")
        assert await accepted(echo, new_operator)
        assert not await accepted(echo, old_operator)


async def test_an_expired_certificate_is_served_with_a_warning(
    setup: tuple[Authority, Issued, Path, Path],
) -> None:
    authority, _, cert_file, key_file = setup
    install(authority.issue("gateway", valid_for=timedelta(minutes=-1)), cert_file, key_file)
    with capture_logs() as logs:
        await ListenerTLS.load(settings(cert_file, key_file))
    assert [entry["event"] for entry in logs] == ["tls_certificate_expired"]


async def test_missing_files_refuse_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[gateway\] tls_\*: .*missing.pem: no such file"):
        await ListenerTLS.load(settings(tmp_path / "missing.pem", tmp_path / "missing.key"))
