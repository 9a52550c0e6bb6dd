"""TLS everywhere with the real services: the gateway serving HTTPS, in keystone mode,
reaching the real Keystone and the real Nova (the one that validates Keystone tokens)
over TLS verified with the deployment's CA, made for this run.

Neither lab serves TLS itself, so each gets a TLS-terminating relay
(tests/support/tls_lab.py) with a certificate of that CA: every hop the gateway makes is
a real TLS handshake it must verify.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import skip_or_fail
from tests.e2e.gateway_fixtures import GatewayLab, start_gateway
from tests.support.labs import RealKeystone, RealNova
from tests.support.processes import ProcessStartError
from tests.support.tls_lab import Authority, TlsRelay, tls_relay


@dataclass(frozen=True)
class Everywhere:
    gateway: GatewayLab
    authority: Authority
    keystone_relay: TlsRelay
    nova_relay: TlsRelay
    keystone: RealKeystone


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.fixture(scope="module")
def everywhere(
    realkeystone: RealKeystone,
    realnova_keystone: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
) -> Iterator[Everywhere]:
    home = tmp_path_factory.mktemp("tls-everywhere")
    authority = Authority.create(home / "ca", "Deployment CA")
    gateway_leaf = authority.issue("nova-gateway")
    keystone_context = authority.server_context(authority.issue("keystone"))
    nova_context = authority.server_context(authority.issue("nova-api"))
    with (
        tls_relay(keystone_context, port_of(realkeystone.url)) as keystone_relay,
        tls_relay(nova_context, port_of(realnova_keystone.url)) as nova_relay,
    ):
        ca = str(authority.cert_file)
        sections = {
            "gateway": {
                "tls_cert_file": str(gateway_leaf.cert_file),
                "tls_key_file": str(gateway_leaf.key_file),
            },
            "upstream": {"ca_file": ca},
            "identity": {
                "mode": "keystone",
                "keystone_url": f"https://localhost:{keystone_relay.port}/v3",
                "keystone_ca_file": ca,
                "service_username": "admin",
                "service_password": str(realkeystone.fixtures.get("password", "secret")),
                "service_project_name": "admin",
            },
        }
        try:
            gateway = start_gateway(
                f"https://localhost:{nova_relay.port}/v2.1", home, lab_logs, sections
            )
        except ProcessStartError as exc:
            pytest.fail(f"the gateway did not start: {exc}", pytrace=False)
        try:
            yield Everywhere(gateway, authority, keystone_relay, nova_relay, realkeystone)
        finally:
            gateway.process.stop()


async def test_every_hop_is_tls_verified_with_the_deployment_ca(everywhere: Everywhere) -> None:
    try:
        token = everywhere.keystone.issue_token("alice", "p1")
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"realkeystone cannot issue a token: {exc}")
    gateway = everywhere.gateway
    assert gateway.url.startswith("https://")
    client = everywhere.authority.client_context()
    async with aiohttp.ClientSession(headers={"X-Auth-Token": token}) as session:
        async with session.get(f"{gateway.url}/servers", ssl=client) as response:
            assert response.status == 200, await response.text()
            assert "servers" in await response.json()
        # An action: the gateway's service token from Keystone, then Nova's answer for the
        # server it reads to decide (there is none: 404, as Nova says it), all over TLS.
        missing = "8e0b1b7c-58bf-4e43-9a0b-8b8a4ad9d8f1"
        async with session.post(
            f"{gateway.url}/servers/{missing}/action", json={"pause": None}, ssl=client
        ) as response:
            assert response.status == 404
            assert (await response.json())["itemNotFound"]["code"] == 404
        # The system's trust store does not know this run's CA.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.get(f"{gateway.url}/servers", ssl=ssl.create_default_context())
    assert everywhere.keystone_relay.handshakes > 0 and everywhere.nova_relay.handshakes > 0
    assert everywhere.keystone_relay.failed_handshakes == 0
    assert everywhere.nova_relay.failed_handshakes == 0
    assert token not in gateway.process.log_path.read_text()
