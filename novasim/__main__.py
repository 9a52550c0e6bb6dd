"""``python -m novasim``: serve one simulator on loopback until SIGTERM or SIGINT.

Owns the command line and the ``READY <url>`` announcement; it must never print to
stdout after READY (the demo stops reading the pipe there) nor log each request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from aiohttp import web

from novasim.app import create_app
from novasim.config import SimConfig


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m novasim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument(
        "--seed", type=int, default=0, help="ACTIVE servers to create in each of p1 and p2"
    )
    parser.add_argument(
        "--settle-delay",
        type=float,
        default=0.0,
        help="seconds a transitional task state (pausing, rebooting...) lasts",
    )
    parser.add_argument(
        "--max-recorded-requests", type=int, default=10000, help="request recorder bound"
    )
    parser.add_argument(
        "--trust-identity-headers",
        action="store_true",
        help="without a token, accept X-User-Id/X-Project-Id/X-Roles (a trusted front)",
    )
    parser.add_argument(
        "--notify-url",
        help="publish Nova's versioned notifications to this RabbitMQ transport URL "
        "(rabbit://user:pass@host:5672/), exchange nova, topic versioned_notifications",
    )
    parser.add_argument(
        "--notify-topic",
        default="versioned_notifications",
        help="the notification topic (messages go to <topic>.info)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = SimConfig(
        settle_delay=args.settle_delay,
        seed=args.seed,
        max_recorded_requests=args.max_recorded_requests,
        trust_identity_headers=args.trust_identity_headers,
        notify_url=args.notify_url,
        notify_topic=args.notify_topic,
    )
    runner = web.AppRunner(create_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    port = args.port
    if port == 0 and site._server is not None and site._server.sockets:  # type: ignore[attr-defined]
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    print(f"READY http://{args.host}:{port}/v2.1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
