"""TLS through the whole gateway, over real sockets, with a CA and certificates made for
this run: the gateway serving HTTPS (judged by curl and openssl s_client), mutual TLS
on the admin listener, an HTTPS upstream (novasim behind TLS) accepted with the
deployment's CA and refused with another, and Keystone over HTTPS the same way."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from gateway.config import ConfigError
from gateway.web.server import Listeners
from tests.conftest import skip_or_fail
from tests.integration.upstream import FakeUpstream
from tests.support.gateway import admin_url, base_url, running_gateway
from tests.support.tls_lab import (
    Authority,
    Issued,
    every_log_level,  # noqa: F401
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid uuid"),
    pytest.mark.usefixtures("every_log_level"),
]


@dataclass(frozen=True)
class Pki:
    authority: Authority  # the deployment's CA
    stranger: Authority  # a CA the deployment does not use
    gateway: Issued  # the gateway's listener certificate
    nova: Issued  # nova-api's (the stand-in's) certificate
    keystone: Issued
    operator: Issued  # a client certificate of the deployment's CA
    intruder: Issued  # a client certificate of the other CA
    gateway_client: Issued  # the gateway's client certificate towards Nova


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    authority = Authority.create(directory / "deployment", "Deployment CA")
    stranger = Authority.create(directory / "stranger", "Stranger CA")
    return Pki(
        authority,
        stranger,
        authority.issue("nova-gateway"),
        authority.issue("nova-api"),
        authority.issue("keystone"),
        authority.issue("operator", client=True),
        stranger.issue("intruder", client=True),
        authority.issue("nova-gateway-client", client=True),
    )


def https_url(server: TestServer, path: str = "/v2.1") -> str:
    return f"https://127.0.0.1:{server.port}{path}"


@asynccontextmanager
async def https_novasim(pki: Pki, client_ca: Path | None = None) -> AsyncIterator[TestServer]:
    """novasim behind TLS with nova-api's certificate (the deployment's CA)."""
    from novasim import SimConfig, create_app

    server = TestServer(create_app(SimConfig(seed=1)), host="127.0.0.1")
    await server.start_server(ssl=pki.authority.server_context(pki.nova, client_ca))
    try:
        yield server
    finally:
        await server.close()


def seeded(server: TestServer, project: str = "p1") -> str:
    from novasim.app import SIM

    assert server.app is not None
    return str(next(sid for owner, sid in server.app[SIM].seeded_ids() if owner == project))


def received(server: TestServer) -> list[Any]:
    from novasim.app import RECORDER

    assert server.app is not None
    return list(server.app[RECORDER].records())


def api(listeners: Listeners) -> str:
    return base_url(listeners, "https")


def admin(listeners: Listeners) -> str:
    return admin_url(listeners, "https")


def listener_options(pki: Pki, **more: Any) -> dict[str, Any]:
    return {
        "gateway.tls_cert_file": str(pki.gateway.cert_file),
        "gateway.tls_key_file": str(pki.gateway.key_file),
        **more,
    }


async def run(*argv: str) -> tuple[int, str, str]:
    """A command off the event loop (novasim and the gateway serve on this loop)."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        skip_or_fail(f"{tool} is not installed")
    assert path is not None
    return path


# -- the gateway serving TLS ---------------------------------------------------------------


async def test_curl_verifies_the_gateway_against_the_deployment_ca_and_nova_hears_https(
    pki: Pki,
) -> None:
    curl = require("curl")
    async with (
        https_novasim(pki) as nova,
        running_gateway(
            https_url(nova),
            listener_options(pki, **{"upstream.ca_file": str(pki.authority.cert_file)}),
        ) as listeners,
    ):
        url = f"{api(listeners)}/v2.1/servers"
        code, out, err = await run(
            curl, "-sS", "--cacert", str(pki.authority.cert_file), url,
            "-H", "X-Auth-Token: alice:p1",
            # From an untrusted peer the gateway's own scheme replaces whatever is claimed.
            "-H", "X-Forwarded-Proto: http",
            "-w", "\n%{http_code} %{ssl_verify_result}",
        )  # fmt: skip
        body, _, status = out.rpartition("\n")
        assert (code, status) == (0, "200 0"), err
        assert [server["id"] for server in json.loads(body)["servers"]]
        [listing] = [r for r in received(nova) if r.path == "/v2.1/servers"]
        assert listing.header("X-Forwarded-Proto") == "https"
        # curl's own trust store does not know this run's CA: verification is real.
        code, _, err = await run(curl, "-sS", url, "-H", "X-Auth-Token: alice:p1")
        assert code == 60 and "certificate" in err  # CURLE_PEER_FAILED_VERIFICATION


async def test_openssl_sees_tls_1_3_http_1_1_and_no_tls_1_1(pki: Pki) -> None:
    openssl = require("openssl")
    upstream = FakeUpstream()
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server()
    try:
        async with running_gateway(
            f"http://127.0.0.1:{server.port}/v2.1", listener_options(pki)
        ) as listeners:
            host, port = listeners.api_address
            probe = [openssl, "s_client", "-connect", f"{host}:{port}"]
            probe += ["-CAfile", str(pki.authority.cert_file), "-verify_return_error"]
            code, out, err = await run(*probe, "-alpn", "h2,http/1.1")
            assert code == 0, out + err
            assert "New, TLSv1.3, Cipher is TLS_" in out
            assert "ALPN protocol: http/1.1" in out  # never h2: the gateway speaks 1.1
            assert "Verify return code: 0 (ok)" in out
            assert "Compression: NONE" in out
            code, out, err = await run(*probe, "-tls1_1", "-cipher", "ALL:@SECLEVEL=0")
            assert code != 0 and "New, TLSv1.1" not in out, out + err
    finally:
        await server.close()


async def test_the_admin_listener_asks_for_a_client_certificate_of_its_ca(pki: Pki) -> None:
    upstream = FakeUpstream()
    server = TestServer(upstream.app(), host="127.0.0.1")
    await server.start_server()
    options = {
        "gateway.admin_tls_cert_file": str(pki.gateway.cert_file),
        "gateway.admin_tls_key_file": str(pki.gateway.key_file),
        "gateway.admin_tls_client_ca_file": str(pki.authority.cert_file),
    }
    try:
        async with (
            running_gateway(f"http://127.0.0.1:{server.port}/v2.1", options) as listeners,
            aiohttp.ClientSession() as session,
        ):
            url = f"{admin(listeners)}/healthz"

            async def status(client: Issued | None) -> int | str:
                context = pki.authority.client_context(client)
                try:
                    async with session.get(url, ssl=context) as response:
                        return response.status
                except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
                    return type(exc).__name__

            assert await status(pki.operator) == 200
            assert await status(None) != 200
            assert await status(pki.intruder) != 200
            # The API listener has no TLS here: TLS is per listener.
            host, port = listeners.api_address
            async with session.get(f"http://{host}:{port}/v2.1/") as response:
                assert response.status == 200
    finally:
        await server.close()


# -- the upstream over HTTPS ------------------------------------------------------------


async def test_an_https_nova_is_accepted_with_the_deployment_ca(pki: Pki) -> None:
    async with (
        https_novasim(pki) as nova,
        running_gateway(
            https_url(nova), {"upstream.ca_file": str(pki.authority.cert_file)}
        ) as listeners,
        aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session,
    ):
        host, port = listeners.api_address
        action = f"http://{host}:{port}/v2.1/servers/{seeded(nova)}/action"
        # An action: the server read and the forward both cross the verified hop.
        async with session.post(action, json={"pause": None}) as response:
            assert response.status == 202, await response.text()
        assert listeners.gate.versions.age() is not None  # the version document came too


@pytest.mark.parametrize("trust", ["another CA", "the system's trust store"])
async def test_an_https_nova_with_a_certificate_we_cannot_verify_is_a_502(
    pki: Pki, trust: str
) -> None:
    options = {"upstream.ca_file": str(pki.stranger.cert_file)} if trust == "another CA" else {}
    async with https_novasim(pki) as nova:
        nova_url = https_url(nova, "")
        with capture_logs() as logs:
            async with running_gateway(https_url(nova), options) as listeners:
                assert listeners.gate.versions.age() is None  # its document never came
                host, port = listeners.api_address
                async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
                    async with session.get(f"http://{host}:{port}/v2.1/servers") as response:
                        assert response.status == 502
                        assert response.headers["Content-Type"].startswith("application/json")
                        request_id = response.headers["x-openstack-request-id"]
                        assert request_id.startswith("req-")
                        body = await response.json()
                    action = f"http://{host}:{port}/v2.1/servers/{seeded(nova)}/action"
                    async with session.post(action, json={"pause": None}) as refused:
                        # The gate cannot read the server it would decide on.
                        assert refused.status == 503
                        assert (await refused.json())["serviceUnavailable"]["code"] == 503
        assert body == {
            "computeFault": {
                "code": 502,
                "message": "The compute API's identity could not be verified.",
            }
        }
        assert received(nova) == []  # nothing was ever sent over an unverified connection
    failures = [entry for entry in logs if entry["event"] == "tls_handshake_failed"]
    # At start (the version document), the server read of the action, and the forward.
    assert len(failures) >= 3
    assert {entry["error"] for entry in failures} == {
        "certificate verify failed: self-signed certificate in certificate chain"
    }
    assert all(entry["peer"].startswith(nova_url) for entry in failures)


async def test_a_nova_that_wants_a_client_certificate_gets_the_gateways(pki: Pki) -> None:
    async with https_novasim(pki, client_ca=pki.authority.cert_file) as nova:
        options = {
            "upstream.ca_file": str(pki.authority.cert_file),
            "upstream.cert_file": str(pki.gateway_client.cert_file),
            "upstream.key_file": str(pki.gateway_client.key_file),
        }
        async with running_gateway(https_url(nova), options) as listeners:
            host, port = listeners.api_address
            async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
                async with session.get(f"http://{host}:{port}/v2.1/servers") as response:
                    assert response.status == 200
        without = {"upstream.ca_file": str(pki.authority.cert_file)}
        async with running_gateway(https_url(nova), without) as listeners:
            host, port = listeners.api_address
            async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
                async with session.get(f"http://{host}:{port}/v2.1/servers") as response:
                    assert response.status == 502


async def test_tls_files_for_a_plain_upstream_refuse_to_start(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"\[upstream\] ca_file.*is not https"):
        async with running_gateway(
            "http://127.0.0.1:9/v2.1", {"upstream.ca_file": str(pki.authority.cert_file)}
        ):
            pass


# -- Keystone over HTTPS ----------------------------------------------------------------

USER_TOKEN = "gAAAAAB-tls-user-token"
SERVICE_PASSWORD = "tls-service-secret"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keystone_app() -> web.Application:
    """Keystone's two token calls, as much as keystone mode needs of them."""

    def token_body(user: str, project: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "token": {
                "user": {"id": user, "name": user, "domain": {"id": "default"}},
                "project": {"id": project, "name": project, "domain": {"id": "default"}},
                "roles": [{"id": "r1", "name": "member"}],
                "issued_at": _iso(now),
                "expires_at": _iso(now + timedelta(hours=1)),
            }
        }

    async def issue(request: web.Request) -> web.Response:
        body = await request.json()
        if body["auth"]["identity"]["password"]["user"]["password"] != SERVICE_PASSWORD:
            return web.json_response({}, status=401)
        response = web.json_response(token_body("nova-gateway", "service"), status=201)
        response.headers["X-Subject-Token"] = "service-token"
        return response

    async def validate(request: web.Request) -> web.Response:
        if request.headers.get("X-Auth-Token") != "service-token":
            return web.json_response({}, status=401)
        if request.headers.get("X-Subject-Token") != USER_TOKEN:
            return web.json_response({}, status=404)
        return web.json_response(token_body("u-alice", "p1"))

    app = web.Application()
    app.router.add_post("/v3/auth/tokens", issue)
    app.router.add_get("/v3/auth/tokens", validate)
    return app


@pytest.fixture
async def https_keystone(pki: Pki) -> AsyncIterator[str]:
    server = TestServer(keystone_app(), host="127.0.0.1")
    await server.start_server(ssl=pki.authority.server_context(pki.keystone))
    try:
        yield https_url(server, "/v3")
    finally:
        await server.close()


def keystone_options(url: str, ca_file: Path | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "identity.mode": "keystone",
        "identity.keystone_url": url,
        "identity.service_password": SERVICE_PASSWORD,
    }
    if ca_file is not None:
        options["identity.keystone_ca_file"] = str(ca_file)
    return options


async def test_keystone_over_https_is_verified_with_its_ca(
    pki: Pki, https_keystone: str, fake_upstream: tuple[FakeUpstream, str]
) -> None:
    _upstream, url = fake_upstream
    async with (
        running_gateway(
            url, keystone_options(https_keystone, pki.authority.cert_file)
        ) as listeners,
        aiohttp.ClientSession() as session,
    ):
        host, port = listeners.api_address
        async with session.get(
            f"http://{host}:{port}/v2.1/flavors", headers={"X-Auth-Token": USER_TOKEN}
        ) as response:
            assert response.status == 200
        async with session.get(
            f"http://{host}:{port}/v2.1/flavors", headers={"X-Auth-Token": "gAAAAAB-unknown"}
        ) as response:
            assert response.status == 401  # Keystone's verdict, reached over TLS


@pytest.mark.parametrize("ca", ["another CA", "the system's trust store"])
async def test_a_keystone_we_cannot_verify_is_never_asked(
    pki: Pki, https_keystone: str, fake_upstream: tuple[FakeUpstream, str], ca: str
) -> None:
    upstream, url = fake_upstream
    ca_file = pki.stranger.cert_file if ca == "another CA" else None
    with capture_logs() as logs:
        async with (
            running_gateway(url, keystone_options(https_keystone, ca_file)) as listeners,
            aiohttp.ClientSession() as session,
        ):
            host, port = listeners.api_address
            async with session.get(
                f"http://{host}:{port}/v2.1/flavors", headers={"X-Auth-Token": USER_TOKEN}
            ) as response:
                assert response.status == 503  # never fail-open
                # keystonemiddleware's answer when Keystone cannot be had: webob's page.
                assert response.content_type == "text/html"
                body = await response.text()
    assert "The Keystone service is temporarily unavailable." in body
    assert not [r for r in upstream.received if r.path_qs.startswith("/v2.1/flavors")]
    [failure, *_] = [entry for entry in logs if entry["event"] == "tls_handshake_failed"]
    assert failure["error"] == (
        "certificate verify failed: self-signed certificate in certificate chain"
    )
    assert failure["peer"] == https_keystone
    assert USER_TOKEN not in repr(logs)


async def test_keystone_tls_files_for_a_plain_keystone_refuse_to_start(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=r"\[identity\] keystone_ca_file.*is not https"):
        async with running_gateway(
            "http://127.0.0.1:9/v2.1",
            keystone_options("http://127.0.0.1:5000/v3", pki.authority.cert_file),
        ):
            pass
