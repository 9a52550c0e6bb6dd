"""A listener's certificate, re-read on SIGHUP or when its files change, without dropping
a connection.

Owns the context a listening socket was made with and the one new handshakes get; it
must never disturb an established connection, nor read a file on the event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from cryptography import x509

from gateway.config import INTERMEDIATE_CIPHERS, ConfigError
from gateway.tls.contexts import ServerFiles, server_context
from gateway.watch import FileWatcher, Marks, every, marks

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Served:
    """The leaf certificate a listener presents, as the log and the metrics show it."""

    subject: str
    serial: str
    not_after: datetime

    @classmethod
    def read(cls, cert_file: str) -> Served:
        with open(cert_file, "rb") as source:
            leaf = x509.load_pem_x509_certificate(source.read())  # the first of the chain
        return cls(
            leaf.subject.rfc4514_string(), format(leaf.serial_number, "x"), leaf.not_valid_after_utc
        )


@dataclass(frozen=True)
class ListenerSettings:
    name: str  # "api" or "admin": the log's and the metric's label
    owner: str  # the options that name the files, for error messages
    files: ServerFiles
    minimum_version: str = "1.2"
    ciphers: str = INTERMEDIATE_CIPHERS


def _build(settings: ListenerSettings) -> tuple[ssl.SSLContext, Served, Marks]:
    # Marked before reading: a change made while we read shows at the next look.
    # A Kubernetes secret volume swaps a symlink; certbot and cert-manager rewrite.
    seen = marks(settings.files.paths())
    context = server_context(
        settings.files, settings.owner, settings.minimum_version, settings.ciphers
    )
    try:
        served = Served.read(settings.files.cert_file)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{settings.owner}: {settings.files.cert_file}: {exc}") from None
    return context, served, seen


class ListenerTLS:
    """The listening socket keeps the context it was made with; that context hands every
    new handshake the current one (OpenSSL asks before it picks a certificate, with or
    without SNI). Connections already made keep the certificate they got."""

    def __init__(
        self,
        settings: ListenerSettings,
        context: ssl.SSLContext,
        served: Served,
        seen: Marks,
        on_load: Callable[[ListenerTLS], None] | None = None,
    ) -> None:
        self.settings = settings
        self.context = context
        self.served = served
        self._current = context
        self._files = FileWatcher(settings.files.paths, seen)
        self._on_load = on_load
        context.sni_callback = self._select

    @classmethod
    async def load(
        cls, settings: ListenerSettings, on_load: Callable[[ListenerTLS], None] | None = None
    ) -> ListenerTLS:
        """The listener's TLS from its files; ConfigError if they cannot serve.

        ``on_load`` is told of this certificate and of every one loaded later.
        """
        context, served, seen = await asyncio.to_thread(_build, settings)
        listener = cls(settings, context, served, seen, on_load)
        listener._loaded("start")
        return listener

    def _select(
        self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, context: object
    ) -> None:
        current = self._current
        if current is not context:
            ssl_object.context = current

    async def reload(self, why: str) -> bool:
        """Read the files again; a set that does not load keeps the running certificate."""
        try:
            context, served, seen = await asyncio.to_thread(_build, self.settings)
        except ConfigError as exc:
            log.error(
                "tls_reload_failed",
                listener=self.settings.name,
                why=why,
                error=str(exc),
                serving=self.served.serial,
            )
            return False
        self._current, self.served, self._files.known = context, served, seen
        self._loaded(why)
        return True

    async def watch(self, interval: float) -> None:
        """Reload whenever the files change (checked every ``interval`` seconds)."""
        await every(interval, self._reload_if_changed, f"tls-{self.settings.name}")

    async def _reload_if_changed(self) -> None:
        # The watcher remembers the new marks first: a half-written set is tried again
        # only once it changes again, not every interval.
        if await self._files.changed() is not None:
            await self.reload("files changed")

    def _loaded(self, why: str) -> None:
        fields = {
            "listener": self.settings.name,
            "why": why,
            "subject": self.served.subject,
            "serial": self.served.serial,
            "not_after": self.served.not_after.isoformat(),
            "client_certificates": "required" if self.settings.files.client_ca_file else "none",
        }
        if self.served.not_after <= datetime.now(UTC):
            log.warning("tls_certificate_expired", **fields)
        else:
            log.info("tls_certificate_loaded", **fields)
        if self._on_load is not None:
            self._on_load(self)
