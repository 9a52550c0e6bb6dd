"""The web layer: turns an aiohttp request into a Call, and the admin listener.

Owns the wiring of configuration into a Gate and the HTTP entry points; it must never
decide anything itself (the pipeline does).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from oslo_config import cfg

from gateway import headers as header_names
from gateway.call import Call
from gateway.pipeline import Gate, handle
from gateway.proxy import Upstream, UpstreamSettings
from gateway.types import Version
from gateway.versions import UpstreamVersions

API_SUFFIX = "/v2.1"


def upstream_root(url: str) -> str:
    """``http://nova:8774/v2.1`` → ``http://nova:8774``: paths are forwarded as they came."""
    url = url.rstrip("/")
    return url[: -len(API_SUFFIX)] if url.endswith(API_SUFFIX) else url


def _version(text: str | None) -> Version | None:
    return Version.parse(text) if text else None


def build_gate(conf: cfg.ConfigOpts, upstream_url: str) -> Gate:
    root = upstream_root(upstream_url)
    settings = UpstreamSettings(
        base_url=root,
        connect_timeout=conf.upstream.connect_timeout,
        read_timeout=conf.upstream.read_timeout,
        total_timeout=conf.upstream.total_timeout,
        pool_size=conf.upstream.pool_size,
        pool_wait=conf.upstream.pool_wait,
        pool_retry_after=conf.upstream.pool_retry_after,
    )
    versions = UpstreamVersions(
        root + API_SUFFIX + "/",
        conf.upstream.version_refresh_interval,
        _version(conf.upstream.min_version),
        _version(conf.upstream.max_version),
    )
    gate = Gate(
        upstream=Upstream(settings),
        versions=versions,
        forwarding=header_names.ForwardingPolicy([]),
        max_body=0,
        max_path=0,
    )
    apply_reloadable(gate, conf)
    return gate


def apply_reloadable(gate: Gate, conf: cfg.ConfigOpts) -> None:
    """Options that SIGHUP may change without dropping a connection."""
    gate.forwarding = header_names.ForwardingPolicy(conf.gateway.trusted_proxies)
    gate.max_body = conf.limits.max_request_body_size
    gate.max_path = conf.limits.max_path_length


def call_from(request: web.BaseRequest) -> Call:
    headers = list(request.headers.items())
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


def api_handler(gate: Gate) -> Any:
    async def on_request(request: web.BaseRequest) -> web.StreamResponse:
        call = call_from(request)
        return await handle(gate, call, request)

    return on_request


def admin_app(gate: Gate, ready_max_age: float) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(request: web.Request) -> web.Response:
        age = gate.versions.age()
        checks = {"upstream_version_document_age": None if age is None else round(age, 3)}
        ready = age is not None and age <= ready_max_age
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
