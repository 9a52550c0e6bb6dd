"""Session fixture: the gateway (``python -m gateway``) in front of the session's realnova.

Owns how the e2e gateway is configured and launched; must never change gateway behaviour
or start more than one gateway per session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.api_client import ApiClient
from tests.support.gateway import NOAUTH as GATEWAY_CONFIG
from tests.support.gateway import GatewayLab
from tests.support.gateway import start_gateway_process as start_gateway
from tests.support.labs import RealKeystone, RealNova
from tests.support.processes import ProcessStartError

__all__ = ["GATEWAY_CONFIG", "GatewayLab", "gateway", "gateway_realnova", "start_gateway"]


def keystone_identity(keystone: RealKeystone, **options: str) -> dict[str, str]:
    """``[identity]`` of keystone mode against ``keystone``; the service user is its admin,
    who may validate tokens (identity:validate_token) and read every project's servers."""
    return {
        "mode": "keystone",
        "keystone_url": keystone.url,
        "service_username": "admin",
        "service_password": str(keystone.fixtures.get("password", "secret")),
        "service_project_name": "admin",
        **options,
    }


@pytest.fixture(scope="session")
def gateway_realnova(
    realnova: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[GatewayLab]:
    """The session's gateway, proxying to the session's realnova (lab tokens accepted)."""
    try:
        lab = start_gateway(realnova.url, tmp_path_factory.mktemp("gateway-config"), lab_logs)
    except ProcessStartError as exc:
        # The gateway is the system under test: not starting is a failure, never a skip.
        pytest.fail(f"the gateway did not start: {exc}", pytrace=False)
    e2e_timings("gateway start to READY", lab.process.startup_seconds)
    yield lab
    lab.process.stop()


@pytest.fixture
def gateway(gateway_realnova: GatewayLab, http_session: aiohttp.ClientSession) -> ApiClient:
    """A client for the gateway's ``/v2.1`` (in front of the session's realnova)."""
    return ApiClient(http_session, gateway_realnova.url)
