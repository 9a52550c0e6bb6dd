"""Start the gateway for a test: in-process (``running_gateway``) or as the command
operators run (``start_gateway_process``), on free loopback ports, with its options.

The one place the suites launch a gateway; owns test wiring only and must never change
gateway behaviour.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg

from gateway import config
from gateway.web.server import Listeners, open_listeners
from tests.support.processes import LOOPBACK, ServerProcess, free_port, repo_root, start_server

Sections = Mapping[str, Mapping[str, object]]

# The lab tokens (``alice:p1``) novasim and realnova accept: only the noauth identity mode
# reads them, and it refuses to start without the explicit allow_noauth.
NOAUTH: Sections = {"identity": {"mode": "noauth", "allow_noauth": "true"}}
GATEWAY_READY_TIMEOUT = 30.0


def gateway_conf(overrides: Mapping[str, Any] | None = None) -> cfg.ConfigOpts:
    """A ConfigOpts with defaults, loopback port 0 listeners, and ``group.name`` overrides."""
    conf = config.make_conf()
    conf([], project="nova-gateway", default_config_files=[])
    settings: dict[str, Any] = {
        "gateway.listen": "127.0.0.1:0",
        "gateway.admin_listen": "127.0.0.1:0",
        "identity.mode": "noauth",
        "identity.allow_noauth": True,
        "server_lookup.cache_ttl": 0,
    }
    settings.update(overrides or {})
    for dotted, value in settings.items():
        group, name = dotted.split(".")
        conf.set_override(name, value, group=group)
    config.validate(conf)
    return conf


@asynccontextmanager
async def running_gateway(
    upstream_url: str, overrides: Mapping[str, Any] | None = None
) -> AsyncIterator[Listeners]:
    listeners = await open_listeners(gateway_conf(overrides), upstream_url)
    try:
        yield listeners
    finally:
        await listeners.close()


def base_url(listeners: Listeners, scheme: str = "http") -> str:
    host, port = listeners.api_address
    return f"{scheme}://{host}:{port}"


def admin_url(listeners: Listeners, scheme: str = "http") -> str:
    host, port = listeners.admin_address
    return f"{scheme}://{host}:{port}"


StartGateway = Callable[..., Awaitable[Listeners]]


def render_config(sections: Sections) -> str:
    """An oslo.config INI file with ``sections`` (group -> option -> value)."""
    lines: list[str] = []
    for group, options in sections.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in options.items())
        lines.append("")
    return "\n".join(lines)


def with_noauth(sections: Sections) -> dict[str, dict[str, object]]:
    """``sections`` plus the noauth identity unless they choose an identity mode."""
    merged = {group: dict(options) for group, options in sections.items()}
    identity = merged.setdefault("identity", {})
    if "mode" not in identity:
        identity.update(NOAUTH["identity"])
    return merged


@dataclass(frozen=True)
class GatewayLab:
    """A running gateway: its ``/v2.1`` url, admin url, config file and process."""

    url: str
    admin_url: str
    upstream_url: str
    config_file: Path
    process: ServerProcess

    @property
    def api_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/", 1)[0])

    @property
    def admin_port(self) -> int:
        return int(self.admin_url.rsplit(":", 1)[1])


def gateway_command(config_file: Path, *arguments: str) -> list[str]:
    """``python -m gateway --config-file <file> <arguments>``, the command operators run."""
    return [sys.executable, "-m", "gateway", "--config-file", str(config_file), *arguments]


def write_config(config_dir: Path, sections: Sections, name: str = "nova-gateway.conf") -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    config_file = config_dir / name
    config_file.write_text(render_config(sections), encoding="utf-8")
    return config_file


def start_gateway_process(
    upstream_url: str,
    config_dir: Path,
    log_dir: Path | None,
    sections: Sections = NOAUTH,
    workers: int = 1,
    *,
    name: str = "gateway",
    extra: Sequence[str] = (),
    ready_timeout: float = GATEWAY_READY_TIMEOUT,
) -> GatewayLab:
    """Write the config file and start the gateway (one worker unless asked) on two free
    loopback ports; returns once it printed READY. Blocking: from async code, use
    ``start_gateway_process_async`` (an upstream on the test's loop must keep serving)."""
    config_file = write_config(config_dir, sections, f"{name}.conf")
    admin = f"{LOOPBACK}:{free_port()}"
    argv = gateway_command(
        config_file,
        "--upstream-url",
        upstream_url,
        "--listen",
        f"{LOOPBACK}:{free_port()}",
        "--admin-listen",
        admin,
        "--workers",
        str(workers),
        *extra,
    )
    # The repository root is the working directory: relative defaults (policy_dir) resolve there.
    process = start_server(
        name, argv, cwd=repo_root(), ready_timeout=ready_timeout, log_dir=log_dir
    )
    return GatewayLab(process.url, f"http://{admin}", upstream_url, config_file, process)


async def start_gateway_process_async(
    upstream_url: str,
    config_dir: Path,
    log_dir: Path | None,
    sections: Sections = NOAUTH,
    workers: int = 1,
    **options: Any,
) -> GatewayLab:
    """``start_gateway_process`` off the event loop."""
    return await asyncio.to_thread(
        start_gateway_process, upstream_url, config_dir, log_dir, sections, workers, **options
    )


def run_gateway(
    config_dir: Path, sections: Sections, *arguments: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the gateway command to its end (a start-up that must fail), on free ports."""
    config_file = write_config(config_dir, sections)
    argv = gateway_command(
        config_file,
        "--listen",
        f"{LOOPBACK}:{free_port()}",
        "--admin-listen",
        f"{LOOPBACK}:{free_port()}",
        *arguments,
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
