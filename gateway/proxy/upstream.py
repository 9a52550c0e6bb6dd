"""The upstream hop: pooled connections, timeouts, streaming, upstream faults.

Owns moving bytes to nova-api and back; it must never import policy, audit or the
catalogue, nor change what was decided (it sends exactly what it is given).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
import structlog
from aiohttp import web

from gateway.nova.faults import Fault
from gateway.proxy.client import Answer, BrokenAnswer, ConnectError, TLSError, UpstreamClient
from gateway.proxy.headers import RESPONSE_SKIP, end_to_end
from gateway.tls.contexts import verification_failure

log = structlog.get_logger(__name__)

STREAM_CHUNK = 64 * 1024
# Only small JSON answers are ever held whole to be rewritten; anything larger streams.
REWRITE_MAX_BYTES = 256 * 1024

# A per-call change of a small JSON answer body (e.g. rate limits added to GET /limits);
# it returns the new body, or None to leave the answer as it came.
ResponseRewrite = Callable[[bytes], bytes | None]


@dataclass(frozen=True)
class UpstreamSettings:
    base_url: str  # scheme://host:port[/prefix], without the /v2.1
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    pool_size: int
    pool_wait: float
    pool_retry_after: int
    # Verifies an https upstream (the deployment's CA, a client certificate); None: the
    # system's trust store. Verification is never off.
    tls: ssl.SSLContext | None = None


@dataclass
class Exchange:
    """What the upstream answered, for the observers of a call."""

    status: int | None = None
    seconds: float = 0.0
    error: str | None = None  # refused | tls | reset | timeout | pool_exhausted | broken_stream
    request_id: str | None = None  # Nova's own x-openstack-request-id, for correlation


class Upstream:
    """One pooled client session per worker process."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        # Forwarded calls go over the gateway's own client; the session serves the rest
        # (Keystone, server reads, the version document), where aiohttp's ease matters more.
        self.client = UpstreamClient(
            settings.base_url, settings.tls, settings.connect_timeout, settings.read_timeout
        )
        # The bound on the client's connections: waiting for one is bounded (pool_wait,
        # then 503) and told apart from connecting (connect_timeout, then 504).
        self._slots = asyncio.Semaphore(settings.pool_size)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.settings.pool_size,
                limit_per_host=0,
                enable_cleanup_closed=True,
                ssl=self.settings.tls if self.settings.tls is not None else True,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                # One session carries every client's calls: a cookie Nova (or anything
                # in front of it) set for one must never go up with another's.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=self.settings.total_timeout,
                    sock_connect=self.settings.connect_timeout,
                    sock_read=self.settings.read_timeout,
                ),
            )
        return self._session

    async def close(self) -> None:
        self.client.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def forward(
        self,
        request: web.BaseRequest,
        method: str,
        path_qs: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        response_headers: Sequence[tuple[str, str]],
        exchange: Exchange,
        rewrite: ResponseRewrite | None = None,
    ) -> web.StreamResponse:
        """Send one request upstream and stream the answer back to ``request``.

        ``rewrite`` applies to a 200 JSON answer of at most REWRITE_MAX_BYTES that is not
        content-encoded; every other answer streams through unchanged.
        """
        started = time.monotonic()
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), self.settings.pool_wait)
            else:
                # A free slot is taken at once: no task and no timer for wait_for to make
                # (in Python 3.11 a wait_for costs a task and a turn of the loop).
                await self._slots.acquire()
        except TimeoutError:
            exchange.error = "pool_exhausted"
            raise Fault(
                503,
                "The compute API is busy; retry later.",
                reason="upstream_pool_exhausted",
                retry_after=self.settings.pool_retry_after,
            ) from None
        try:
            return await self._exchange(
                request, method, path_qs, headers, body, response_headers, exchange, rewrite
            )
        finally:
            self._slots.release()
            exchange.seconds = time.monotonic() - started

    async def _exchange(
        self,
        request: web.BaseRequest,
        method: str,
        path_qs: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        response_headers: Sequence[tuple[str, str]],
        exchange: Exchange,
        rewrite: ResponseRewrite | None,
    ) -> web.StreamResponse:
        # total_timeout bounds the whole exchange: the head and first chunk here, the
        # rest of a streamed body in _stream (read_timeout bounds each wait for bytes).
        deadline = asyncio.get_running_loop().time() + self.settings.total_timeout
        answer: Answer | None = None
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    answer = await self.client.request(method, path_qs, headers, body)
                    exchange.status = answer.status
                    exchange.request_id = answer.headers.get("x-openstack-request-id")
                    # Read the first chunk before committing to a status, so that a body
                    # that never starts becomes a 504 rather than a hung response.
                    first = await answer.content.read(STREAM_CHUNK)
                    rewritten = False
                    if rewrite is not None and _rewritable(answer):
                        first, rewritten = await _read_and_rewrite(answer, first, rewrite)
            except TimeoutError:  # also the read timeout (aiohttp's ServerTimeoutError)
                exchange.error = "timeout"
                raise _upstream_timeout() from None
            except TLSError as exc:
                exchange.error = "tls"
                log.error(
                    "tls_handshake_failed",
                    peer=self.settings.base_url,
                    error=verification_failure(exc) or type(exc).__name__,
                )
                raise Fault(
                    502, "The compute API's identity could not be verified.", reason="upstream_tls"
                ) from None
            except ConnectError:
                exchange.error = "refused"
                raise Fault(
                    502, "The compute API is unreachable.", reason="upstream_refused"
                ) from None
            except (BrokenAnswer, aiohttp.ClientError, OSError):
                exchange.error = "reset"
                raise Fault(
                    502, "The compute API closed the connection.", reason="upstream_reset"
                ) from None
            # The whole body already in hand (most of Nova's answers): its headers and body
            # leave in one write, not two. HEAD keeps the streaming path (no body to join).
            whole = answer.content.at_eof() and request.method != "HEAD"
            kind = _WholeResponse if whole else web.StreamResponse
            response = kind(status=answer.status, reason=answer.reason)
            for key, value in end_to_end(answer.headers.items(), RESPONSE_SKIP):
                response.headers.add(key, value)
            for key, value in response_headers:
                if key not in response.headers:
                    response.headers[key] = value
            if rewritten:
                response.content_length = len(first)
            elif answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            if whole:
                await self._finish(response, first, request, exchange)
            else:
                await self._stream(answer, response, first, request, exchange, deadline)
            return response
        finally:
            if answer is not None:
                answer.release()  # back to the pool only when read to its end

    @staticmethod
    async def _finish(
        response: web.StreamResponse, body: bytes, request: web.BaseRequest, exchange: Exchange
    ) -> None:
        try:
            await response.write_eof(body)
        except (TimeoutError, aiohttp.ClientError, OSError):
            exchange.error = "broken_stream"
            if request.transport is not None:
                request.transport.abort()

    async def _stream(
        self,
        answer: Answer,
        response: web.StreamResponse,
        first: bytes,
        request: web.BaseRequest,
        exchange: Exchange,
        deadline: float,
    ) -> None:
        chunk = first
        try:
            async with asyncio.timeout_at(deadline):
                while chunk:
                    await response.write(chunk)
                    chunk = await answer.content.read(STREAM_CHUNK)
                await response.write_eof()
        except (TimeoutError, aiohttp.ClientError, OSError):
            # The status is already sent: cutting the connection is the only honest
            # way to tell the client the body is incomplete.
            exchange.error = "broken_stream"
            if request.transport is not None:
                request.transport.abort()


class _WholeResponse(web.StreamResponse):
    """An answer sent at once: aiohttp holds its headers back and writes them with the
    body (as its own Response does) instead of on their own at prepare()."""

    _send_headers_immediately = False


def _rewritable(answer: Answer) -> bool:
    return (
        answer.status == 200
        and "json" in answer.headers.get("Content-Type", "").lower()
        and "Content-Encoding" not in answer.headers
        and (answer.content_length is None or answer.content_length <= REWRITE_MAX_BYTES)
    )


async def _read_and_rewrite(
    answer: Answer, first: bytes, rewrite: ResponseRewrite
) -> tuple[bytes, bool]:
    """The whole (small) body rewritten and True; or what was read so far and False when
    the body outgrew REWRITE_MAX_BYTES (the caller then streams the rest after it)."""
    chunks = [first]
    size = len(first)
    chunk = first
    while chunk:
        if size > REWRITE_MAX_BYTES:
            return b"".join(chunks), False
        chunk = await answer.content.read(STREAM_CHUNK)
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    changed = rewrite(body)
    return (body if changed is None else changed), True


def _upstream_timeout() -> Fault:
    return Fault(504, "The compute API did not answer in time.", reason="upstream_timeout")
