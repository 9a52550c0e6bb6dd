"""gateway/tls/contexts.py: the listeners' and the clients' SSL contexts, judged by real
handshakes on loopback between them and contexts this test builds with the ssl module
itself, and by certificates made for this run."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gateway.config import ConfigError
from gateway.tls.contexts import (
    ClientFiles,
    RenewedClientContext,
    ServerFiles,
    client_context,
    context_for_url,
    redis_tls_options,
    server_context,
    verification_failure,
)
from tests.support.tls_lab import Authority, Issued

# The deployment CA, a stranger CA, the gateway's leaf and an operator's client certificate.
Pki = tuple[Authority, Authority, Issued, Issued]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    authority = Authority.create(directory / "ca", "Deployment CA")
    stranger = Authority.create(directory / "other", "Other CA")
    return (
        authority,
        stranger,
        authority.issue("gateway"),
        authority.issue("operator", client=True),
    )


@dataclass
class Handshake:
    """One TLS connection over loopback: the client's view, and whether the server
    completed its side (with mutual TLS the client may finish first and be refused)."""

    client: ssl.SSLObject | BaseException
    server_accepted: bool

    @property
    def ok(self) -> bool:
        return isinstance(self.client, ssl.SSLObject) and self.server_accepted


async def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str = "localhost"
) -> Handshake:
    accepted: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(True)  # asyncio calls back only once the server's handshake is done
        with contextlib.suppress(OSError, ssl.SSLError):
            await reader.read(1)
        writer.close()

    listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = listening.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=server_hostname
        )
    except (OSError, ssl.SSLError) as exc:
        listening.close()
        return Handshake(exc, bool(accepted))
    ssl_object = writer.get_extra_info("ssl_object")
    with contextlib.suppress(OSError, ssl.SSLError):
        writer.write(b"x")
        await writer.drain()
        await asyncio.wait_for(reader.read(1), 10)  # EOF: served and closed, or refused
    writer.close()
    listening.close()
    return Handshake(ssl_object, bool(accepted))


def refused(outcome: Handshake) -> bool:
    return not outcome.ok


async def test_the_listener_speaks_tls_1_3_by_default_and_no_compression(pki: Pki) -> None:
    authority, _, leaf, _ = pki
    context = server_context(ServerFiles(str(leaf.cert_file), str(leaf.key_file)), "[gateway]")
    outcome = await handshake(context, authority.client_context())
    assert outcome.ok and isinstance(outcome.client, ssl.SSLObject)
    assert outcome.client.version() == "TLSv1.3"
    assert outcome.client.compression() is None
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_COMPRESSION


def permissive(issued: Issued) -> ssl.SSLContext:
    """A server that accepts anything OpenSSL can still speak: the control that shows a
    refusal below comes from the gateway's settings, not from the client's limits."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("ALL:@SECLEVEL=0")
    context.load_cert_chain(issued.cert_file, issued.key_file)
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1")
async def test_the_listener_refuses_tls_1_1_and_suites_without_forward_secrecy(
    pki: Pki,
) -> None:
    authority, _, _, _ = pki
    leaf = authority.issue("gateway-rsa", rsa_key=True)  # static RSA suites need one
    context = server_context(ServerFiles(str(leaf.cert_file), str(leaf.key_file)), "[gateway]")
    old = authority.client_context()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    assert (await handshake(permissive(leaf), old)).ok
    assert refused(await handshake(context, old))
    static_rsa = authority.client_context()
    static_rsa.maximum_version = ssl.TLSVersion.TLSv1_2
    static_rsa.set_ciphers("AES128-GCM-SHA256:AES256-SHA:AES128-SHA256")
    assert (await handshake(permissive(leaf), static_rsa)).ok
    assert refused(await handshake(context, static_rsa))
    modern12 = authority.client_context()
    modern12.maximum_version = ssl.TLSVersion.TLSv1_2
    outcome = await handshake(context, modern12)
    assert outcome.ok and isinstance(outcome.client, ssl.SSLObject)
    assert outcome.client.version() == "TLSv1.2"
    cipher = outcome.client.cipher()
    assert cipher is not None and cipher[0].startswith("ECDHE-RSA-") and "GCM" in cipher[0]


async def test_minimum_version_1_3_refuses_tls_1_2(pki: Pki) -> None:
    authority, _, leaf, _ = pki
    files = ServerFiles(str(leaf.cert_file), str(leaf.key_file))
    context = server_context(files, "[gateway]", minimum="1.3")
    client = authority.client_context()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    assert refused(await handshake(context, client))


async def test_mutual_tls_requires_a_client_certificate_from_the_client_ca(pki: Pki) -> None:
    authority, stranger, leaf, operator = pki
    files = ServerFiles(str(leaf.cert_file), str(leaf.key_file), str(authority.cert_file))
    context = server_context(files, "[gateway] admin_tls_*")
    assert (await handshake(context, authority.client_context(operator))).ok
    # Without a certificate, or with one from another CA: TLS 1.3 lets the client finish
    # its side, then the server's alert ends the connection before anything is served.
    foreign = stranger.issue("intruder", client=True)
    for client in (authority.client_context(), authority.client_context(foreign)):
        outcome = await handshake(context, client)
        assert not outcome.server_accepted, "served a client without a valid certificate"


async def test_a_client_context_trusts_the_given_ca_alone_and_checks_the_name(
    pki: Pki,
) -> None:
    authority, stranger, leaf, _operator = pki
    server = authority.server_context(leaf)
    mine = client_context(ClientFiles(str(authority.cert_file)), "[upstream]")
    assert (await handshake(server, mine)).ok
    other = client_context(ClientFiles(str(stranger.cert_file)), "[upstream]")
    outcome = (await handshake(server, other)).client
    assert isinstance(outcome, ssl.SSLCertVerificationError)
    # The chain the server sends ends in its own root, which this client does not trust.
    assert verification_failure(outcome) == (
        "certificate verify failed: self-signed certificate in certificate chain"
    )
    # The certificate names 127.0.0.1 and localhost, not nova.example.
    wrong_name = (await handshake(server, mine, server_hostname="nova.example")).client
    assert isinstance(wrong_name, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in (verification_failure(wrong_name) or "")
    # The system's trust store does not know this run's CA.
    system = client_context(ClientFiles(), "[upstream]")
    assert isinstance((await handshake(server, system)).client, ssl.SSLCertVerificationError)
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname


async def test_a_client_presents_its_certificate_for_mutual_tls(pki: Pki) -> None:
    authority, _, leaf, operator = pki
    server = authority.server_context(leaf, client_ca=authority.cert_file)
    files = ClientFiles(str(authority.cert_file), str(operator.cert_file), str(operator.key_file))
    assert (await handshake(server, client_context(files, "[upstream]"))).ok
    without = client_context(ClientFiles(str(authority.cert_file)), "[upstream]")
    assert not (await handshake(server, without)).server_accepted


def test_unusable_files_are_refused_naming_the_options(pki: Pki, tmp_path: Path) -> None:
    authority, _, leaf, _ = pki
    owner = "[upstream] ca_file, cert_file, key_file"
    with pytest.raises(ConfigError, match=r"^\[upstream\] ca_file.*: .*nope.pem: no such file"):
        client_context(ClientFiles(str(tmp_path / "nope.pem")), owner)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="PEM CA certificates"):
        client_context(ClientFiles(str(garbage)), owner)
    with pytest.raises(ConfigError, match="both its cert and key"):
        client_context(ClientFiles(str(authority.cert_file), str(leaf.cert_file)), owner)
    other_key = authority.issue("other")
    with pytest.raises(ConfigError, match="leaf first"):
        server_context(ServerFiles(str(leaf.cert_file), str(other_key.key_file)), "[gateway]")
    with pytest.raises(ConfigError, match="no cipher suite"):
        server_context(
            ServerFiles(str(leaf.cert_file), str(leaf.key_file)), "[gateway]", ciphers="NOPE"
        )


def test_tls_files_beside_a_plain_url_are_refused(pki: Pki) -> None:
    authority, _, _, _ = pki
    files = ClientFiles(str(authority.cert_file))
    with pytest.raises(ConfigError, match="is not https"):
        context_for_url("http://nova:8774", files, "[upstream] ca_file")
    assert context_for_url("http://nova:8774", ClientFiles(), "[upstream]") is None
    assert isinstance(context_for_url("https://nova:8774", files, "[upstream]"), ssl.SSLContext)


def test_redis_options_always_verify(pki: Pki, tmp_path: Path) -> None:
    authority, _, _, operator = pki
    options = redis_tls_options(
        ClientFiles(str(authority.cert_file), str(operator.cert_file), str(operator.key_file)),
        "[rate_limit]",
    )
    assert options["ssl_cert_reqs"] == "required" and options["ssl_check_hostname"] is True
    assert options["ssl_ca_certs"] == str(authority.cert_file)
    with pytest.raises(ConfigError, match="no such file"):
        redis_tls_options(ClientFiles(str(tmp_path / "missing.pem")), "[rate_limit]")


def test_verification_failure_reads_aiohttp_wrappers_and_ignores_other_errors() -> None:
    import aiohttp
    from aiohttp.client_reqrep import ConnectionKey

    key = ConnectionKey("nova", 443, True, True, None, None, None)
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = "certificate has expired"
    wrapped = aiohttp.ClientConnectorCertificateError(key, error)
    assert verification_failure(wrapped) == "certificate verify failed: certificate has expired"
    refused_error = aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))
    assert verification_failure(refused_error) is None
    assert verification_failure(TimeoutError()) is None


async def test_a_renewed_client_ca_reaches_the_next_connection(pki: Pki, tmp_path: Path) -> None:
    """RenewedClientContext (the single Redis's TLS): the same context while its files
    stay, a new one once the CA file is replaced, and the last good one kept (and the
    failure logged once) while the replacement does not load."""
    authority, stranger, leaf, _ = pki
    theirs = stranger.issue("gateway")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(authority.cert_file.read_bytes())
    renewed = RenewedClientContext(ClientFiles(ca_file=str(ca_file)), "[rate_limit]")
    first = renewed()
    assert renewed() is first
    ours = ServerFiles(str(leaf.cert_file), str(leaf.key_file))
    other = ServerFiles(str(theirs.cert_file), str(theirs.key_file))
    assert (await handshake(server_context(ours, "[test]"), first)).ok
    assert refused(await handshake(server_context(other, "[test]"), first))

    ca_file.write_bytes(stranger.cert_file.read_bytes())  # the deployment moved CAs
    second = renewed()
    assert second is not first
    assert (await handshake(server_context(other, "[test]"), second)).ok
    assert refused(await handshake(server_context(ours, "[test]"), second))

    ca_file.write_bytes(b"-----BEGIN CERTIFICATE-----\nhalf written")
    with capture_logs() as logs:
        assert renewed() is second
        assert renewed() is second
    assert [entry["event"] for entry in logs] == ["tls_reload_failed"]
