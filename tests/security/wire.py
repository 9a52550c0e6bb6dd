"""Raw HTTP/1.1 over loopback sockets for the security suite: byte-exact requests out, answers in.

Owns building attack requests byte for byte and reading the gateway's answers off the
socket; it must never normalise what a test sends (nothing is added, merged, folded or
re-encoded unless the caller asks) nor wait on a socket without a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0
CLOSE_WAIT = 0.5  # how long to wait for the gateway to close after its last answer
MAX_HEAD = 64 * 1024
MAX_BODY = 2 * 1024 * 1024
MAX_CHUNKS = 10_000
MAX_TRAILERS = 256

Header = tuple[str, str]


@dataclass(frozen=True)
class Targets:
    """What a replayed attack request names: its servers and the gateway's port.

    The suite makes fresh servers per test; a replay elsewhere (tests/e2e) passes its own.
    """

    server: str  # the attacked server, of project p1
    port: int  # the gateway's port (absolute-form targets name it)
    others: tuple[str, str]  # two more servers of p1 (pipelining sends to three)
    locked: str  # a server of p1 locked by its owner
    doomed: str  # a server of p1 that a member's allowed DELETE may delete


@dataclass(frozen=True)
class AttackRequest:
    """One request a security module sends, as data: its bytes built for any ``Targets``."""

    label: str  # "<test>/<case>", unique within its module
    build: Callable[[Targets], bytes]
    acts: bool = False  # the suite expects it forwarded and run (it changes the server)
    replies: int = 1  # final answers it asks for (pipelined requests ask for more)
    head: bool = False  # a HEAD request: the answer has no body


def request_bytes(
    method: str,
    target: str,
    headers: Sequence[Header] = (),
    body: bytes = b"",
    *,
    version: str = "HTTP/1.1",
    host: bool = True,
    content_length: bool = True,
    close: bool = True,
    raw_lines: Sequence[bytes] = (),
) -> bytes:
    """One request exactly as written: ``Host`` first, then ``headers`` in order.

    ``Content-Length`` is added for a non-empty body (or a POST/PUT/PATCH) when
    ``content_length``; ``Connection: close`` when ``close``; ``raw_lines`` go in as they
    are (CR, LF, NUL and non-ASCII included), after the other headers.
    """
    lines = [f"{method} {target} {version}".encode()]
    if host:
        lines.append(f"Host: {LOOPBACK}".encode())
    lines.extend(f"{name}: {value}".encode() for name, value in headers)
    if content_length and (body or method in ("POST", "PUT", "PATCH")):
        lines.append(b"Content-Length: %d" % len(body))
    if close:
        lines.append(b"Connection: close")
    lines.extend(raw_lines)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*pieces: bytes, extension: bytes = b"", trailers: Sequence[bytes] = ()) -> bytes:
    """A chunked body: each piece one chunk (``extension`` after each size), then trailers."""
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(piece), extension, piece) for piece in pieces if piece)
    return out + b"0\r\n" + b"".join(line + b"\r\n" for line in trailers) + b"\r\n"


@dataclass(frozen=True)
class Reply:
    """One answer as it came off the wire (header names as sent, repeats kept)."""

    version: str
    status: int
    reason: str
    headers: tuple[Header, ...]
    body: bytes

    def values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def header(self, name: str) -> str | None:
        values = self.values(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def fault(self) -> str | None:
        """The name of a Nova fault body (``badRequest``, ...), None for anything else."""
        try:
            body = self.json()
        except ValueError:
            return None
        if isinstance(body, dict) and len(body) == 1:
            name, detail = next(iter(body.items()))
            if isinstance(detail, dict) and "code" in detail:
                return str(name)
        return None

    @property
    def webob_page(self) -> bool:
        """webob's error page, as Nova's WSGI layer (router, sizelimit) writes it: JSON
        ``{"message", "code", "title"}``, or text led by the status line, or HTML."""
        content_type = self.header("Content-Type") or ""
        status_line = f"{self.status} {self.reason}"
        if content_type.startswith("application/json"):
            try:
                body = self.json()
            except ValueError:
                return False
            return isinstance(body, dict) and set(body) == {"message", "code", "title"}
        if content_type.startswith("text/plain"):
            return self.body.startswith(status_line.encode() + b"\n\n")
        return content_type.startswith("text/html") and status_line.encode() in self.body

    @property
    def nova_shaped(self) -> bool:
        """A refusal as some layer of Nova's stack writes it: a fault, webob's page, or
        keystonemiddleware's ``{"error": ...}``."""
        return self.fault is not None or self.webob_page

    @property
    def from_gateway_parser(self) -> bool:
        """aiohttp's own 400 (text/plain): the request never reached the pipeline."""
        return self.status == 400 and "text/plain" in (self.header("Content-Type") or "")


@dataclass(frozen=True)
class Exchange:
    """The answers read on one connection, and how the connection ended."""

    replies: tuple[Reply, ...]
    timed_out: bool  # the deadline passed before the expected answers arrived
    closed: bool | None  # the gateway closed after its last answer (None: not checked)

    @property
    def reply(self) -> Reply:
        assert not self.timed_out, "the gateway did not answer before the deadline"
        assert self.replies, "the gateway closed the connection without an answer"
        return self.replies[0]

    @property
    def statuses(self) -> list[int]:
        return [reply.status for reply in self.replies]


def _header_pairs(block: bytes) -> tuple[Header, ...]:
    pairs: list[Header] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        pairs.append((name.decode("latin-1"), value.strip().decode("latin-1")))
    return tuple(pairs)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    for _ in range(MAX_CHUNKS):
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            for _ in range(MAX_TRAILERS):
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    return bytes(out)
            raise AssertionError("too many trailers in an answer")
        if len(out) + size > MAX_BODY:
            raise AssertionError("answer body larger than the suite reads")
        out += await reader.readexactly(size)
        await reader.readexactly(2)
    raise AssertionError("too many chunks in an answer")


async def read_reply(reader: asyncio.StreamReader, *, head: bool = False) -> Reply | None:
    """The next answer on ``reader``; None when the connection ended before one began."""
    try:
        block = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise AssertionError(f"answer cut off in its head: {exc.partial[:200]!r}") from None
    status_line, _, rest = block.partition(b"\r\n")
    version, status, reason = ([*status_line.decode("latin-1").split(" ", 2), ""])[:3]
    headers = _header_pairs(rest)
    reply = Reply(version, int(status), reason, headers, b"")
    code = reply.status
    if head or 100 <= code < 200 or code in (204, 304):
        return reply
    if "chunked" in (reply.header("Transfer-Encoding") or "").lower():
        body = await _read_chunked(reader)
    elif reply.header("Content-Length") is not None:
        length = int(reply.header("Content-Length") or "0")
        if length > MAX_BODY:
            raise AssertionError("answer body larger than the suite reads")
        body = await reader.readexactly(length)
    else:
        body = await reader.read(MAX_BODY)  # delimited by the end of the connection
    return Reply(reply.version, code, reply.reason, headers, body)


async def exchange(
    port: int,
    data: bytes,
    *,
    replies: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    head: bool = False,
    check_closed: bool = False,
) -> Exchange:
    """Send ``data`` on a new connection and read up to ``replies`` final answers.

    Interim (1xx) answers are kept and do not count. Reading stops at the connection's
    end, after ``replies`` answers, or at ``timeout`` (then ``timed_out`` is True).
    """
    reader, writer = await asyncio.open_connection(LOOPBACK, port, limit=MAX_HEAD)
    read: list[Reply] = []
    timed_out = False
    closed: bool | None = None
    try:
        writer.write(data)
        await writer.drain()
        try:
            async with asyncio.timeout(timeout):
                finals = 0
                for _ in range(replies + 8):  # bounded: interim answers are few
                    if finals >= replies:
                        break
                    reply = await read_reply(reader, head=head)
                    if reply is None:
                        closed = True
                        break
                    read.append(reply)
                    if reply.status >= 200:
                        finals += 1
        except TimeoutError:
            timed_out = True
        if check_closed and closed is None and not timed_out:
            closed = await connection_closed(reader)
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_WAIT)
    return Exchange(tuple(read), timed_out, closed)


async def connection_closed(reader: asyncio.StreamReader, wait: float = CLOSE_WAIT) -> bool:
    """True when the peer closes (EOF or reset) within ``wait`` seconds, sending nothing."""
    try:
        return await asyncio.wait_for(reader.read(1), wait) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True
