"""Keystone mode against the real Keystone: roles, scopes, revocation, outages and cost.

Owns the proof that KeystoneAuthenticator reads real token bodies right; must never
stop the session's realkeystone (the outage test starts its own).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from gateway.identity.keystone import KeystoneAuthenticator
from gateway.nova.faults import Fault
from tests.support.labs import RealKeystone, start_realkeystone
from tests.support.processes import ProcessStartError, free_port
from tests.support.waiting import wait_for_value

Make = Callable[..., KeystoneAuthenticator]


@pytest_asyncio.fixture
async def make(
    realkeystone: RealKeystone, http_session: aiohttp.ClientSession
) -> AsyncIterator[Make]:
    made: list[KeystoneAuthenticator] = []

    def build(url: str | None = None, **options: Any) -> KeystoneAuthenticator:
        authenticator = KeystoneAuthenticator(
            http_session,
            keystone_url=url or realkeystone.url,
            username="nova-gateway",
            password=realkeystone.fixtures.get("password", "secret"),
            project_name="service",
            **options,
        )
        made.append(authenticator)
        return authenticator

    yield build
    for authenticator in made:
        await authenticator.close()


async def token(lab: RealKeystone, user: str, project: str | None = None, **kw: bool) -> str:
    """kstoken.py runs a subprocess: keep it off the event loop."""
    return await asyncio.to_thread(lab.issue_token, user, project, **kw)


def auth(token_id: str) -> list[tuple[str, str]]:
    return [("X-Auth-Token", token_id)]


async def fault_of(authenticator: KeystoneAuthenticator, token_id: str) -> Fault:
    with pytest.raises(Fault) as caught:
        await authenticator.authenticate(auth(token_id))
    return caught.value


@pytest.mark.parametrize(
    ("user", "project", "roles"),
    [
        ("alice", "p1", {"member", "reader"}),
        ("carol", "p1", {"reader"}),
        ("mgr", "p1", {"manager", "member", "reader"}),
        ("eve", "p2", {"member", "reader"}),
        ("admin", "admin", {"admin", "manager", "member", "reader"}),
    ],
)
async def test_project_tokens_carry_implied_roles(
    realkeystone: RealKeystone, make: Make, user: str, project: str, roles: set[str]
) -> None:
    credentials = await make().authenticate(auth(await token(realkeystone, user, project)))
    assert credentials.user_id == realkeystone.fixtures["users"][user]
    assert credentials.project_id == realkeystone.fixtures["projects"][project]
    assert credentials.roles == roles
    assert credentials.system_scope is None and credentials.domain_id is None
    assert credentials.user_domain_id == credentials.project_domain_id == "default"
    assert credentials.is_admin_project is True
    assert credentials.extra["user_name"] == user
    assert credentials.expires_at is not None and credentials.expires_at > time.time() + 60


async def test_system_scoped_token(realkeystone: RealKeystone, make: Make) -> None:
    sys_token = await token(realkeystone, "sysreader", system=True)
    credentials = await make().authenticate(auth(sys_token))
    assert credentials.system_scope == "all"
    assert credentials.project_id is None and credentials.project_domain_id is None
    assert credentials.roles == {"reader"}


async def test_garbage_token_is_401(realkeystone: RealKeystone, make: Make) -> None:
    authenticator = make()
    for garbage in ("garbage", "gAAAAABnot-a-fernet-token", "x" * 300):
        fault = await fault_of(authenticator, garbage)
        assert (fault.status, fault.reason) == (401, "token_invalid")
        assert fault.headers["WWW-Authenticate"] == f'Keystone uri="{realkeystone.url}"'


async def test_revoked_token_is_401_once_its_cache_entry_expires(
    realkeystone: RealKeystone, make: Make, http_session: aiohttp.ClientSession
) -> None:
    authenticator = make(cache_time=1)
    bob = await token(realkeystone, "bob", "p1")
    cached_at = time.monotonic()  # the answer below is cached for 1 s from after this
    assert (await authenticator.authenticate(auth(bob))).roles == {"member", "reader"}
    async with http_session.delete(
        f"{realkeystone.url}/auth/tokens", headers={"X-Auth-Token": bob, "X-Subject-Token": bob}
    ) as response:
        assert response.status == 204
    # Like keystonemiddleware: a revocation is seen when the cached answer expires.
    assert (await authenticator.authenticate(auth(bob))).user_id

    async def outcome() -> Fault | None:
        try:
            await authenticator.authenticate(auth(bob))
        except Fault as fault:
            return fault
        return None

    fault = await wait_for_value(outcome, lambda seen: seen is not None, 10, "the refusal")
    assert fault is not None and (fault.status, fault.reason) == (401, "token_invalid")
    assert time.monotonic() - cached_at >= 1.0  # not before the cached answer expired


async def test_unreachable_keystone_is_503(make: Make) -> None:
    authenticator = make(url=f"http://127.0.0.1:{free_port()}/v3", timeout=2.0)
    fault = await fault_of(authenticator, "gAAAAAB-anything")
    assert (fault.status, fault.reason) == (503, "identity_unavailable")
    assert fault.name == "serviceUnavailable"


async def test_stopped_keystone_is_503_for_unknown_tokens(
    tmp_path: Path, lab_logs: Path, make: Make
) -> None:
    """A private keystone (the session's stays up): cached answers survive, new tokens 503."""
    try:
        lab = await asyncio.to_thread(start_realkeystone, tmp_path / "ks-home", lab_logs)
    except (ProcessStartError, OSError, ValueError) as exc:
        pytest.fail(f"private realkeystone did not start: {exc}")
    try:
        authenticator = make(url=lab.url, timeout=2.0)
        alice = await token(lab, "alice", "p1")
        carol = await token(lab, "carol", "p1")
        await authenticator.authenticate(auth(alice))
    finally:
        lab.process.stop()
    assert (await authenticator.authenticate(auth(alice))).project_id == "p1"
    fault = await fault_of(authenticator, carol)
    assert (fault.status, fault.reason) == (503, "identity_unavailable")


async def test_validation_cost(
    realkeystone: RealKeystone, make: Make, e2e_timings: Callable[[str, float], None]
) -> None:
    alice = await token(realkeystone, "alice", "p1")
    uncached = make(cache_time=0)
    await uncached.authenticate(auth(alice))  # service token issued outside the timing
    samples = []
    for _ in range(30):
        started = time.perf_counter()
        await uncached.authenticate(auth(alice))
        samples.append(time.perf_counter() - started)
    e2e_timings("keystone identity: uncached validation, median", statistics.median(samples))

    cached = make()
    await cached.authenticate(auth(alice))
    started = time.perf_counter()
    for _ in range(10000):
        await cached.authenticate(auth(alice))
    per_call = (time.perf_counter() - started) / 10000
    # printed in ms: 1000 calls' worth reads directly as microseconds per call
    e2e_timings("keystone identity: cached validation x1000 (= µs per call)", per_call * 1000)
    assert per_call < 0.001
