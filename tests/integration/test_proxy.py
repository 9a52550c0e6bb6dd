"""The proxy core over real sockets: transparency, header hygiene, limits, upstream faults."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from gateway.web.app import apply_reloadable
from tests.integration.upstream import BIG, HOLD, RESET, STALL_BODY, STALL_HEADERS, FakeUpstream
from tests.security.wire import exchange, request_bytes
from tests.support.gateway import admin_url, base_url, gateway_conf

REQUEST_ID = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


async def send(
    url: str, method: str = "GET", **kwargs: Any
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    headers = {"X-Auth-Token": "alice:p1", **kwargs.pop("headers", {})}
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.request(method, url, headers=headers, **kwargs) as response:
            return response.status, response.headers, await response.read()


ROUTED = [
    ("GET", "/v2.1/servers/abc/metadata/my%20key?limit=2&marker=x"),
    ("PUT", "/v2.1/servers/abc/metadata/my%20key?limit=2&marker=x"),
    ("DELETE", "/v2.1/servers/abc/metadata/my%20key?limit=2&marker=x"),
    ("POST", "/v2.1/servers/abc/metadata?limit=2&marker=x"),
]


@pytest.mark.parametrize(("method", "target"), ROUTED)
async def test_every_routed_method_and_path_is_proxied_unchanged(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any, method: str, target: str
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    body = b'{"server": {"name": "x"}}' if method in ("POST", "PUT") else b""
    status, headers, answer = await send(
        f"{gateway}{target}",
        method,
        data=body or None,
        headers={
            "X-Reply-Status": "418",
            "X-Custom": "kept",
            "X-Auth-Token": "t:p1",
            "Content-Type": "application/json",
        },
    )
    assert status == 418
    assert headers["X-Upstream"] == "yes"
    assert json.loads(answer)["path"] == target
    seen = upstream.received[-1]
    assert seen.method == method and seen.body == body
    assert seen.path_qs == target
    sent = {key.lower(): value for key, value in seen.headers}
    assert sent["x-custom"] == "kept" and sent["x-auth-token"] == "t:p1"


@pytest.mark.parametrize("method", ["PATCH", "OPTIONS", "HEAD", "TRACE", "POST"])
async def test_methods_novas_router_does_not_route_are_not_proxied(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any, method: str
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    before = len(upstream.received)
    status, headers, _ = await send(f"{gateway}/v2.1/servers/abc/metadata/k", method)
    assert status == 404
    assert "OpenStack-API-Version" not in headers
    assert len(upstream.received) == before


async def test_head_of_the_version_document_is_proxied(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    status, _, answer = await send(f"{gateway}/v2.1/", "HEAD")
    assert status == 200 and answer == b"" and upstream.received[-1].method == "HEAD"


async def test_hop_by_hop_headers_removed_both_ways(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    status, headers, _ = await send(
        f"{gateway}/v2.1/servers",
        headers={
            "Connection": "keep-alive, X-Drop-Me, X-Auth-Token",
            "X-Drop-Me": "1",
            "X-Auth-Token": "t:p1",
            "TE": "trailers",
            "Keep-Alive": "timeout=5",
            "Proxy-Authorization": "Basic x",
            "Upgrade": "websocket",
        },
    )
    assert status == 200
    sent = {key.lower() for key, _ in upstream.received[-1].headers}
    assert "x-drop-me" not in sent and "proxy-authorization" not in sent
    assert "upgrade" not in sent and "te" not in sent
    assert "x-auth-token" in sent  # named in Connection, but protected
    assert "X-Secret-Hop" not in headers
    assert headers.getall("Vary") == ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"]


async def test_forwarded_headers_replace_what_an_untrusted_client_sent(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    await send(
        f"{gateway}/v2.1/servers",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "Forwarded": "for=6.6.6.6",
        },
    )
    sent = dict((key.lower(), value) for key, value in upstream.received[-1].headers)
    host, port = gateway.removeprefix("http://").split(":")
    assert sent["x-forwarded-for"] == "127.0.0.1"
    assert sent["x-forwarded-host"] == f"{host}:{port}"
    assert sent["x-forwarded-proto"] == "http"
    assert "forwarded" not in sent


async def test_trusted_front_proxy_chain_is_kept(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url, gateway__trusted_proxies=["127.0.0.0/8"]))
    await send(
        f"{gateway}/v2.1/servers",
        headers={
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "compute.example.com",
        },
    )
    sent = dict((key.lower(), value) for key, value in upstream.received[-1].headers)
    assert sent["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert sent["x-forwarded-proto"] == "https"
    assert sent["x-forwarded-host"] == "compute.example.com"


async def test_a_cookie_the_upstream_sets_never_goes_up_with_a_later_call(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    # One pooled session carries every client's calls: a cookie jar in it would hand
    # one caller's cookie to the next (a jar keeps cookies of host names, not of IPs).
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url.replace("127.0.0.1", "localhost")))
    status, headers, _ = await send(
        f"{gateway}/v2.1/servers", headers={"X-Reply-Cookie": "session=alice-secret"}
    )
    assert status == 200 and headers["Set-Cookie"] == "session=alice-secret; Path=/"
    status, _, _ = await send(f"{gateway}/v2.1/servers", headers={"X-Auth-Token": "eve:p2"})
    assert status == 200
    later = {key.lower(): value for key, value in upstream.received[-1].headers}
    assert later["x-auth-token"] == "eve:p2" and "cookie" not in later


async def test_request_ids(fake_upstream: tuple[FakeUpstream, str], start_gateway: Any) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    client_id = "req-0b0e8f4a-6c36-4d5e-9d8f-1a2b3c4d5e6f"
    _, headers, _ = await send(
        f"{gateway}/v2.1/servers", headers={"X-OpenStack-Request-ID": client_id}
    )
    ours = headers["x-openstack-request-id"]
    assert REQUEST_ID.match(ours) and headers["x-compute-request-id"] == ours
    assert ours != client_id
    sent = dict((key.lower(), value) for key, value in upstream.received[-1].headers)
    assert sent["x-openstack-request-id"] == client_id  # the client's global id goes up

    _, headers, _ = await send(
        f"{gateway}/v2.1/servers", headers={"X-OpenStack-Request-ID": "not-an-id"}
    )
    sent = dict((key.lower(), value) for key, value in upstream.received[-1].headers)
    assert sent["x-openstack-request-id"] == headers["x-openstack-request-id"]

    status, headers, _body = await send(f"{gateway}/v2.1//servers")  # refused
    assert status == 400 and REQUEST_ID.match(headers["x-openstack-request-id"])
    assert headers["x-compute-request-id"] == headers["x-openstack-request-id"]


async def test_concrete_microversion_is_forwarded(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    await send(
        f"{gateway}/v2.1/servers",
        headers={
            "OpenStack-API-Version": "volume 3.0, compute latest",
            "X-OpenStack-Nova-API-Version": "2.5",
        },
    )
    sent = [(key.lower(), value) for key, value in upstream.received[-1].headers]
    assert ("openstack-api-version", "compute 2.104") in sent
    assert ("x-openstack-nova-api-version", "2.104") in sent
    assert [key for key, _ in sent].count("openstack-api-version") == 1


def json_body(size: int) -> bytes:
    """A create body of exactly ``size`` bytes."""
    frame = b'{"server": {"name": ""}}'
    return frame[:-3] + b"x" * (size - len(frame)) + frame[-3:]


async def test_body_limit(fake_upstream: tuple[FakeUpstream, str], start_gateway: Any) -> None:
    upstream, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    before = len(upstream.received)
    as_json = {"Content-Type": "application/json", "Accept": "application/json"}
    status, _, _ = await send(
        f"{gateway}/v2.1/servers", "POST", data=json_body(114688), headers=as_json
    )
    assert status == 200
    status, headers, body = await send(
        f"{gateway}/v2.1/servers", "POST", data=json_body(114689), headers=as_json
    )
    assert status == 413
    # oslo.middleware's sizelimit as Nova runs it: webob's page, its text as it is.
    assert json.loads(body) == {
        "message": "Request is too large. Larger than max_request_body_size (%s).<br /><br />"
        "\n\n\n",
        "code": "413 Request Entity Too Large",
        "title": "Request Entity Too Large",
    }
    assert "OpenStack-API-Version" not in headers

    async def chunks() -> Any:
        for _ in range(20):
            yield b"y" * 8192

    status, _, _ = await send(f"{gateway}/v2.1/servers", "POST", data=chunks(), headers=as_json)
    assert status == 413
    assert len(upstream.received) == before + 1


async def test_large_response_is_streamed(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    size = 8 * 1024 * 1024
    status, headers, body = await send(f"{gateway}{BIG}?bytes={size}")
    assert status == 200 and len(body) == size and int(headers["Content-Length"]) == size


async def test_upstream_refused_is_502(start_gateway: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = base_url(await start_gateway(f"http://127.0.0.1:{port}/v2.1"))
    status, headers, body = await send(f"{gateway}/v2.1/servers")
    assert status == 502
    assert json.loads(body) == {
        "computeFault": {"code": 502, "message": "The compute API is unreachable."}
    }
    assert headers["x-openstack-request-id"].startswith("req-")


async def test_upstream_reset_is_502(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    gateway = base_url(await start_gateway(url))
    status, _, body = await send(f"{gateway}{RESET}")
    assert status == 502 and b"closed the connection" in body


async def test_upstream_silent_is_504_within_the_read_timeout(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    gateway = base_url(await start_gateway(url, upstream__read_timeout=0.3))
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, _, body = await send(f"{gateway}{STALL_HEADERS}")
    assert status == 504 and json.loads(body)["computeFault"]["code"] == 504
    assert loop.time() - started < 5


async def test_upstream_slow_body_cuts_the_connection(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    gateway = base_url(await start_gateway(url, upstream__read_timeout=0.3))
    with pytest.raises(aiohttp.ClientPayloadError):
        await send(f"{gateway}{STALL_BODY}")


async def test_pool_exhausted_is_503_with_retry_after(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    upstream, url = fake_upstream
    gateway = base_url(
        await start_gateway(
            url, upstream__pool_size=1, upstream__pool_wait=0.2, upstream__pool_retry_after=2
        )
    )
    before = len(upstream.received)
    held = asyncio.create_task(send(f"{gateway}{HOLD}"))
    await upstream.wait_for(before + 1)
    status, headers, body = await send(f"{gateway}/v2.1/servers")
    assert status == 503 and headers["Retry-After"] == "2"
    assert json.loads(body)["serviceUnavailable"]["code"] == 503
    upstream.release.set()
    assert (await held)[0] == 200


async def test_health_and_readiness(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    listeners = await start_gateway(url)
    status, _, body = await send(admin_url(listeners) + "/healthz")
    assert status == 200 and json.loads(body)["status"] == "alive"
    status, _, body = await send(admin_url(listeners) + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True


async def test_not_ready_while_the_upstream_never_answered(start_gateway: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    listeners = await start_gateway(f"http://127.0.0.1:{port}/v2.1")
    status, _, body = await send(admin_url(listeners) + "/readyz")
    assert status == 503 and json.loads(body)["ready"] is False


async def test_version_range_is_read_from_the_upstream(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    _, url = fake_upstream
    listeners = await start_gateway(url, upstream__max_version="2.90")
    gateway = base_url(listeners)
    status, _headers, body = await send(
        f"{gateway}/v2.1/servers", headers={"OpenStack-API-Version": "compute 2.91"}
    )
    assert status == 406
    assert json.loads(body)["computeFault"]["message"] == (
        "Version 2.91 is not supported by the API. Minimum is 2.1 and maximum is 2.90."
    )


async def test_every_answer_names_the_configured_server(
    fake_upstream: tuple[FakeUpstream, str], start_gateway: Any
) -> None:
    """The upstream's answers, the gateway's refusals and aiohttp's own parser errors all
    say the configured Server (default: nova-api, no version), changed by a reload."""
    _, url = fake_upstream
    listeners = await start_gateway(url)
    port = listeners.api_address[1]
    token = [("X-Auth-Token", "alice:p1")]
    requests = [
        request_bytes("GET", "/v2.1/servers", token),  # proxied (aiohttp upstream)
        request_bytes("GET", "/v2.1/nothing", token),  # the router's 404
        request_bytes("GET", "/v2.1/servers"),  # keystonemiddleware's 401
        request_bytes("GET", "/v2.1//servers", token),  # the gateway's 400
        b"GET /v2.1/servers HTTP/1.1\r\nHost: x\r\nNo Colon Header\r\n\r\n",  # aiohttp's 400
    ]

    async def servers_named() -> list[list[str]]:
        replies = [(await exchange(port, data)).reply for data in requests]
        assert [reply.status for reply in replies] == [200, 404, 401, 400, 400]
        return [reply.values("Server") for reply in replies]

    assert await servers_named() == [["nova-api"]] * len(requests)
    apply_reloadable(listeners.gate, gateway_conf({"gateway.server_header": "Apache"}))
    assert await servers_named() == [["Apache"]] * len(requests)
