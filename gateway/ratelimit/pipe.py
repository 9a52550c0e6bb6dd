"""One pipelined connection to one Redis: every rate-limit check of a worker on one socket.

Owns connecting (TLS, AUTH, SELECT, within the connect timeout), sending the commands of
one turn of the event loop in one write, and handing each reply to its caller in order
(Redis answers a connection's commands in the order it read them); it must never give a
caller another caller's reply, nor leave one waiting on a connection that is gone.

Why not redis-py's client for this one command: its per-command Python (pool bookkeeping,
a timer per read, encoding each argument) costs about ten times the CPU of packing with
hiredis and parsing with hiredis on a connection of our own (README, "Performance").
redis-py still connects to Sentinel-managed and clustered Redis, which move primaries.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError


@dataclass(frozen=True)
class Address:
    """Where the Redis is and how to log in: a single Redis, not Sentinel nor a cluster."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line
    # The context for each new connection (it verifies the Redis's chain and name; renewed
    # files are read again); None: no TLS.
    tls: Callable[[], ssl.SSLContext] | None = None

    @classmethod
    def of_pool(cls, kwargs: dict[str, Any], tls: Callable[[], ssl.SSLContext] | None) -> Address:
        """From redis-py's ConnectionPool.connection_kwargs (what it parsed of the URL)."""
        return cls(
            host=str(kwargs.get("host") or "localhost"),
            port=int(kwargs.get("port") or 6379),
            db=int(kwargs.get("db") or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            tls=tls,
        )


class _Connection(asyncio.Protocol):
    """A connected socket, its reply parser, and the callers waiting, oldest first."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.closed = False
        self._transport: asyncio.Transport | None = None
        self._parser = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._flush_due = False

    def send(self, command: bytes) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        if self.closed:
            future.set_exception(RedisConnectionError("the Redis connection is closed"))
            return future
        self._waiting.append(future)
        self._outgoing.append(command)
        if not self._flush_due:
            # The commands of this turn of the loop leave together: one write for many.
            self._flush_due = True
            self.loop.call_soon(self._flush)
        return future

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()  # connection_lost fails whoever still waits
        else:
            self._lost(RedisConnectionError("the Redis connection was closed"))

    def _flush(self) -> None:
        self._flush_due = False
        if self._outgoing and self._transport is not None and not self.closed:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
            while (reply := self._parser.gets()) is not False:
                if not self._waiting:
                    raise RedisConnectionError("Redis sent a reply nobody asked for")
                future = self._waiting.popleft()
                if future.done():
                    continue  # its caller gave up (a timeout, a client that left)
                if isinstance(reply, ResponseError):
                    message = str(reply)
                    future.set_exception(
                        NoScriptError(message) if message.startswith("NOSCRIPT") else reply
                    )
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, RedisConnectionError) as exc:
            # Out of step with the server: no later reply could be trusted to be ours.
            self._lost(RedisConnectionError(f"Redis protocol error: {exc}"))
            if self._transport is not None:
                self._transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}"))

    def _lost(self, error: RedisConnectionError) -> None:
        self.closed = True
        self._outgoing.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)


class RedisPipe:
    """Commands to one Redis over one connection, opened on first use and again after a
    loss; callers of one turn of the loop share a write, their replies one read."""

    def __init__(self, address: Address, connect_timeout: float) -> None:
        self.address = address
        self._connect_timeout = connect_timeout
        self._connection: _Connection | None = None
        self._connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    async def execute(self, *arguments: str | bytes | int | float) -> Any:
        connection = self._connection
        if connection is None or connection.closed or not _running_in(connection.loop):
            connection = await self._connect()
        return await connection.send(_pack(arguments))

    def abort(self) -> None:
        """Drop the connection (after a timeout: a Redis that hangs is not waited on
        twice); whoever still waits fails, the next command connects again."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def close(self) -> None:
        self.abort()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._connecting[0] is not loop:
            self._connecting = (loop, asyncio.Lock())
        async with self._connecting[1]:  # one connect for all who found the pipe closed
            current = self._connection
            if current is not None and not current.closed and current.loop is loop:
                return current
            self.abort()
            async with asyncio.timeout(self._connect_timeout):
                connection = await self._open(loop)
            self._connection = connection
            return connection

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        address = self.address
        # Building a context reads its files: off the loop (only when connecting).
        context = await asyncio.to_thread(address.tls) if address.tls is not None else None
        _, connection = await loop.create_connection(
            lambda: _Connection(loop),
            address.host,
            address.port,
            ssl=context,
            server_hostname=address.host if context is not None else None,
        )
        try:
            login: list[Sequence[str | int]] = []
            if address.password:
                login.append(
                    ("AUTH", address.username, address.password)
                    if address.username
                    else ("AUTH", address.password)
                )
            if address.db:
                login.append(("SELECT", address.db))
            for reply in [connection.send(_pack(command)) for command in login]:
                await reply
        except BaseException:
            connection.close()
            raise
        return connection


def _pack(arguments: Sequence[str | bytes | int | float]) -> bytes:
    # hiredis's stub types its argument as a one-element tuple: any length packs.
    packed: bytes = hiredis.pack_command(cast(Any, tuple(arguments)))
    return packed


def _running_in(loop: asyncio.AbstractEventLoop) -> bool:
    # A limiter outlives an event loop in tests (and a worker's loop is its own): a
    # connection of another loop is never used from this one.
    return asyncio.get_running_loop() is loop


class PipedScript:
    """A Lua script run by its SHA-1 (EVALSHA), sent whole (EVAL) when Redis no longer
    has it (restarted, SCRIPT FLUSH): as redis-py's Script does."""

    def __init__(self, pipe: RedisPipe, script: str) -> None:
        self._pipe = pipe
        self._script = script
        self.sha = hashlib.sha1(script.encode("utf-8"), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            return await self._pipe.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._pipe.execute("EVAL", self._script, len(keys), *keys, *args)
