"""Session fixture: the gateway (``python -m gateway``) in front of the session's realnova.

Owns how the e2e gateway is configured and launched; must never change gateway behaviour
or start more than one gateway per session.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.support.api_client import ApiClient
from tests.support.labs import RealKeystone, RealNova
from tests.support.processes import (
    LOOPBACK,
    ProcessStartError,
    ServerProcess,
    free_port,
    repo_root,
    start_server,
)

GATEWAY_READY_TIMEOUT = 30.0

# realnova validates lab tokens (``alice:p1``) itself; the gateway has to accept the same
# ones, which only its noauth identity mode does (and refuses to start without the
# explicit allow_noauth). Harmless while the identity stage is not yet in the pipeline.
GATEWAY_CONFIG: Mapping[str, Mapping[str, str]] = {
    "identity": {"mode": "noauth", "allow_noauth": "true"},
}


@dataclass(frozen=True)
class GatewayLab:
    """A running gateway: its ``/v2.1`` url, admin url, config file and process."""

    url: str
    admin_url: str
    upstream_url: str
    config_file: Path
    process: ServerProcess


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


def render_config(sections: Mapping[str, Mapping[str, str]]) -> str:
    """An oslo.config INI file with ``sections`` (group -> option -> value)."""
    lines: list[str] = []
    for group, options in sections.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in options.items())
        lines.append("")
    return "\n".join(lines)


def start_gateway(
    upstream_url: str,
    config_dir: Path,
    log_dir: Path,
    sections: Mapping[str, Mapping[str, str]] = GATEWAY_CONFIG,
    workers: int = 1,
) -> GatewayLab:
    """Write the config file and start the gateway (one worker unless asked) on two free
    loopback ports."""
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / "nova-gateway.conf"
    config_file.write_text(render_config(sections), encoding="utf-8")
    admin = f"{LOOPBACK}:{free_port()}"
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "--config-file",
        str(config_file),
        "--upstream-url",
        upstream_url,
        "--listen",
        f"{LOOPBACK}:{free_port()}",
        "--admin-listen",
        admin,
        "--workers",
        str(workers),
    ]
    # The repository root is the working directory: relative defaults (policy_dir) resolve there.
    process = start_server(
        "gateway", argv, cwd=repo_root(), ready_timeout=GATEWAY_READY_TIMEOUT, log_dir=log_dir
    )
    return GatewayLab(process.url, f"http://{admin}", upstream_url, config_file, process)


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
