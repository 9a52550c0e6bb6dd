"""A renewed listener certificate, as a process sees it: after SIGHUP (relayed by the
supervisor to every worker), and after a change of the files alone, new connections get
the new certificate while a keep-alive connection opened before keeps working."""

from __future__ import annotations

import asyncio
import http.client
import shutil
import signal
import ssl
from datetime import timedelta
from pathlib import Path

import aiohttp
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.upstream import FakeUpstream
from tests.support.gateway import start_gateway_process_async, with_noauth
from tests.support.processes import ServerProcess
from tests.support.tls_lab import Authority, Issued
from tests.support.waiting import wait_until


def install(issued: Issued, directory: Path) -> None:
    """Renew as a Kubernetes secret volume does: the files are links through a directory
    link that is swapped in one rename, so certificate and key change together."""
    version = directory / f"v-{issued.serial_hex}"
    version.mkdir()
    shutil.copyfile(issued.cert_file, version / "tls.pem")
    shutil.copyfile(issued.key_file, version / "tls.key")
    (directory / "data.new").symlink_to(version.name)
    (directory / "data.new").replace(directory / "data")
    for name in ("tls.pem", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(Path("data") / name)


class Client:
    """One HTTPS connection kept alive (http.client, run off the event loop)."""

    def __init__(self, port: int, authority: Authority) -> None:
        self.connection = http.client.HTTPSConnection(
            "localhost", port, context=authority.client_context(), timeout=10
        )

    def get(self, path: str = "/v2.1/flavors") -> int:
        self.connection.request("GET", path, headers={"X-Auth-Token": "alice:p1"})
        response = self.connection.getresponse()
        response.read()
        return response.status

    @property
    def local_port(self) -> int:
        assert self.connection.sock is not None
        return int(self.connection.sock.getsockname()[1])

    @property
    def serial(self) -> str:
        sock = self.connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return format(x509.load_der_x509_certificate(der).serial_number, "x")

    def close(self) -> None:
        self.connection.close()


async def served_serial(port: int, authority: Authority) -> str:
    """The serial a new connection is shown."""

    def fresh() -> str:
        client = Client(port, authority)
        try:
            assert client.get() == 200
            return client.serial
        finally:
            client.close()

    return await asyncio.to_thread(fresh)


async def wait_for_lines(process: ServerProcess, text: str, count: int) -> None:
    await wait_until(
        lambda: process.log_path.read_text().count(text) >= count, 15, f"{count} x {text!r}"
    )


async def expiry_metric(admin_port: int) -> float:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{admin_port}/metrics") as response:
            text = await response.text()
    [family] = [
        family
        for family in text_string_to_metric_families(text)
        if family.name == "nova_gateway_tls_certificate_expiry_timestamp_seconds"
    ]
    [sample] = [sample for sample in family.samples if sample.labels == {"listener": "api"}]
    return float(sample.value)


async def test_renewed_certificate_after_sighup_and_after_a_file_change(
    fake_upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    _, upstream_url = fake_upstream
    authority = Authority.create(tmp_path / "ca")
    # Each valid a day longer than the one before: the expiry metric tells them apart.
    first, second, third = (
        authority.issue("nova-gateway", valid_for=timedelta(days=days)) for days in (1, 2, 3)
    )
    install(first, tmp_path)
    sections = with_noauth(
        {
            "gateway": {
                "tls_cert_file": tmp_path / "tls.pem",
                "tls_key_file": tmp_path / "tls.key",
                "tls_reload_interval": 0.2,
            }
        }
    )
    lab = await start_gateway_process_async(
        upstream_url, tmp_path, tmp_path, sections, workers=2, ready_timeout=60
    )
    process, port, admin = lab.process, lab.api_port, lab.admin_port
    kept = Client(port, authority)
    try:
        assert process.url == f"https://127.0.0.1:{port}/v2.1"  # READY names the scheme
        assert await asyncio.to_thread(kept.get) == 200
        assert kept.serial == first.serial_hex
        assert await expiry_metric(admin) == first.not_after.timestamp()
        before = kept.local_port

        install(second, tmp_path)
        process._popen.send_signal(signal.SIGHUP)
        await wait_for_lines(process, '"why": "SIGHUP"', 2)  # both workers reloaded
        # Every new connection, whichever worker takes it, gets the renewed certificate.
        for _ in range(6):
            assert await served_serial(port, authority) == second.serial_hex
        # The connection opened before: the same socket, its certificate, still served.
        assert await asyncio.to_thread(kept.get) == 200
        assert (kept.local_port, kept.serial) == (before, first.serial_hex)

        noticed = process.log_path.read_text().count('"why": "files changed"')
        install(third, tmp_path)  # no signal: the workers notice the files changed
        await wait_for_lines(process, '"why": "files changed"', noticed + 2)
        for _ in range(6):
            assert await served_serial(port, authority) == third.serial_hex
        assert await asyncio.to_thread(kept.get) == 200
        assert kept.local_port == before
        # Both workers serve the third certificate: the earliest expiry they report is its.
        assert await expiry_metric(admin) == third.not_after.timestamp()
    finally:
        await asyncio.to_thread(kept.close)
        assert process.stop() == 0
