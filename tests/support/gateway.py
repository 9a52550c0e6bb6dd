"""Start the gateway in-process on free loopback ports, with option overrides.

Owns test wiring only; it must never change gateway behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from oslo_config import cfg

from gateway import config
from gateway.web.server import Listeners, open_listeners


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


def base_url(listeners: Listeners) -> str:
    host, port = listeners.api_address
    return f"http://{host}:{port}"


def admin_url(listeners: Listeners) -> str:
    host, port = listeners.admin_address
    return f"http://{host}:{port}"


StartGateway = Callable[..., Awaitable[Listeners]]
