"""Processes and signals: N workers on one port, graceful SIGTERM, SIGHUP reload.

Owns the lifetime of listeners and worker processes; it must never look at a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_log import AccessLogger
from oslo_config import cfg

from gateway import logs, metrics
from gateway.audit.chain import KeyFileError
from gateway.config import ConfigError, worker_count
from gateway.pipeline import Gate
from gateway.policy.engine import PolicyLoadError
from gateway.tls.contexts import ServerFiles
from gateway.tls.listener import ListenerSettings, ListenerTLS
from gateway.web import access_log
from gateway.web.app import (
    admin_app,
    api_handler,
    apply_reloadable,
    build_gate,
    request_factory,
)

log = structlog.get_logger(__name__)

RESTART_BACKOFF_SECONDS = 1.0
CANNOT_START = 2  # the exit status of a configuration the gateway refuses
START_UP_ERRORS: tuple[type[Exception], ...] = (ConfigError, KeyFileError, PolicyLoadError)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def listener_tls(conf: cfg.ConfigOpts) -> dict[str, ListenerSettings]:
    """The TLS settings of each listener that has a certificate ("api", "admin")."""
    group = conf.gateway
    chosen: dict[str, ListenerSettings] = {}
    for name, prefix, client_ca in (
        ("api", "tls", None),
        ("admin", "admin_tls", group.admin_tls_client_ca_file),
    ):
        cert_file = getattr(group, f"{prefix}_cert_file")
        if cert_file:
            chosen[name] = ListenerSettings(
                name,
                f"[gateway] {prefix}_*",
                ServerFiles(cert_file, getattr(group, f"{prefix}_key_file"), client_ca),
                group.tls_minimum_version,
                group.tls_ciphers,
            )
    return chosen


def listener_urls(conf: cfg.ConfigOpts) -> tuple[str, str]:
    """Where the API (its /v2.1) and the admin listener answer, as configured."""
    tls = listener_tls(conf)
    api = "https" if "api" in tls else "http"
    admin = "https" if "admin" in tls else "http"
    return f"{api}://{conf.gateway.listen}/v2.1", f"{admin}://{conf.gateway.admin_listen}"


@dataclass
class Listeners:
    """The API and admin listeners of one worker, with the addresses they bound."""

    gate: Gate
    api: web.ServerRunner
    admin: web.AppRunner
    request_lines: logs.RequestLines | None = None
    tls: dict[str, ListenerTLS] = field(default_factory=dict)
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def run(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background until it ends or the listeners close."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def reload_tls(self, why: str) -> None:
        for tls in self.tls.values():
            self.run(tls.reload(why))

    @property
    def api_address(self) -> tuple[str, int]:
        host, port = self.api.addresses[0][:2]
        return str(host), int(port)

    @property
    def admin_address(self) -> tuple[str, int]:
        host, port = self.admin.addresses[0][:2]
        return str(host), int(port)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # ServerRunner.cleanup stops listening first, then waits for in-flight requests.
        await self.api.cleanup()
        if self.request_lines is not None:
            await asyncio.to_thread(self.request_lines.close)
        if self.gate.audit is not None:
            # Every answered request has been observed by now: flush them all.
            await self.gate.audit.close()
        await self.admin.cleanup()
        await self.gate.versions.stop()
        if self.gate.servers.feed is not None:
            await self.gate.servers.feed.stop()  # its queue goes with the connection
        await self.gate.policy.stop()
        await self.gate.identity.close()
        await self.gate.upstream.close()
        if self.gate.rate_limiter is not None:
            await self.gate.rate_limiter.close()


async def open_listeners(conf: cfg.ConfigOpts, upstream_url: str) -> Listeners:
    """Build the gate, read the upstream's versions once, and start listening."""
    # Certificates first: a listener that cannot serve TLS refuses to start before
    # anything else is built.
    tls = {
        name: await ListenerTLS.load(settings, _certificate_metric)
        for name, settings in listener_tls(conf).items()
    }
    gate = await build_gate(conf, upstream_url)
    await gate.versions.refresh(gate.upstream.session)
    gate.versions.start(gate.upstream.session)
    await gate.policy.start()
    if gate.servers.feed is not None:
        await gate.servers.feed.start()  # degraded (reading Nova) until its heartbeat
    if gate.rate_limiter is not None:
        await gate.rate_limiter.start()
    request_lines = logs.RequestLines() if conf.gateway.access_log else None
    api_server = web.Server(
        api_handler(gate),
        request_factory=request_factory(gate),
        max_line_size=conf.limits.max_header_size,
        max_field_size=conf.limits.max_header_size,
        max_headers=conf.limits.max_headers,
        keepalive_timeout=conf.limits.idle_timeout,
        # aiohttp logs malformed requests with their raw bytes (X-Auth-Token included).
        logger=logs.http_server_logger(),
        # The gate refuses compressed bodies (415) before reading them, so aiohttp must
        # never inflate one: a body labelled gzip that is not made its parser fail while
        # it drained the refused request, and the connection was reset under the 415.
        auto_decompress=False,
        # Off: no access logger at all, so aiohttp skips the call per request.
        access_log=access_log.placeholder_logger() if request_lines is not None else None,
        access_log_class=(
            access_log.access_log_class(request_lines)
            if request_lines is not None
            else AccessLogger
        ),
    )
    api = web.ServerRunner(api_server, shutdown_timeout=conf.gateway.graceful_shutdown_timeout)
    # Probes and scrapes every few seconds would drown the log: no request lines here.
    admin = web.AppRunner(admin_app(gate, conf.upstream.ready_max_age), access_log=None)
    await api.setup()
    await admin.setup()
    host, port = _host_port(conf.gateway.listen)
    await web.TCPSite(
        api, host, port, reuse_port=True, backlog=1024, ssl_context=_context(tls, "api")
    ).start()
    admin_host, admin_port = _host_port(conf.gateway.admin_listen)
    await web.TCPSite(
        admin, admin_host, admin_port, reuse_port=True, ssl_context=_context(tls, "admin")
    ).start()
    listeners = Listeners(gate, api, admin, request_lines, tls)
    if conf.gateway.tls_reload_interval > 0:
        for listener in tls.values():
            listeners.run(listener.watch(conf.gateway.tls_reload_interval))
    return listeners


def _certificate_metric(listener: ListenerTLS) -> None:
    metrics.tls_certificate_loaded(listener.settings.name, listener.served.not_after.timestamp())


def _context(tls: dict[str, ListenerTLS], name: str) -> ssl.SSLContext | None:
    listener = tls.get(name)
    return listener.context if listener is not None else None


async def serve(
    conf: cfg.ConfigOpts, upstream_url: str, on_ready: Callable[[], None] | None = None
) -> None:
    """Run one worker until SIGTERM/SIGINT; SIGHUP reloads the mutable options."""
    listeners = await open_listeners(conf, upstream_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(conf, listeners))
    api_url, admin_url = listener_urls(conf)
    log.info(
        "worker_ready",
        pid=os.getpid(),
        listen=api_url,
        admin=admin_url,
        upstream=upstream_url,
    )
    if on_ready is not None:
        on_ready()
    await stop.wait()
    log.info("worker_draining", pid=os.getpid(), deadline=conf.gateway.graceful_shutdown_timeout)
    await listeners.close()
    log.info("worker_stopped", pid=os.getpid())


def reload(conf: cfg.ConfigOpts, listeners: Listeners) -> None:
    """SIGHUP: re-read the configuration files (a bad file keeps the running values) and
    the listeners' certificates (a set that does not load keeps the running one)."""
    listeners.reload_tls("SIGHUP")
    try:
        conf.mutate_config_files()
    except Exception as exc:
        log.error("config_reload_failed", error=repr(exc))
        return
    apply_reloadable(listeners.gate, conf)
    log.info("config_reloaded", pid=os.getpid())


def _install_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(
    conf: cfg.ConfigOpts, upstream_url: str, on_ready: Callable[[], None] | None = None
) -> None:
    _install_loop()
    try:
        asyncio.run(serve(conf, upstream_url, on_ready))
    except START_UP_ERRORS as exc:
        # A configuration that cannot work is an operator's message, not a traceback,
        # and not something to restart forever.
        print(f"nova-gateway: cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(CANNOT_START) from None


def run(conf: cfg.ConfigOpts, upstream_url: str, on_ready: Callable[[], None] | None = None) -> int:
    """Run the configured number of workers; the parent supervises and relays signals."""
    workers = worker_count(conf)
    if workers == 1:
        run_worker(conf, upstream_url, on_ready)
        return 0
    return _supervise(conf, upstream_url, workers, on_ready)


def _spawn(conf: cfg.ConfigOpts, upstream_url: str, ready_fd: int | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        # Drop the supervisor's relay handlers: until the worker's loop installs its
        # own, SIGTERM simply ends it (it serves nothing yet) and SIGHUP is ignored.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        code = 0

        def tell_ready() -> None:
            if ready_fd is not None:
                os.write(ready_fd, b".")

        try:
            run_worker(conf, upstream_url, tell_ready)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # the child must never return into the parent's code
            log.exception("worker_crashed")
            code = 1
        finally:
            sys.stdout.flush()
            os._exit(code)
    return pid


def _wait_ready(fd: int, workers: int, deadline_seconds: float = 120.0) -> bool:
    """Block until every worker listens (one byte each), or give up at the deadline."""
    deadline = time.monotonic() + deadline_seconds
    seen = 0
    while seen < workers:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return False
        data = os.read(fd, workers)
        if not data:
            return False  # every writer closed: workers died before they were ready
        seen += len(data)
    os.close(fd)
    return True


def _supervise(
    conf: cfg.ConfigOpts, upstream_url: str, workers: int, on_ready: Callable[[], None] | None
) -> int:
    # Workers write their metrics to files in a fresh directory that any of them reads
    # when scraped; it must exist before the first fork and go when the supervisor does.
    metrics_dir = metrics.start_multiprocess()
    try:
        return _run_workers(conf, upstream_url, workers, on_ready)
    finally:
        metrics.stop_multiprocess(metrics_dir)


def _run_workers(
    conf: cfg.ConfigOpts, upstream_url: str, workers: int, on_ready: Callable[[], None] | None
) -> int:
    cannot_start = False
    ready_read, ready_write = os.pipe()
    children = {_spawn(conf, upstream_url, ready_write) for _ in range(workers)}
    os.close(ready_write)
    stopping = False

    def relay(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM if signum == signal.SIGINT else signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, relay)
    log.info("supervisor_started", workers=workers, pids=sorted(children))
    if _wait_ready(ready_read, workers) and on_ready is not None:
        on_ready()
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        metrics.worker_exited(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            failed = True
        if os.waitstatus_to_exitcode(status) == CANNOT_START and not stopping:
            # Every worker would fail the same way: stop them all and say so.
            relay(signal.SIGTERM, None)
            cannot_start = True
        if not stopping:
            log.error("worker_exited", pid=pid, status=os.waitstatus_to_exitcode(status))
            time.sleep(RESTART_BACKOFF_SECONDS)  # no event loop in the supervisor
            if not stopping:  # a SIGTERM may have arrived during the back-off
                children.add(_spawn(conf, upstream_url))
    if cannot_start:
        return CANNOT_START
    return 1 if failed and not stopping else 0
