"""oslo.messaging's own options for the gateway's RabbitMQ connections, TLS above all:
``[oslo_messaging_rabbit] ssl``, ``ssl_ca_file``, ... read from the gateway's files.

Owns the configuration every oslo.messaging transport of the process is built from, and
the start-up verdict on its TLS; it must never open a connection, nor log a transport URL
(it may hold a password).
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from oslo_config import cfg

from gateway.config import ConfigError

log = structlog.get_logger(__name__)

RABBIT_GROUP = "oslo_messaging_rabbit"


def _oslo_messaging() -> Any:
    with warnings.catch_warnings():
        # oslo.messaging imports eventlet (deprecated) through oslo.service; it is never
        # used here: sends happen in plain threads.
        warnings.simplefilter("ignore")
        import oslo_messaging  # type: ignore[import-untyped]
        import oslo_messaging.opts  # type: ignore[import-untyped]
    return oslo_messaging


def messaging_conf(
    config_files: Sequence[str] = (), config_dirs: Sequence[str] = ()
) -> cfg.ConfigOpts:
    """A private ConfigOpts for oslo.messaging that reads the gateway's own files (and
    ``OS_OSLO_MESSAGING_RABBIT__*`` variables): ``[oslo_messaging_rabbit]`` applies as in
    nova.conf. Private, so that oslo.messaging's options never become the gateway's."""
    messaging = _oslo_messaging()
    conf = cfg.ConfigOpts()
    for group, opts in messaging.opts.list_opts():
        if group == RABBIT_GROUP:
            conf.register_opts(opts, group=group)
    conf(
        [],
        project="nova-gateway",
        default_config_files=list(config_files),
        default_config_dirs=list(config_dirs),
    )
    return conf


@dataclass(frozen=True)
class RabbitTLS:
    """What a transport URL and ``[oslo_messaging_rabbit]`` make of TLS (a URL's query,
    e.g. ``?ssl=true``, overrides the group, as oslo.messaging reads it)."""

    enabled: bool
    ca_file: str
    cert_file: str
    key_file: str

    @classmethod
    def of(cls, conf: cfg.ConfigOpts, transport_url: str) -> RabbitTLS:
        messaging = _oslo_messaging()
        # The proxy the rabbit driver itself reads its options through (a URL's query
        # over the section); oslo.messaging has no public name for it, and a copy of its
        # rules here could drift from what the transport does.
        from oslo_messaging._drivers.common import (  # type: ignore[import-untyped]
            ConfigOptsProxy,
        )

        url = messaging.TransportURL.parse(conf, transport_url)
        group = ConfigOptsProxy(conf, url, RABBIT_GROUP).oslo_messaging_rabbit
        return cls(
            enabled=bool(group.ssl),
            ca_file=group.ssl_ca_file or "",
            cert_file=group.ssl_cert_file or "",
            key_file=group.ssl_key_file or "",
        )

    def kombu_ssl(self) -> dict[str, Any] | bool:
        """kombu's ``ssl`` argument for a connection made with kombu directly (not through
        oslo.messaging) from the same section: the files as oslo.messaging passes them,
        and the broker's name always checked (kombu fills in each host's name)."""
        if not self.enabled:
            return False
        params: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
        if self.ca_file:
            params["ca_certs"] = self.ca_file
        if self.cert_file:
            params["certfile"] = self.cert_file
        if self.key_file:
            params["keyfile"] = self.key_file
        return params

    def check(self, user: str) -> None:
        """Refuse TLS files without TLS; warn (at every start) where oslo.messaging checks
        the broker's chain but not its name. ``user`` names the connection in messages."""
        files = [
            name
            for name, value in (
                ("ssl_ca_file", self.ca_file),
                ("ssl_cert_file", self.cert_file),
                ("ssl_key_file", self.key_file),
            )
            if value
        ]
        if files and not self.enabled:
            raise ConfigError(
                f"[{RABBIT_GROUP}] {', '.join(files)}: set, but ssl is false, so {user} "
                "would talk to RabbitMQ unencrypted; set ssl = true"
            )
        if self.enabled and not self.ca_file:
            # oslo.messaging passes kombu ssl=True: the chain is verified against the
            # system's trust store, but no server_hostname, so any name is accepted.
            log.warning(
                "rabbit_tls_hostname_unchecked",
                user=user,
                detail=f"[{RABBIT_GROUP}] ssl = true without ssl_ca_file: the broker's "
                "certificate is verified against the system's CAs but its hostname is "
                "not (oslo.messaging checks it only with ssl_ca_file); set ssl_ca_file",
            )
