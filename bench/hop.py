"""The framework's floor: a bare aiohttp reverse proxy hop, as the gateway's own stack runs.

Owns the `hop` row of bench.run: aiohttp's server, one pooled client session, uvloop as the
gateway uses it, the request passed on and the answer passed back with hop-by-hop headers
dropped; it must never decide anything (no identity, no policy, no body reading beyond
the bytes), so that what the gateway costs above it is what deciding costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

# RFC 9110 §7.6.1, plus what aiohttp sets itself on each side.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


def make_app(upstream: str) -> web.Application:
    app = web.Application()

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=60)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app["session"] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with session.request(
            request.method,
            upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as answer:
            payload = await answer.read()
            back = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, headers=back, body=payload)

    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hop", description=__doc__)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8775")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # the gateway runs without it too: the same loop as the gateway's
        pass

    def ready(*_: object) -> None:
        print(f"READY http://127.0.0.1:{args.port}", flush=True)

    web.run_app(
        make_app(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=ready,
        handle_signals=True,
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
