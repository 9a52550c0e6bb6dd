"""The upstream hop's own HTTP/1.1 client against a raw socket server scripted byte by byte.

The server reads requests with its own small reader (not the client's code, not llhttp)
and answers with exactly the bytes each test scripts, so what is judged is what crossed
the wire: the request as sent, and which connection each answer was read from.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import ServerDisconnectedError

from gateway.proxy import client as client_module
from gateway.proxy.client import BrokenAnswer, ConnectError, TLSError, UpstreamClient
from tests.support.processes import free_port
from tests.support.tls_lab import Authority
from tests.support.waiting import wait_until

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Seen:
    connection: int
    head: bytes
    body: bytes


Script = Callable[[int, int], bytes | None]  # (connection, request on it) -> answer or None


@dataclass
class RawServer:
    """Answers each request with ``script(connection, request)``; None closes the
    connection without answering."""

    script: Script
    close_after_answer: bool = False
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    closed: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                served += 1
                self.seen.append(Seen(number, head, body))
                answer = self.script(number, served)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after_answer:
                    return
        finally:
            self.closed += 1
            writer.close()


async def serve(
    script: Script, close_after_answer: bool = False
) -> tuple[RawServer, asyncio.Server]:
    raw = RawServer(script, close_after_answer)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    return raw, server


def client_for(raw: RawServer, prefix: str = "", read_timeout: float = 5.0) -> UpstreamClient:
    return UpstreamClient(f"http://127.0.0.1:{raw.port}{prefix}", None, 2.0, read_timeout)


async def get(client: UpstreamClient, method: str = "GET", body: bytes = b"") -> bytes:
    async with await client.request(method, "/v2.1/x", [], body) as answer:
        return await answer.content.read()


async def test_the_request_goes_up_exactly_as_given() -> None:
    raw, server = await serve(lambda _c, _n: OK)
    async with server:
        client = client_for(raw, prefix="/compute")
        headers = [("X-A", "1"), ("x-a", "2"), ("Content-Type", "application/json")]
        for method, body in (("GET", b""), ("POST", b'{"lock": null}'), ("DELETE", b"")):
            async with await client.request(method, "/v2.1/x?", headers, body) as answer:
                assert await answer.content.read() == b"ok"
        client.close()
    host = f"Host: 127.0.0.1:{raw.port}"
    fields = "X-A: 1\r\nx-a: 2\r\nContent-Type: application/json\r\n"
    assert [(s.head, s.body) for s in raw.seen] == [
        (f"GET /compute/v2.1/x? HTTP/1.1\r\n{host}\r\n{fields}\r\n".encode(), b""),
        (
            f"POST /compute/v2.1/x? HTTP/1.1\r\n{host}\r\n{fields}Content-Length: 14\r\n\r\n"
            .encode(),
            b'{"lock": null}',
        ),
        (f"DELETE /compute/v2.1/x? HTTP/1.1\r\n{host}\r\n{fields}Content-Length: 0\r\n\r\n"
         .encode(), b""),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "header",
    [("X-A", "1\r\nX-Injected: 1"), ("X-A", "1\nX"), ("X-A\r\nX-B", "1"), ("X-A", "1\r")],
)
async def test_a_line_break_in_a_header_sends_nothing(header: tuple[str, str]) -> None:
    raw, server = await serve(lambda _c, _n: OK)
    async with server:
        client = client_for(raw)
        with pytest.raises(ValueError):
            await client.request("GET", "/v2.1/x", [header], b"")
        client.close()
    assert raw.connections == 0


async def test_a_connection_is_kept_alive_and_reused() -> None:
    raw, server = await serve(lambda _c, _n: OK)
    async with server:
        client = client_for(raw)
        assert [await get(client) for _ in range(3)] == [b"ok"] * 3
        client.close()
        await wait_until(lambda: raw.closed == 1)
    assert [s.connection for s in raw.seen] == [1, 1, 1]


async def test_an_answer_not_read_to_its_end_closes_its_connection() -> None:
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000
    raw, server = await serve(lambda c, _n: big if c == 1 else OK)
    async with server:
        client = client_for(raw)
        async with await client.request("GET", "/v2.1/x", [], b"") as answer:
            assert len(await answer.content.read(10)) == 10
        assert await get(client) == b"ok"
        client.close()
    assert [s.connection for s in raw.seen] == [1, 2]


@pytest.mark.parametrize(
    ("answer", "server_closes", "connections"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            False,
            [1, 1],
        ),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", False, [1, 2]),
        # Neither length nor chunks: the answer ends when the server closes (RFC 9112 §6.3).
        (b"HTTP/1.1 200 OK\r\n\r\nok", True, [1, 2]),
    ],
    ids=["chunked-kept", "connection-close-obeyed", "until-close"],
)
async def test_framing_decides_whether_a_connection_is_kept(
    answer: bytes, server_closes: bool, connections: list[int]
) -> None:
    raw, server = await serve(lambda _c, _n: answer, server_closes)
    async with server:
        client = client_for(raw)
        assert [await get(client), await get(client)] == [b"ok", b"ok"]
        client.close()
    assert [s.connection for s in raw.seen] == connections


async def test_an_answer_nobody_asked_for_never_reaches_the_next_request() -> None:
    # The first request gets two answers: the second is the smuggled one and must be
    # dropped with its connection, never read as the answer to the next request.
    smuggled = OK + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nsmuggl"
    raw, server = await serve(lambda c, n: smuggled if (c, n) == (1, 1) else OK)
    async with server:
        client = client_for(raw)
        assert await get(client) == b"ok"
        # Wait until the stray answer has reached the idle connection (had it not yet, no
        # HTTP/1.1 client could tell it from the next request's answer).
        await wait_until(lambda: all(c.protocol.should_close for c in client._idle))
        async with await client.request("GET", "/v2.1/x", [], b"") as answer:
            assert (answer.status, await answer.content.read()) == (200, b"ok")
        client.close()
    assert [s.connection for s in raw.seen] == [1, 2]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_a_kept_connection_the_server_closed_is_retried_once_when_idempotent(
    method: str,
) -> None:
    # The server takes the second request on connection 1 and closes without answering
    # (it had timed the connection out as the request went up).
    raw, server = await serve(lambda c, n: None if (c, n) == (1, 2) else OK)
    async with server:
        client = client_for(raw)
        assert await get(client, method) == b"ok"
        assert await get(client, method) == b"ok"
        client.close()
    assert [s.connection for s in raw.seen] == [1, 1, 2]


async def test_a_post_is_never_sent_twice() -> None:
    raw, server = await serve(lambda c, n: None if (c, n) == (1, 2) else OK)
    async with server:
        client = client_for(raw)
        assert await get(client, "POST", b"{}") == b"ok"
        with pytest.raises(ServerDisconnectedError):
            await get(client, "POST", b"{}")
        client.close()
    assert [s.connection for s in raw.seen] == [1, 1]


async def test_interim_answers_are_read_past() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" + OK
    raw, server = await serve(lambda _c, _n: interim)
    async with server:
        client = client_for(raw)
        async with await client.request("POST", "/v2.1/x", [], b"{}") as answer:
            assert (answer.status, await answer.content.read()) == (200, b"ok")
        client.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    ],
    ids=["switching-protocols", "bad-status", "two-lengths", "bad-length", "bad-header"],
)
async def test_a_broken_answer_is_refused_and_its_connection_dropped(answer: bytes) -> None:
    raw, server = await serve(lambda c, _n: answer if c == 1 else OK)
    async with server:
        client = client_for(raw)
        with pytest.raises(BrokenAnswer):
            await get(client)
        assert await get(client) == b"ok"
        client.close()
    assert [s.connection for s in raw.seen] == [1, 2]


async def test_head_answers_carry_no_body_and_keep_the_connection() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
    raw, server = await serve(lambda _c, n: head if n == 1 else OK)
    async with server:
        client = client_for(raw)
        async with await client.request("HEAD", "/v2.1/x", [], b"") as answer:
            assert (answer.content_length, await answer.content.read()) == (100, b"")
        assert await get(client) == b"ok"
        client.close()
    assert [s.connection for s in raw.seen] == [1, 1]


async def test_a_silent_upstream_times_out_within_the_read_timeout() -> None:
    raw, server = await serve(lambda _c, _n: b"")  # takes the request, answers nothing
    async with server:
        client = client_for(raw, read_timeout=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await get(client)
        assert 0.15 < loop.time() - started < 2.0
        client.close()


async def test_an_idle_connection_past_the_keepalive_is_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_module, "KEEPALIVE_SECONDS", -1.0)
    raw, server = await serve(lambda _c, _n: OK)
    async with server:
        client = client_for(raw)
        assert [await get(client), await get(client)] == [b"ok", b"ok"]
        client.close()
        await wait_until(lambda: raw.closed == 2)
    assert [s.connection for s in raw.seen] == [1, 2]


async def test_a_connect_that_never_completes_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer that drops SYNs cannot be made on loopback: the connect itself never returns.
    loop = asyncio.get_running_loop()

    async def never(*_: object, **__: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(loop, "create_connection", never)
    client = UpstreamClient("http://127.0.0.1:9", None, 0.2, 5.0)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await get(client)
    assert 0.15 < loop.time() - started < 2.0


async def test_nothing_listening_is_a_connect_error() -> None:
    client = UpstreamClient(f"http://127.0.0.1:{free_port()}", None, 2.0, 2.0)
    with pytest.raises(ConnectError):
        await get(client)


async def test_a_certificate_from_an_unknown_authority_is_a_tls_error(tmp_path: Path) -> None:
    ours, theirs = Authority.create(tmp_path / "ours"), Authority.create(tmp_path / "theirs", "X")
    issued = theirs.issue("nova")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(issued.cert_file, issued.key_file)
    raw = RawServer(lambda _c, _n: OK)
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        trusting_ours = ssl.create_default_context(cafile=str(ours.cert_file))
        client = UpstreamClient(f"https://127.0.0.1:{port}", trusting_ours, 2.0, 2.0)
        with pytest.raises(TLSError):
            await get(client)
        trusting_theirs = ssl.create_default_context(cafile=str(theirs.cert_file))
        client = UpstreamClient(f"https://127.0.0.1:{port}", trusting_theirs, 2.0, 2.0)
        assert await get(client) == b"ok"
        client.close()
    assert [s.connection for s in raw.seen] == [1]
