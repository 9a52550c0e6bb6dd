"""Keystone mode against a small in-process fake Keystone: cache, coalescing and outages.

The fake answers only what these edge cases need; tests/e2e checks the real Keystone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from gateway.identity.cache import token_key
from gateway.identity.keystone import KeystoneAuthenticator
from gateway.nova.faults import Fault, Shape
from tests.support.waiting import wait_until

SERVICE_PASSWORD = "service-secret"
USER_TOKEN = "gAAAAAB-user-token-alice"


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clocks:
    """A monotonic and a wall clock that tests move together."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.wall = time.time()

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += seconds


@dataclass
class FakeKeystone:
    clocks: Clocks
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    service_tokens: set[str] = field(default_factory=set)
    service_lifetime: float = 3600.0
    validations: int = 0
    issues: int = 0
    status: int | None = None  # force every answer to this status (outage simulation)
    delay: float = 0.0
    gate: asyncio.Event | None = None  # validations wait on it (coalescing tests)
    password_ok: bool = True
    may_validate: bool = True

    def add(self, token: str, ttl: float = 3600.0, **scope: Any) -> None:
        body: dict[str, Any] = {
            "user": {"id": "u-alice", "name": "alice", "domain": {"id": "default"}},
            "roles": [{"id": "r1", "name": "Member"}, {"id": "r2", "name": "reader"}],
            "expires_at": iso(self.clocks.wall + ttl),
            "issued_at": iso(self.clocks.wall),
        }
        if not scope:
            scope = {"project": {"id": "p1", "name": "p1", "domain": {"id": "default"}}}
        body.update(scope)
        self.tokens[token] = {"token": body}

    async def issue(self, request: web.Request) -> web.Response:
        self.issues += 1
        if self.status:
            return web.json_response({}, status=self.status)
        body = await request.json()
        password = body["auth"]["identity"]["password"]["user"]["password"]
        if password != SERVICE_PASSWORD or not self.password_ok:
            return web.json_response({"error": {"code": 401}}, status=401)
        token = f"svc-{self.issues}"
        self.service_tokens.add(token)
        expires = iso(self.clocks.wall + self.service_lifetime)
        return web.json_response(
            {"token": {"issued_at": iso(self.clocks.wall), "expires_at": expires}},
            status=201,
            headers={"X-Subject-Token": token},
        )

    async def validate(self, request: web.Request) -> web.Response:
        self.validations += 1
        assert "nocatalog" in request.query
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status:
            return web.json_response({}, status=self.status)
        if request.headers.get("X-Auth-Token") not in self.service_tokens:
            return web.json_response({"error": {"code": 401}}, status=401)
        if not self.may_validate:
            return web.json_response({"error": {"code": 403}}, status=403)
        body = self.tokens.get(request.headers.get("X-Subject-Token", ""))
        if body is None:
            return web.json_response({"error": {"code": 404}}, status=404)
        return web.json_response(body)


@dataclass
class Lab:
    keystone: FakeKeystone
    clocks: Clocks
    url: str
    make: Callable[..., KeystoneAuthenticator]


@pytest_asyncio.fixture
async def lab() -> AsyncIterator[Lab]:
    clocks = Clocks()
    keystone = FakeKeystone(clocks)
    app = web.Application()
    app.router.add_post("/v3/auth/tokens", keystone.issue)
    app.router.add_get("/v3/auth/tokens", keystone.validate)
    server = TestServer(app)
    await server.start_server()
    url = str(server.make_url("/v3"))
    async with aiohttp.ClientSession() as session:
        made: list[KeystoneAuthenticator] = []

        def make(**options: Any) -> KeystoneAuthenticator:
            settings: dict[str, Any] = {
                "keystone_url": url,
                "username": "nova-gateway",
                "password": SERVICE_PASSWORD,
                "project_name": "service",
                "timeout": 2.0,
                "cache_time": 300,
                "invalid_cache_time": 30,
                "cache_size": 100,
                "clock": lambda: clocks.mono,
                "wall_clock": lambda: clocks.wall,
            }
            settings.update(options)
            authenticator = KeystoneAuthenticator(session, **settings)
            made.append(authenticator)
            return authenticator

        yield Lab(keystone, clocks, url, make)
        for authenticator in made:
            await authenticator.close()
    await server.close()


def auth(token: str = USER_TOKEN) -> list[tuple[str, str]]:
    return [("X-Auth-Token", token)]


async def fault_of(call: Awaitable[object]) -> Fault:
    with pytest.raises(Fault) as caught:
        await call
    return caught.value


async def test_valid_token_becomes_credentials_and_is_cached(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN, ttl=600)
    authenticator = lab.make()
    credentials = await authenticator.authenticate(auth())
    assert credentials.user_id == "u-alice"
    assert credentials.project_id == "p1"
    assert credentials.roles == {"member", "reader"}  # lower-cased
    # Nova's creds['roles'] are X-Roles as keystonemiddleware joins the token's names.
    assert credentials.role_names == ("Member", "reader")
    assert credentials.policy_credentials()["roles"] == ["Member", "reader"]
    assert credentials.user_domain_id == credentials.project_domain_id == "default"
    assert credentials.is_admin_project is True
    assert credentials.mode == "keystone"
    assert credentials.expires_at == pytest.approx(lab.clocks.wall + 600, abs=1)
    for _ in range(5):
        assert await authenticator.authenticate(auth()) is credentials
    assert lab.keystone.validations == 1
    assert lab.keystone.issues == 1  # one service token for all of it
    assert (authenticator.hits, authenticator.misses) == (5, 1)  # what the metrics read


async def test_system_domain_and_admin_project_fields(lab: Lab) -> None:
    lab.keystone.add("sys", system={"all": True})
    lab.keystone.add("dom", domain={"id": "d1", "name": "D1"}, is_admin_project=False)
    authenticator = lab.make()
    system = await authenticator.authenticate(auth("sys"))
    assert (system.system_scope, system.project_id, system.domain_id) == ("all", None, None)
    domain = await authenticator.authenticate(auth("dom"))
    assert (domain.domain_id, domain.project_id, domain.system_scope) == ("d1", None, None)
    assert domain.is_admin_project is False


async def test_cache_ttl_never_outlives_the_token(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN, ttl=2.0)
    authenticator = lab.make(cache_time=300)
    await authenticator.authenticate(auth())
    lab.clocks.advance(1.9)
    await authenticator.authenticate(auth())
    assert lab.keystone.validations == 1
    lab.clocks.advance(0.2)  # past expires_at: keystone must be asked again, and says 404
    del lab.keystone.tokens[USER_TOKEN]
    fault = await fault_of(authenticator.authenticate(auth()))
    assert (fault.status, fault.reason) == (401, "token_invalid")
    assert lab.keystone.validations == 2


async def test_cache_ttl_is_token_cache_time_for_long_lived_tokens(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN, ttl=3600)
    authenticator = lab.make(cache_time=5)
    await authenticator.authenticate(auth())
    lab.clocks.advance(4.9)
    await authenticator.authenticate(auth())
    assert lab.keystone.validations == 1
    lab.clocks.advance(0.2)
    await authenticator.authenticate(auth())
    assert lab.keystone.validations == 2


async def test_cache_time_zero_disables_the_cache(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    authenticator = lab.make(cache_time=0, invalid_cache_time=0)
    for _ in range(3):
        await authenticator.authenticate(auth())
        await fault_of(authenticator.authenticate(auth("nope")))
    assert lab.keystone.validations == 6


async def test_token_already_expired_in_keystones_answer_is_401(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN, ttl=-5)  # e.g. a keystone with allow_expired behaviour
    fault = await fault_of(lab.make().authenticate(auth()))
    assert (fault.status, fault.reason) == (401, "token_invalid")


async def test_invalid_tokens_are_negatively_cached(lab: Lab) -> None:
    authenticator = lab.make(invalid_cache_time=10)
    for _ in range(3):
        fault = await fault_of(authenticator.authenticate(auth("garbage")))
        assert (fault.status, fault.reason) == (401, "token_invalid")
    assert lab.keystone.validations == 1
    lab.clocks.advance(10.1)
    await fault_of(authenticator.authenticate(auth("garbage")))
    assert lab.keystone.validations == 2


async def test_garbage_floods_do_not_evict_valid_tokens(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    authenticator = lab.make(cache_size=3)
    await authenticator.authenticate(auth())
    for index in range(10):
        await fault_of(authenticator.authenticate(auth(f"garbage-{index}")))
    before = lab.keystone.validations
    await authenticator.authenticate(auth())
    assert lab.keystone.validations == before


async def test_cache_is_a_bounded_lru(lab: Lab) -> None:
    for name in ("a", "b", "c"):
        lab.keystone.add(name)
    authenticator = lab.make(cache_size=2)
    for name in ("a", "b", "a", "c"):  # c evicts b, the least recently used
        await authenticator.authenticate(auth(name))
    assert lab.keystone.validations == 3
    await authenticator.authenticate(auth("a"))
    assert lab.keystone.validations == 3
    await authenticator.authenticate(auth("b"))
    assert lab.keystone.validations == 4


async def test_concurrent_validations_of_one_token_are_coalesced(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    lab.keystone.add("other")
    lab.keystone.gate = asyncio.Event()
    authenticator = lab.make()
    await authenticator.service_token()  # so the gate holds only validations
    calls = [asyncio.ensure_future(authenticator.authenticate(auth())) for _ in range(50)]
    calls.append(asyncio.ensure_future(authenticator.authenticate(auth("other"))))
    await wait_until(lambda: lab.keystone.validations == 2, what="both validations at the gate")
    calls[0].cancel()  # the first caller going away must not cancel the others' answer
    lab.keystone.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert {getattr(r, "user_id", None) for r in results[1:]} == {"u-alice"}
    assert lab.keystone.validations == 2  # one per distinct token


async def test_coalesced_refusals_are_separate_faults(lab: Lab) -> None:
    lab.keystone.gate = asyncio.Event()
    authenticator = lab.make()
    await authenticator.service_token()
    calls = [asyncio.ensure_future(authenticator.authenticate(auth("bad"))) for _ in range(5)]
    await wait_until(lambda: lab.keystone.validations == 1, what="the validation at the gate")
    await wait_until(lambda: all(not call.done() for call in calls), what="every caller waiting")
    lab.keystone.gate.set()
    faults = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(f, Fault) and f.status == 401 for f in faults)
    assert len({id(f) for f in faults}) == 5
    assert lab.keystone.validations == 1


@pytest.mark.parametrize("status", [500, 502, 503, 400, 409])
async def test_keystone_errors_are_503_and_not_cached(lab: Lab, status: int) -> None:
    lab.keystone.add(USER_TOKEN)
    authenticator = lab.make()
    await authenticator.service_token()
    lab.keystone.status = status
    fault = await fault_of(authenticator.authenticate(auth()))
    assert (fault.status, fault.reason) == (503, "identity_unavailable")
    assert fault.name == "serviceUnavailable"
    lab.keystone.status = None
    assert (await authenticator.authenticate(auth())).user_id == "u-alice"


async def test_keystone_timeout_is_503(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    authenticator = lab.make(timeout=0.2)
    await authenticator.service_token()
    lab.keystone.delay = 1.0
    started = time.monotonic()
    fault = await fault_of(authenticator.authenticate(auth()))
    assert fault.status == 503
    assert time.monotonic() - started < 0.9


async def test_keystone_unreachable_is_503(lab: Lab) -> None:
    async with aiohttp.ClientSession() as session:
        authenticator = KeystoneAuthenticator(
            session,
            keystone_url="http://127.0.0.1:9/v3",
            username="nova-gateway",
            password=SERVICE_PASSWORD,
            project_name="service",
            timeout=1.0,
        )
        with capture_logs() as logs:
            fault = await fault_of(authenticator.authenticate(auth()))
            service_fault = await fault_of(authenticator.service_token())
    assert (fault.status, fault.reason) == (503, "identity_unavailable")
    assert service_fault.status == 503
    assert all(USER_TOKEN not in str(entry) for entry in logs)
    assert all(SERVICE_PASSWORD not in str(entry) for entry in logs)


async def test_expired_service_token_is_renewed_once_on_401(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    lab.keystone.add("second")
    authenticator = lab.make()
    await authenticator.authenticate(auth())
    lab.keystone.service_tokens.clear()  # keystone revoked our token before its expiry
    assert (await authenticator.authenticate(auth("second"))).user_id == "u-alice"
    assert lab.keystone.issues == 2


async def test_service_token_renewed_before_it_expires(lab: Lab) -> None:
    lab.keystone.service_lifetime = 10.0
    lab.keystone.add("a")
    lab.keystone.add("b")
    authenticator = lab.make()
    first = await authenticator.service_token()
    lab.clocks.advance(4.0)
    assert await authenticator.service_token() == first
    lab.clocks.advance(1.5)  # past half its life (10 s lifetime: margin 5 s)
    assert await authenticator.service_token() != first
    assert lab.keystone.issues == 2


async def test_service_user_refused_is_503_not_401(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    lab.keystone.password_ok = False
    fault = await fault_of(lab.make().authenticate(auth()))
    assert fault.status == 503
    lab.keystone.password_ok = True
    lab.keystone.may_validate = False  # service user lacks the service role: 403
    fault = await fault_of(lab.make().authenticate(auth()))
    assert fault.status == 503


async def test_missing_or_ambiguous_token_is_401_with_www_authenticate(lab: Lab) -> None:
    authenticator = lab.make()
    for headers, reason in (
        ([], "token_missing"),
        ([("X-Auth-Token", "")], "token_missing"),
        ([("X-Auth-Token", "a"), ("X_AUTH_TOKEN", "b")], "token_ambiguous"),
        ([("X-Auth-Token", "tok en\x7f")], "token_invalid"),
    ):
        fault = await fault_of(authenticator.authenticate(headers))
        assert (fault.status, fault.reason) == (401, reason)
        assert fault.headers == {"WWW-Authenticate": f'Keystone uri="{lab.url}"'}
        assert fault.message == "The request you have made requires authentication."
        assert fault.version_headers is False
        assert fault.shape is Shape.KEYSTONE
    assert lab.keystone.validations == 0


async def test_raw_tokens_are_never_cache_keys_nor_logged(lab: Lab) -> None:
    lab.keystone.add(USER_TOKEN)
    authenticator = lab.make()
    with capture_logs() as logs:
        await authenticator.authenticate(auth())
        fault = await fault_of(authenticator.authenticate(auth("gAAAA-secret-garbage")))
        lab.keystone.status = 500
        await fault_of(authenticator.authenticate(auth("gAAAA-secret-other")))
    keys = list(authenticator._valid._entries) + list(authenticator._invalid._entries)
    assert token_key(USER_TOKEN) in keys
    assert all(isinstance(key, bytes) and len(key) == 32 for key in keys)
    text = repr(logs) + repr(fault) + str(fault) + repr(authenticator)
    assert "gAAAA" not in text and SERVICE_PASSWORD not in text
