"""SSL contexts: what a listener presents, and how a client verifies the peer it calls.

Owns protocol versions, cipher suites and verification settings; it must never build a
client context that skips the peer's certificate or its hostname.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from gateway.config import INTERMEDIATE_CIPHERS, ConfigError

log = structlog.get_logger(__name__)

MINIMUM_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class ServerFiles:
    """A listener's certificate chain (leaf first) and key, and the CA its clients need."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    def paths(self) -> tuple[str, ...]:
        return tuple(path for path in (self.cert_file, self.key_file, self.client_ca_file) if path)


@dataclass(frozen=True)
class ClientFiles:
    """The CA bundle that verifies a peer (None: the system's), and a client certificate."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def server_context(
    files: ServerFiles, owner: str, minimum: str = "1.2", ciphers: str = INTERMEDIATE_CIPHERS
) -> ssl.SSLContext:
    """A listener's context; ConfigError (naming ``owner``'s options) if a file is unusable.

    Reads files: call it before serving, or off the event loop.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSIONS[minimum]
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise ConfigError(f"{owner} tls_ciphers: no cipher suite in {ciphers!r}") from None
    # Python already sets OP_NO_COMPRESSION (CRIME); renegotiation is a client-initiated
    # CPU sink and an old source of injection bugs: refused. The client picks among the
    # suites (Mozilla: AES or ChaCha20, whichever its hardware runs faster).
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(["http/1.1"])
    _load_chain(context, files.cert_file, files.key_file, owner)
    if files.client_ca_file:
        _load_cas(context, files.client_ca_file, owner)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(files: ClientFiles, owner: str) -> ssl.SSLContext:
    """A context that verifies the peer's chain and hostname (TLS 1.2 at least) against
    ``ca_file`` alone, or the system's trust store without one; presents a client
    certificate when one is given."""
    if files.ca_file:
        # The deployment's CA alone: the system's trust store is not loaded beside it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_cas(context, files.ca_file, owner)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    if files.cert_file or files.key_file:
        if not (files.cert_file and files.key_file):
            raise ConfigError(f"{owner}: a client certificate needs both its cert and key file")
        _load_chain(context, files.cert_file, files.key_file, owner)
    if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
        # PROTOCOL_TLS_CLIENT's defaults: checked, so that no later change loosens them.
        raise RuntimeError("a client context must verify its peer's certificate and name")
    return context


class RenewedClientContext:
    """``client_context``, built again when one of its files changed (inode, size or
    modification time): a renewed client certificate or CA reaches the next connection
    without a restart. A changed set that does not load keeps the last one that did."""

    def __init__(self, files: ClientFiles, owner: str) -> None:
        self._files = files
        self._owner = owner
        self._stamp = self._stamps()
        self._context = client_context(files, owner)  # a broken file fails at start

    def __call__(self) -> ssl.SSLContext:
        """The context for a new connection. Reads files: call it off the event loop."""
        stamp = self._stamps()
        if stamp != self._stamp:
            try:
                self._context = client_context(self._files, self._owner)
            except ConfigError as exc:
                log.error("tls_reload_failed", owner=self._owner, error=str(exc))
            else:
                log.info("tls_client_files_reloaded", owner=self._owner)
            self._stamp = stamp  # a broken set is reported once, not at every connection
        return self._context

    def _stamps(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in (self._files.ca_file, self._files.cert_file, self._files.key_file):
            if path:
                try:
                    status = os.stat(path)
                except OSError:
                    stamps.append(None)
                else:
                    stamps.append((status.st_ino, status.st_size, status.st_mtime_ns))
        return tuple(stamps)


def context_for_url(url: str, files: ClientFiles, owner: str) -> ssl.SSLContext | None:
    """The client context for an https URL; None for http. TLS files beside an http URL
    are refused: the operator believes the traffic is verified, and it would not be."""
    if urlsplit(url).scheme == "https":
        return client_context(files, owner)
    named = [path for path in (files.ca_file, files.cert_file, files.key_file) if path]
    if named:
        raise ConfigError(
            f"{owner}: set, but {url.split('?')[0]!r} is not https: nothing would be "
            "verified; use an https URL, or unset them"
        )
    return None


def redis_tls_options(files: ClientFiles, owner: str) -> dict[str, Any]:
    """redis-py's keyword arguments for a TLS connection verified as client_context does.

    redis-py builds the context itself (one per set of files, rebuilt when a file
    changes): the files are checked here, so that a typo fails at start-up.
    """
    for path in (files.ca_file, files.cert_file, files.key_file):
        if path:
            _readable(path, owner)
    if bool(files.cert_file) != bool(files.key_file):
        raise ConfigError(f"{owner}: a client certificate needs both its cert and key file")
    return {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_min_version": ssl.TLSVersion.TLSv1_2,
        "ssl_ca_certs": files.ca_file,
        "ssl_certfile": files.cert_file,
        "ssl_keyfile": files.key_file,
    }


def verification_failure(exc: BaseException) -> str | None:
    """What went wrong in a TLS handshake that ``exc`` (or its causes) reports, or None.

    Only OpenSSL's reason: never a request's headers, which aiohttp's errors may carry.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # bounded: causes may form a cycle
        # aiohttp's wrappers are ssl errors themselves: look inside them first.
        inner = getattr(current, "certificate_error", None) or getattr(current, "os_error", None)
        if isinstance(inner, BaseException) and inner is not current:
            current = inner
        elif isinstance(current, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {current.verify_message}"
        elif isinstance(current, ssl.SSLError):
            return current.reason or current.strerror or type(current).__name__
        else:
            current = current.__cause__
        seen += 1
    return None


def _readable(path: str, owner: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(f"{owner}: {path}: no such file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{owner}: {path}: not readable by this process")


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str, owner: str) -> None:
    _readable(cert_file, owner)
    _readable(key_file, owner)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{owner}: {cert_file} with {key_file}: {exc.reason or exc} (a PEM certificate "
            "chain, leaf first, and its unencrypted PEM key)"
        ) from None


def _load_cas(context: ssl.SSLContext, ca_file: str, owner: str) -> None:
    _readable(ca_file, owner)
    try:
        context.load_verify_locations(cafile=ca_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{owner}: {ca_file}: {exc.reason or exc} (PEM CA certificates)"
        ) from None
