"""TLS for tests: a CA and certificates made per run, and a TLS-terminating relay that
puts a real TLS endpoint in front of any loopback TCP service (novasim, the real
Keystone, RabbitMQ).

Owns the files it writes under the directory it is given and the relay threads it
starts; it must never touch a system trust store, nor relay anywhere but loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.processes import LOOPBACK, free_port

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Issued:
    """A certificate (chain file: leaf, then the issuing CA) and its key, on disk."""

    cert_file: Path
    key_file: Path
    serial: int
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _subject_alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


@dataclass
class Authority:
    """A CA of this test run: it signs server and client certificates."""

    name: str
    directory: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_file: Path
    _issued: int = field(default=0)

    @classmethod
    def create(cls, directory: Path, name: str = "Test CA") -> Authority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        slug = name.lower().replace(" ", "-")
        cert_file = directory / f"{slug}.pem"
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return cls(name, directory, key, certificate, cert_file)

    def issue(
        self,
        common_name: str,
        *,
        hosts: Sequence[str] = LOOPBACK_NAMES,
        client: bool = False,
        valid_for: timedelta = timedelta(days=1),
        file_stem: str | None = None,
        rsa_key: bool = False,
        also_client: bool = False,
    ) -> Issued:
        """A leaf for ``hosts`` (server) or a client certificate, written beside the CA.

        EC P-256 keys (fast to make); ``rsa_key`` for a 2048-bit RSA one (the suites
        with RSA key exchange need an RSA certificate)."""
        self._issued += 1
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if rsa_key:
            key = rsa.generate_private_key(65537, 2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
        if also_client:  # a Redis Cluster node is the client of its peers on the bus
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + valid_for)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if not client:
            builder = builder.add_extension(_subject_alt_names(hosts), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        stem = file_stem or f"{common_name.lower().replace(' ', '-')}-{self._issued}"
        cert_file = self.directory / f"{stem}.pem"
        key_file = self.directory / f"{stem}.key"
        # The chain a server presents: its leaf, then the CA (harmless when it is the root).
        cert_file.write_bytes(
            certificate.public_bytes(serialization.Encoding.PEM)
            + self.certificate.public_bytes(serialization.Encoding.PEM)
        )
        _write_key(key_file, key)
        return Issued(cert_file, key_file, serial, certificate.not_valid_after_utc)

    def server_context(self, issued: Issued, client_ca: Path | None = None) -> ssl.SSLContext:
        """A plain server context for stand-ins (never the gateway's own code)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(issued.cert_file, issued.key_file)
        if client_ca is not None:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self, issued: Issued | None = None) -> ssl.SSLContext:
        """A client context that trusts this CA alone (and presents ``issued``)."""
        context = ssl.create_default_context(cafile=str(self.cert_file))
        if issued is not None:
            context.load_cert_chain(issued.cert_file, issued.key_file)
        return context


class TlsRelay:
    """A TLS listener on 127.0.0.1 that relays each connection's plaintext to a loopback
    TCP service: the TLS endpoint of a service that speaks none. Runs its own event loop
    in a thread, so sync and async tests (and other processes) can use it alike."""

    def __init__(self, context: ssl.SSLContext, target_port: int) -> None:
        self._context = context
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0
        self.attempts = 0  # ClientHellos received
        self.handshakes = 0  # completed handshakes (relayed connections)
        # OpenSSL asks for every ClientHello, whatever its server name: count them.
        context.sni_callback = self._hello

    def _hello(self, *_: object) -> None:
        self.attempts += 1

    @property
    def failed_handshakes(self) -> int:
        """ClientHellos that never became a connection (refused by either side)."""
        return self.attempts - self.handshakes

    def start(self) -> TlsRelay:
        self._thread.start()
        future: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            self._listen(), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(
            self._relay, LOOPBACK, 0, ssl=self._context, ssl_handshake_timeout=10
        )

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1  # asyncio calls back once the handshake is done
        try:
            target_reader, target_writer = await asyncio.open_connection(LOOPBACK, self._target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, target_writer), self._pipe(target_reader, writer))

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (OSError, ConnectionError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, ConnectionError, ssl.SSLError, RuntimeError):
                sink.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                # Open relays end with their peers; do not wait for them.

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@contextlib.contextmanager
def tls_relay(context: ssl.SSLContext, target_port: int) -> Iterator[TlsRelay]:
    relay = TlsRelay(context, target_port).start()
    try:
        yield relay
    finally:
        relay.stop()


@dataclass
class TlsRedis:
    """A redis-server of this test that speaks TLS only (``port 0``) on ``port``."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def client(self, authority: Authority, issued: Issued | None = None) -> redis.Redis:
        return redis.Redis(
            LOOPBACK,
            self.port,
            ssl=True,
            ssl_ca_certs=str(authority.cert_file),
            ssl_certfile=str(issued.cert_file) if issued else None,
            ssl_keyfile=str(issued.key_file) if issued else None,
            socket_timeout=2,
            decode_responses=True,
        )


def tls_redis_arguments(issued: Issued, authority: Authority, auth_clients: str) -> list[str]:
    return [
        "--port", "0",
        "--tls-cert-file", str(issued.cert_file),
        "--tls-key-file", str(issued.key_file),
        "--tls-ca-cert-file", str(authority.cert_file),
        "--tls-auth-clients", auth_clients,
    ]  # fmt: skip


@contextlib.contextmanager
def tls_redis(
    directory: Path,
    authority: Authority,
    issued: Issued,
    client: Issued | None = None,
    *,
    auth_clients: str = "no",
    extra: Sequence[str] = (),
) -> Iterator[TlsRedis]:
    """A TLS-only redis-server on a free port, up when this yields; stopped by PID after.

    ``client`` is the certificate the readiness check presents when clients must have one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = directory / f"redis-tls-{port}.log"
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--tls-port", str(port),
        "--bind", LOOPBACK,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        *tls_redis_arguments(issued, authority, auth_clients),
        *extra,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    server = TlsRedis(process, port, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if server.client(authority, client).ping():
                    break
            except (redis.RedisError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"TLS redis did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def redis_has_tls() -> bool:
    """Whether this machine's redis-server was built with TLS (Debian's is): a TLS build
    stops at once for want of a certificate, another at the unknown directive."""
    binary = shutil.which("redis-server")
    if binary is None:
        return False
    try:
        probe = subprocess.run(
            [binary, "--port", "0", "--tls-port", "1", "--save", ""],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except subprocess.TimeoutExpired:
        return False
    output = probe.stdout + probe.stderr
    return "Failed to configure TLS" in output and "Bad directive" not in output


@contextlib.contextmanager
def tls_sentinel(
    directory: Path, authority: Authority, issued: Issued, service: str, primary_port: int
) -> Iterator[TlsRedis]:
    """One sentinel, TLS only, watching a TLS primary over TLS (``tls-replication``)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        "\n".join(
            [
                "port 0",
                f"tls-port {port}",
                f"bind {LOOPBACK}",
                f"tls-cert-file {issued.cert_file}",
                f"tls-key-file {issued.key_file}",
                f"tls-ca-cert-file {authority.cert_file}",
                "tls-auth-clients no",
                "tls-replication yes",
                f"sentinel monitor {service} {LOOPBACK} {primary_port} 1",
            ]
        )
        + "\n"
    )
    log_path = directory / f"sentinel-{port}.log"
    argv = [shutil.which("redis-server") or "redis-server", str(config), "--sentinel"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    sentinel = TlsRedis(process, port, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                # A plain client gets the parsed dict (the bool is for Sentinel's broadcast).
                state = cast("dict[str, Any]", sentinel.client(authority).sentinel_master(service))
                if "master" in state["flags"] and "disconnected" not in state["flags"]:
                    break
            except (redis.RedisError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"TLS sentinel did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        yield sentinel
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def tls_cluster(
    directory: Path, authority: Authority, issued: Issued, nodes: int = 3
) -> Iterator[list[TlsRedis]]:
    """A Redis Cluster of ``nodes`` primaries (no replicas), TLS only, the cluster bus too."""
    started: list[contextlib.AbstractContextManager[TlsRedis]] = []
    servers: list[TlsRedis] = []
    with contextlib.ExitStack() as stack:
        for index in range(nodes):
            node_dir = directory / f"node-{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            cluster_options = [
                "--cluster-enabled", "yes",
                "--tls-cluster", "yes",
                "--tls-replication", "yes",
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                # The default bus port (the client port + 10000) may not exist.
                "--cluster-port", str(free_port()),
                "--cluster-node-timeout", "2000",
            ]  # fmt: skip
            manager = tls_redis(node_dir, authority, issued, extra=cluster_options)
            started.append(manager)
            servers.append(stack.enter_context(manager))
        create = subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--tls",
                "--cacert",
                str(authority.cert_file),
                "--cluster",
                "create",
                *(f"{LOOPBACK}:{server.port}" for server in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create: {create.stdout}{create.stderr}")
        deadline = time.monotonic() + 30
        while not all(
            server.client(authority).cluster("info")["cluster_state"] == "ok" for server in servers
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the TLS cluster never covered every slot")
            time.sleep(0.05)
        yield servers


@pytest.fixture
def every_log_level() -> Iterator[None]:
    """structlog as it comes, for capture_logs: a module run earlier in the session may
    have configured a filtering level (the policy differential keeps only CRITICAL)."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**saved)
