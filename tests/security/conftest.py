"""Fixtures of the security suite: a gateway in front of novasim, per identity mode.

Owns starting (and stopping) each test's lab on loopback; it must never share a lab
between tests, so that no attack sees another's servers, records or caches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.integration.conftest import (  # noqa: F401  (fixtures used by the tests)
    SimUpstream,
    novasim_upstream,
    start_gateway,
)
from tests.security.lab import (
    IMPATIENT_BODY_TIMEOUT,
    LAB_TOKENS,
    FakeKeystone,
    JwtIssuer,
    Lab,
    Tokens,
    keystone_overrides,
)


@pytest.fixture(scope="session")
def jwt_issuer(tmp_path_factory: pytest.TempPathFactory) -> JwtIssuer:
    return JwtIssuer(Path(tmp_path_factory.mktemp("security-jwt")))


@pytest.fixture(scope="session")
def nova_defaults_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty policy directory: Nova's defaults, exactly what the shipped (all-comment)
    policies/ says, without parsing its 30 KB of YAML comments at every gateway start."""
    return str(tmp_path_factory.mktemp("security-policy"))


async def open_lab(
    mode: str,
    upstream: SimUpstream,
    start: Any,
    issuer: JwtIssuer,
    policy_dir: str,
    **overrides: Any,
) -> AsyncIterator[Lab]:
    """The gateway in ``mode`` in front of ``upstream``; a fake Keystone for keystone mode."""
    keystone: TestServer | None = None
    if mode == "noauth":
        tokens = Tokens(**LAB_TOKENS)
        identity: dict[str, Any] = {}
    elif mode == "jwt":
        tokens = issuer.tokens()
        identity = issuer.overrides()
    else:
        keystone = TestServer(FakeKeystone().app(), host="127.0.0.1")
        await keystone.start_server()
        tokens = Tokens(**LAB_TOKENS)
        identity = keystone_overrides(str(keystone.make_url("/v3")))
    try:
        settings = {"policy__policy_dir": policy_dir, **identity, **overrides}
        listeners = await start(upstream.url, **settings)
        yield Lab(listeners.api_address[1], upstream, tokens, mode)
    finally:
        if keystone is not None:
            await keystone.close()


@pytest.fixture
async def lab(
    novasim_upstream: SimUpstream,  # noqa: F811
    start_gateway: Any,  # noqa: F811
    jwt_issuer: JwtIssuer,
    nova_defaults_policy_dir: str,
) -> AsyncIterator[Lab]:
    """The gateway in noauth mode (lab tokens) in front of a fresh novasim."""
    async for opened in open_lab(
        "noauth", novasim_upstream, start_gateway, jwt_issuer, nova_defaults_policy_dir
    ):
        yield opened


@pytest.fixture(params=["noauth", "jwt", "keystone"])
async def any_lab(
    request: pytest.FixtureRequest,
    novasim_upstream: SimUpstream,  # noqa: F811
    start_gateway: Any,  # noqa: F811
    jwt_issuer: JwtIssuer,
    nova_defaults_policy_dir: str,
) -> AsyncIterator[Lab]:
    """The gateway in each identity mode in turn, in front of a fresh novasim."""
    async for opened in open_lab(
        request.param, novasim_upstream, start_gateway, jwt_issuer, nova_defaults_policy_dir
    ):
        yield opened


@pytest.fixture
async def impatient_lab(
    novasim_upstream: SimUpstream,  # noqa: F811
    start_gateway: Any,  # noqa: F811
    jwt_issuer: JwtIssuer,
    nova_defaults_policy_dir: str,
) -> AsyncIterator[Lab]:
    """The noauth lab with a short request-body deadline, for slow-loris clients."""
    async for opened in open_lab(
        "noauth",
        novasim_upstream,
        start_gateway,
        jwt_issuer,
        nova_defaults_policy_dir,
        limits__request_body_timeout=IMPATIENT_BODY_TIMEOUT,
    ):
        yield opened
