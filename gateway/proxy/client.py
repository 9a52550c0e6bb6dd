"""The HTTP/1.1 client of the upstream hop: pooled keep-alive connections to nova-api.

Owns connecting (TCP, TLS), writing a request exactly as it is given (the request line,
the headers in order, ``Host`` and ``Content-Length``, the body) and reading the answer
with aiohttp's own response protocol, so the answer's framing is decided by llhttp exactly
as aiohttp's client decides it; it must never decide anything, rewrite a header, nor retry
a request that is not idempotent.

Why not aiohttp's ``ClientSession``: for one small exchange it builds a request object,
merges session headers, looks up cookies, traces, resolves and re-checks the URL and
serialises through a writer, about a quarter of the lean gateway's CPU per call
(README "Performance"); the gateway already holds the exact bytes it decided to send.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import yarl
from aiohttp import ClientOSError, ServerDisconnectedError
from aiohttp.client_proto import ResponseHandler
from aiohttp.http import RawResponseMessage
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from multidict import CIMultiDictProxy

# As aiohttp's connector: an idle connection older than this is closed, not reused
# (servers close idle connections; a request sent as one closes is lost).
KEEPALIVE_SECONDS = 15.0
# RFC 9112 §9.3.1: only these may be sent again when a reused connection turns out closed.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# A request of these methods without a body carries no Content-Length (aiohttp's rule).
BODILESS = frozenset({"GET", "HEAD"})
READ_BUFFER = 64 * 1024
# aiohttp's client defaults: longer lines or more headers are a broken answer.
MAX_LINE = 8190
MAX_FIELD = 8190
MAX_HEADERS = 128


class ConnectError(Exception):
    """No connection could be made (refused, unreachable, no such host)."""


class TLSError(ConnectError):
    """The TLS handshake failed (the upstream's certificate, or the TLS settings)."""


class BrokenAnswer(Exception):
    """The upstream's answer could not be read as HTTP/1.1 (or asked to switch protocols)."""


@dataclass
class _Connection:
    transport: asyncio.Transport
    protocol: ResponseHandler
    idle_since: float = 0.0
    reused: bool = False


class Answer:
    """An answer's head and its body's stream; ``release()`` (or ``async with``) returns the
    connection to the pool if the body was read to its end, or closes it otherwise."""

    __slots__ = ("_client", "_connection", "content", "headers", "reason", "status")

    def __init__(
        self,
        client: UpstreamClient,
        connection: _Connection,
        message: RawResponseMessage,
        content: StreamReader,
    ) -> None:
        self._client = client
        self._connection: _Connection | None = connection
        self.status = message.code
        self.reason = message.reason
        self.headers: CIMultiDictProxy[str] = message.headers
        self.content = content

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        return int(value) if value is not None else None

    def release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._client.put_back(connection)

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.release()


class UpstreamClient:
    """Connections to one upstream (``scheme://host:port[/prefix]``), kept alive and
    reused most-recent first; the caller bounds how many exist at once."""

    def __init__(
        self,
        base_url: str,
        tls: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        url = yarl.URL(base_url, encoded=True)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.raw_host
        self._port: int = url.port or (443 if url.scheme == "https" else 80)
        self._prefix = "" if url.raw_path == "/" else url.raw_path
        self._host_header = url.host_port_subcomponent
        self._https = url.scheme == "https"
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: list[_Connection] = []  # oldest first
        self._closed = False

    async def request(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Answer:
        """Send one request (``target``: the path and query, appended to the prefix) and
        return its answer's head. Raises ConnectError, TLSError, TimeoutError (connect or
        read timeout), BrokenAnswer, or aiohttp's ClientError/OSError for a connection
        that broke."""
        data = self._serialise(method, target, headers, body)
        connection = self._idle_connection()
        if connection is None:
            connection = await self._connect()
        try:
            return await self._exchange(connection, method, data)
        except (ServerDisconnectedError, ClientOSError):
            if not (connection.reused and method in IDEMPOTENT):
                raise
        # The server had closed the kept-alive connection as this request went out:
        # nothing of it was answered, and an idempotent request may go again (once).
        connection = await self._connect()
        return await self._exchange(connection, method, data)

    def _serialise(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> bytes:
        fields = [f"{name}: {value}" for name, value in headers]
        # A CR or LF inside the target, a name or a value would end the line early: what
        # the upstream read would not be what was decided (aiohttp's writer refuses it too).
        checked = target + "".join(fields)
        if "\r" in checked or "\n" in checked:
            raise ValueError("Newline or carriage return character detected in HTTP header")
        if body or method not in BODILESS:
            fields.append(f"Content-Length: {len(body)}")
        fields.append("\r\n")  # the blank line that ends the head
        head = f"{method} {self._prefix}{target} HTTP/1.1\r\nHost: {self._host_header}\r\n"
        return (head + "\r\n".join(fields)).encode("utf-8") + body

    def _idle_connection(self) -> _Connection | None:
        idle = self._idle
        if not idle:
            return None
        expired = time.monotonic() - KEEPALIVE_SECONDS
        while idle and idle[0].idle_since < expired:
            idle.pop(0).protocol.close()
        while idle:
            connection = idle.pop()
            if connection.protocol.is_connected() and not connection.protocol.should_close:
                connection.reused = True
                return connection
            connection.protocol.close()
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._https and self._tls is None:  # the system's trust store, read once
            self._tls = await asyncio.to_thread(ssl.create_default_context)
        try:
            async with asyncio.timeout(self._connect_timeout):
                transport, protocol = await loop.create_connection(
                    lambda: ResponseHandler(loop),
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls is not None else None,
                )
        except TimeoutError:
            raise  # no answer to the connect within connect_timeout: a timeout, not a refusal
        except ssl.SSLError as exc:
            raise TLSError(str(exc)) from exc
        except OSError as exc:
            raise ConnectError(str(exc)) from exc
        return _Connection(transport, protocol)

    async def _exchange(self, connection: _Connection, method: str, data: bytes) -> Answer:
        protocol = connection.protocol
        try:
            protocol.set_response_params(
                skip_payload=method == "HEAD",
                # An answer with neither length nor chunks ends when the server closes
                # (RFC 9112 §6.3), as aiohttp's session reads it by default.
                read_until_eof=True,
                auto_decompress=False,
                read_timeout=self._read_timeout,
                read_bufsize=READ_BUFFER,
                max_line_size=MAX_LINE,
                max_field_size=MAX_FIELD,
                max_headers=MAX_HEADERS,
            )
            if not protocol.is_connected():
                raise ServerDisconnectedError()
            connection.transport.write(data)
            protocol.start_timeout()
            while True:
                try:
                    message, payload = await protocol.read()
                except HttpProcessingError as exc:
                    raise BrokenAnswer(exc.message) from exc
                if message.code == 101 or message.upgrade:
                    raise BrokenAnswer("the upstream switched protocols")
                if not 100 <= message.code <= 199:
                    break  # 1xx interim answers are read past, as aiohttp does
        except BaseException:
            protocol.close()  # half an exchange: the connection can never be reused
            raise
        return Answer(self, connection, message, payload)

    def put_back(self, connection: _Connection) -> None:
        protocol = connection.protocol
        if self._closed or protocol.should_close or not protocol.is_connected():
            protocol.close()
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.protocol.close()
