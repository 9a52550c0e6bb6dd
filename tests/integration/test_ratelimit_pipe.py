"""The rate limiter's pipelined Redis connection against real redis-server processes (and,
for a server that breaks the protocol, a socket of the test's own): each caller gets its
own reply in a crowd with callers giving up, a lost connection fails whoever waits and
the next call connects again, scripts Redis forgot are sent whole, logins and databases
work, and nothing waits longer than the connect timeout on a Redis that does not answer."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gateway.ratelimit.pipe import Address, PipedScript, RedisPipe
from tests.conftest import skip_or_fail
from tests.integration.test_ratelimit_redis import REDIS_HOST, REDIS_PORT, redis_reachable
from tests.support.redis_lab import RedisProcess, data_node, redis_server

CONNECT_TIMEOUT = 2.0


@pytest.fixture
async def pipe() -> AsyncIterator[RedisPipe]:
    if not redis_reachable():
        skip_or_fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (the rate-limit tests need one)")
    pipe = RedisPipe(Address(REDIS_HOST, REDIS_PORT), CONNECT_TIMEOUT)
    yield pipe
    await pipe.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone: its scripts, users and databases are ours."""
    if redis_server() is None:
        skip_or_fail("redis-server is not installed (the rate-limit tests need one)")
    node = data_node("pipe", tmp_path)
    try:
        yield node
    finally:
        node.stop()


async def test_every_caller_gets_its_own_reply_in_a_crowd(pipe: RedisPipe) -> None:
    """300 callers in one turn of the loop (one write), a third of them giving up before
    their reply: every caller that stayed gets exactly its own, and the connection stays
    in step for the next crowd."""
    chooser = random.Random(20261207)
    for crowd in range(3):
        payloads = [f"{crowd}-{index}-{uuid.uuid4().hex}" for index in range(300)]
        tasks = [asyncio.create_task(pipe.execute("ECHO", payload)) for payload in payloads]
        await asyncio.sleep(0)  # every command is queued for the same write
        quitters = {index for index in range(300) if chooser.random() < 1 / 3}
        for index in quitters:
            tasks[index].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for index, (payload, result) in enumerate(zip(payloads, results, strict=True)):
            if index in quitters:
                assert isinstance(result, asyncio.CancelledError)
            else:
                assert result == payload.encode(), (crowd, index)
    assert await pipe.execute("PING") == b"PONG"


async def test_a_lost_connection_fails_whoever_waits_and_the_next_call_reconnects(
    pipe: RedisPipe,
) -> None:
    first_id = await pipe.execute("CLIENT", "ID")
    key = f"nova-gateway-test-{uuid.uuid4().hex}"
    waiting = asyncio.create_task(pipe.execute("BLPOP", key, 30))  # in flight for 30 s
    killer = redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=2)
    try:
        deadline = time.monotonic() + 5
        while not any(
            c["id"] == str(first_id) and c["cmd"] == "blpop" for c in killer.client_list()
        ):
            assert time.monotonic() < deadline, "the BLPOP never reached Redis"
            await asyncio.sleep(0.01)
        started = time.monotonic()
        assert killer.client_kill_filter(_id=first_id) == 1
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 2  # told at once, not at BLPOP's timeout
    finally:
        killer.close()
    assert await pipe.execute("PING") == b"PONG"
    assert await pipe.execute("CLIENT", "ID") != first_id  # a new connection


async def test_a_script_redis_forgot_is_sent_whole(private_redis: RedisProcess) -> None:
    pipe = RedisPipe(Address("127.0.0.1", private_redis.port), CONNECT_TIMEOUT)
    script = PipedScript(pipe, "return {KEYS[1], ARGV[1]}")
    admin = private_redis.client()
    try:
        assert admin.script_exists(script.sha) == [False]
        assert await script(["k"], ["first"]) == [b"k", b"first"]  # NOSCRIPT, then EVAL
        assert admin.script_exists(script.sha) == [True]  # EVAL left it cached
        admin.script_flush()  # as a restarted Redis would
        assert await script(["k"], [2]) == [b"k", b"2"]
        with pytest.raises(ResponseError, match="ERR"):
            await pipe.execute("NO-SUCH-COMMAND")  # an error reply is the caller's alone
        assert await script(["k"], ["after"]) == [b"k", b"after"]
    finally:
        admin.close()
        await pipe.close()


async def test_login_by_user_or_password_and_the_database(private_redis: RedisProcess) -> None:
    admin = private_redis.client()
    admin.acl_setuser(
        "gateway", enabled=True, passwords=["+s3cret"], keys=["~*"], commands=["+@all"]
    )
    user = RedisPipe(
        Address("127.0.0.1", private_redis.port, db=2, username="gateway", password="s3cret"),
        CONNECT_TIMEOUT,
    )
    wrong = RedisPipe(
        Address("127.0.0.1", private_redis.port, username="gateway", password="guess"),
        CONNECT_TIMEOUT,
    )
    try:
        assert await user.execute("ACL", "WHOAMI") == b"gateway"
        assert await user.execute("SET", "counted", "yes") == b"OK"
        assert redis.Redis("127.0.0.1", private_redis.port, db=2).get("counted") == b"yes"
        assert admin.get("counted") is None  # not in database 0
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await wrong.execute("PING")
        admin.config_set("requirepass", "default-pass")  # the default user's password
        plain = RedisPipe(
            Address("127.0.0.1", private_redis.port, password="default-pass"), CONNECT_TIMEOUT
        )
        anonymous = RedisPipe(Address("127.0.0.1", private_redis.port), CONNECT_TIMEOUT)
        assert await plain.execute("ACL", "WHOAMI") == b"default"
        with pytest.raises(ResponseError, match="NOAUTH"):
            await anonymous.execute("PING")
        await plain.close()
        await anonymous.close()
    finally:
        admin.close()
        await user.close()
        await wrong.close()


async def test_a_redis_that_never_answers_the_login_costs_one_connect_timeout() -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    pipe = RedisPipe(Address("127.0.0.1", port, password="x"), 0.2)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await pipe.execute("PING")
        assert time.monotonic() - started < 1.0
    finally:
        await pipe.close()
        silent.close()
        await silent.wait_closed()


async def test_a_reply_nobody_asked_for_drops_the_connection() -> None:
    """A server out of step (two replies to one command): the extra reply is nobody's, so
    no later reply on that connection can be trusted; the next call uses a new one."""
    connections: list[int] = []

    async def answer_twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        while await reader.read(4096):
            writer.write(b"+OK\r\n+EXTRA\r\n")
        writer.close()

    server = await asyncio.start_server(answer_twice, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pipe = RedisPipe(Address("127.0.0.1", port), CONNECT_TIMEOUT)
    try:
        assert await pipe.execute("PING") == b"OK"
        late: Any = None
        deadline = time.monotonic() + 5
        while late is None:  # the connection closes once the extra reply is read
            try:
                late = await pipe.execute("PING")
            except RedisConnectionError:
                assert time.monotonic() < deadline
                continue
        assert late == b"OK"
        assert len(connections) == 2
    finally:
        await pipe.close()
        server.close()
        await server.wait_closed()


def test_the_same_under_uvloop_as_the_gateway_runs() -> None:
    """The gateway's workers run uvloop when it is installed (its transports are not
    asyncio's classes): the crowd and the lost connection again on its loop."""
    uvloop = pytest.importorskip("uvloop")
    if not redis_reachable():
        skip_or_fail(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (the rate-limit tests need one)")

    async def both() -> None:
        pipe = RedisPipe(Address(REDIS_HOST, REDIS_PORT), CONNECT_TIMEOUT)
        try:
            async with asyncio.timeout(20):  # a reply that never comes fails, not hangs
                await test_every_caller_gets_its_own_reply_in_a_crowd(pipe)
                await test_a_lost_connection_fails_whoever_waits_and_the_next_call_reconnects(pipe)
        finally:
            await pipe.close()

    uvloop.run(both())


def test_the_password_is_not_in_the_address_shown() -> None:
    address = Address("127.0.0.1", 6379, username="gateway", password="s3cret-value")
    assert "s3cret-value" not in repr(address) and "gateway" in repr(address)
