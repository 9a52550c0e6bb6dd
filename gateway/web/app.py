"""The web layer: turns an aiohttp request into a Call, and the admin listener.

Owns the wiring of configuration into a Gate and the HTTP entry points; it must never
decide anything itself (the pipeline does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from oslo_config import cfg

from gateway import metrics
from gateway.audit.records import Redactor
from gateway.audit.trail import build_audit_trail
from gateway.call import Call
from gateway.config import ConfigError, worker_count
from gateway.identity.credentials import strip_identity_headers
from gateway.identity.factory import build_authenticator
from gateway.notifications.feed import FeedConfigError, FeedSettings, NotificationFeed
from gateway.nova.types import Version
from gateway.pipeline import Gate, handle
from gateway.policy.engine import PolicyEngine
from gateway.proxy import headers as header_names
from gateway.proxy.upstream import Upstream, UpstreamSettings
from gateway.proxy.versions import UpstreamVersions
from gateway.ratelimit.limiter import RateLimiter
from gateway.servers.lookup import ServerReader
from gateway.servers.store import FactsStore, StoreSettings
from gateway.tls.contexts import ClientFiles, context_for_url
from gateway.tls.messaging import RabbitTLS, messaging_conf
from gateway.web.access_log import CALL

log = structlog.get_logger(__name__)

API_SUFFIX = "/v2.1"


def upstream_root(url: str) -> str:
    """``http://nova:8774/v2.1`` → ``http://nova:8774``: paths are forwarded as they came."""
    url = url.rstrip("/")
    return url[: -len(API_SUFFIX)] if url.endswith(API_SUFFIX) else url


def _version(text: str | None) -> Version | None:
    return Version.parse(text) if text else None


async def build_gate(conf: cfg.ConfigOpts, upstream_url: str) -> Gate:
    root = upstream_root(upstream_url)
    settings = UpstreamSettings(
        base_url=root,
        connect_timeout=conf.upstream.connect_timeout,
        read_timeout=conf.upstream.read_timeout,
        total_timeout=conf.upstream.total_timeout,
        pool_size=conf.upstream.pool_size,
        pool_wait=conf.upstream.pool_wait,
        pool_retry_after=conf.upstream.pool_retry_after,
        tls=context_for_url(
            root,
            ClientFiles(conf.upstream.ca_file, conf.upstream.cert_file, conf.upstream.key_file),
            "[upstream] ca_file, cert_file, key_file",
        ),
    )
    versions = UpstreamVersions(
        root + API_SUFFIX + "/",
        conf.upstream.version_refresh_interval,
        _version(conf.upstream.min_version),
        _version(conf.upstream.max_version),
    )
    upstream = Upstream(settings)
    identity = await build_authenticator(conf, upstream.session)
    reader = ServerReader(
        lambda: upstream.session,
        root + API_SUFFIX,
        identity.service_token,
        lambda: versions.range.maximum,
    )
    feed = build_feed(conf)  # Nova's notifications: the mirror's and the audit's
    servers = build_facts_store(conf, reader, feed)
    policy = PolicyEngine(conf)
    rate_limiter = RateLimiter.from_conf(conf, policy)
    if not rate_limiter.shared and rate_limiter.rules.rules and worker_count(conf) > 1:
        log.warning(
            "rate_limit_counts_per_worker",
            storage_url=conf.rate_limit.storage_url,
            workers=worker_count(conf),
            hint="each worker counts alone; use async+redis:// for limits shared by all",
        )
    gate = Gate(
        upstream=upstream,
        versions=versions,
        forwarding=header_names.ForwardingPolicy([]),
        identity=identity,
        policy=policy,
        servers=servers,
        max_body=0,
        max_path=0,
    )
    gate.rate_limiter = rate_limiter
    if conf.metrics.enabled:
        gate.observers.append(metrics.MetricsObserver(gate, conf.metrics.sample_interval))
    # Starts the writer threads of this worker; with the feed, it also records what Nova
    # did with each action this worker forwarded.
    gate.audit = build_audit_trail(conf, feed)
    if gate.audit is not None:
        gate.observers.append(gate.audit)
    apply_reloadable(gate, conf)
    return gate


def build_feed(conf: cfg.ConfigOpts) -> NotificationFeed | None:
    """This worker's feed of Nova's notifications ([server_facts]); None without a bus.

    One feed, any number of subscribers: the server-facts mirror and the audit trail's
    execution evidence both read it (started with the worker, see gateway.web.server).
    """
    facts = conf.server_facts
    if not facts.notifications_url:
        return None
    # [oslo_messaging_rabbit] from the gateway's own files, as for the audit sink.
    tls = RabbitTLS.of(
        messaging_conf(conf.config_file or (), conf.config_dir or ()), facts.notifications_url
    )
    tls.check("the server-facts feed")
    try:
        return NotificationFeed(
            FeedSettings(
                transport_url=facts.notifications_url,
                exchange=facts.exchange,
                topics=tuple(facts.topics),
                queue_prefix=facts.queue_prefix,
                heartbeat_interval=facts.heartbeat_interval,
                ssl=tls.kombu_ssl(),
            )
        )
    except FeedConfigError as exc:
        raise ConfigError(f"[server_facts] notifications_url: {exc}") from None


def build_facts_store(
    conf: cfg.ConfigOpts, reader: ServerReader, feed: NotificationFeed | None
) -> FactsStore:
    """The mirror fed by Nova's notifications when a bus is configured, else the cache."""
    facts, lookup = conf.server_facts, conf.server_lookup
    if feed is not None:
        unused = [
            name
            for name in ("cache_ttl", "cache_size")
            if getattr(conf.get_location(name, "server_lookup"), "location", None)
            is not cfg.Locations.opt_default
        ]
        if unused:
            log.warning(
                "server_lookup_options_unused",
                options=unused,
                hint="[server_lookup] cache_ttl and cache_size apply only without "
                "[server_facts] notifications_url; the mirror uses [server_facts] size",
            )
    settings = StoreSettings(
        size=facts.size if feed is not None else lookup.cache_size,
        cache_ttl=lookup.cache_ttl,
        pending_wait=facts.pending_wait,
        max_lag=facts.max_lag,
    )
    return FactsStore(reader, settings, feed)


def apply_reloadable(gate: Gate, conf: cfg.ConfigOpts) -> None:
    """Options that SIGHUP may change without dropping a connection."""
    gate.forwarding = header_names.ForwardingPolicy(conf.gateway.trusted_proxies)
    gate.max_body = conf.limits.max_request_body_size
    gate.max_path = conf.limits.max_path_length
    gate.body_timeout = conf.limits.request_body_timeout
    gate.strict_locks = conf.policy.strict_locks
    gate.server_header = conf.gateway.server_header
    if gate.audit is not None:
        gate.audit.redactor = Redactor(conf.audit.redact_fields)
    if gate.rate_limiter is not None:
        gate.rate_limiter.reload_rules(conf.rate_limit.rules_file)


def call_from(request: web.BaseRequest) -> Call:
    # Identity headers are the gateway's to assert, never the client's; header names
    # with underscores are dropped (as nginx does) because a WSGI server upstream would
    # read X_Auth_Token as X-Auth-Token, a second spelling the gate never checked.
    headers = [
        (key, value)
        for key, value in strip_identity_headers(request.headers.items())
        if "_" not in key
    ]
    peer = request.remote or ""
    return Call(
        request_id=header_names.new_request_id(),
        method=request.method,
        target=request.raw_path,
        headers=headers,
        peer=peer,
        scheme=request.scheme,
        host=request.headers.get("Host", ""),
        global_request_id=header_names.global_request_id(headers),
    )


class ApiRequest(web.BaseRequest):
    """A request to the API listener: every answer to it names the configured Server.

    aiohttp's low-level server has no response hook of its own; the request's prepare
    hook runs for every answer, aiohttp's own (a parser's 400, a 500) included, after
    aiohttp set its default ``Python/3.x aiohttp/3.x``.
    """

    ATTRS = web.BaseRequest.ATTRS | frozenset(["_gate"])

    def __init__(self, gate: Gate, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate = gate

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        response.headers["Server"] = self._gate.server_header


def request_factory(gate: Gate) -> Callable[..., web.BaseRequest]:
    """web.Server's request factory: ApiRequest bound to ``gate``."""

    def make(
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        loop = asyncio.get_running_loop()
        return ApiRequest(gate, message, payload, protocol, writer, task, loop)

    return make


def api_handler(gate: Gate) -> Any:
    async def on_request(request: web.BaseRequest) -> web.StreamResponse:
        call = call_from(request)
        request[CALL] = call  # for the request line, once the answer is sent
        return await handle(gate, call, request)

    return on_request


def admin_app(gate: Gate, ready_max_age: float) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        age = gate.versions.age()
        checks = {"upstream_version_document_age": None if age is None else round(age, 3)}
        # The last good policy keeps serving when a reload fails: report, don't fail.
        checks["policy_last_reload_ok"] = gate.policy.last_reload_ok
        if gate.servers.feed is not None:
            # Degraded decisions read Nova and stay right: report, don't fail.
            checks["server_facts_degraded"] = gate.servers.degraded()
        ready = age is not None and age <= ready_max_age
        if gate.audit is not None:
            # A fail-closed trail that cannot write refuses every request: out of
            # rotation with it. Fail-open serves on, so it only reports.
            checks["audit_sinks_ok"] = gate.audit.healthy
            ready = ready and (gate.audit.healthy or not gate.audit.fail_closed)
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    observer = next((o for o in gate.observers if isinstance(o, metrics.MetricsObserver)), None)
    if observer is not None:
        # The sampler lives as long as this worker's admin listener.
        app.on_startup.append(observer.start)
        app.on_cleanup.append(observer.stop)
        app.router.add_get("/metrics", metrics.metrics_handler(observer))
    return app
