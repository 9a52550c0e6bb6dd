"""Where the operator configuration's CPU goes: a cProfile of one gateway under load.

Owns two things: the launcher (``python -m bench.profile OUT -- <gateway args>``), which
runs the gateway in this process and profiles its event loop from SIGUSR1 to its exit
(start-up and warm-up stay out), and the report that groups the profile by
stage (the gateway's packages, the libraries under them). It must never profile another
process, nor change what the gateway does.
"""

from __future__ import annotations

import cProfile
import pstats
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

# Package directories and what they are in the report; the first match wins.
GROUPS: tuple[tuple[str, str], ...] = (
    ("/gateway/audit/", "audit trail (records, chain, seal, hand-off)"),
    ("/gateway/ratelimit/pipe.py", "rate limit (Redis pipe)"),
    ("/gateway/ratelimit/", "rate limit (gateway)"),
    ("/redis/", "rate limit (redis-py: Sentinel, Cluster)"),
    ("/gateway/identity/", "identity (keystone, token cache)"),
    ("/gateway/policy/", "policy"),
    ("/gateway/nova/", "body, schema, microversion, routing"),
    ("/jsonschema/", "body, schema, microversion, routing"),
    ("/gateway/servers/", "server facts"),
    ("/gateway/proxy/", "proxy (upstream hop, headers)"),
    ("/gateway/metrics.py", "metrics"),
    ("/prometheus_client/", "metrics"),
    ("/gateway/web/", "web entry, access log"),
    ("/gateway/logs.py", "web entry, access log"),
    ("/structlog/", "logging (structlog)"),
    ("/gateway/", "pipeline, call, gates, responses"),
    ("/aiohttp/", "aiohttp (server and client)"),
    ("/multidict/", "aiohttp (server and client)"),
    ("/yarl/", "aiohttp (server and client)"),
    ("/asyncio/", "asyncio"),
    ("/json/", "json"),
)


def group_of(filename: str, name: str) -> str:
    for marker, group in GROUPS:
        if marker in filename:
            return group
    if filename == "~":  # a C function: name it (json's encoder, hmac, the socket, ...)
        return "C: " + name.split(" of ")[0].strip("<>").replace("built-in method ", "")
    return "other Python"


def report(path: Path, requests: int, measured_us: float | None, top: int = 14) -> list[str]:
    """Markdown: the profile by stage, as shares and as µs per request (the share times the
    row's measured CPU µs/req; cProfile's own overhead inflates small functions)."""
    stats = pstats.Stats(str(path))
    raw = stats.stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        group = group_of(filename, name)
        totals[group] = totals.get(group, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    lines = [
        "| stage | share of the event loop's profiled time | ≈ CPU µs/req |",
        "|---|---|---|",
    ]
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    shown, rest = ranked[:top], ranked[top:]
    if rest:
        shown.append(("everything else", sum(value for _, value in rest)))
    for group, value in shown:
        share = value / whole
        estimate = f"{share * measured_us:.0f}" if measured_us else "—"
        lines.append(f"| {group} | {100 * share:.1f} % | {estimate} |")
    lines.append(
        f"| (profiled: {requests} requests, {whole / max(requests, 1) * 1e6:.0f} µs of "
        "profiled time each) | | |"
    )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[1] != "--":
        print("usage: python -m bench.profile OUT -- <gateway arguments>", file=sys.stderr)
        return 2
    out, gateway_args = Path(args[0]), args[2:]
    # Enabled before the gateway starts, never from a signal handler (on Python 3.11 a
    # profiler enabled there sees nothing once the handler returns: the tracing flag is
    # per C frame). SIGUSR1 forgets what start-up and warm-up cost; the exit dumps.
    # The event loop thread's CPU time, not the clock: a wait for the GIL (the audit
    # writer thread holds it now and then) is not this thread's cost.
    profiler = cProfile.Profile(time.thread_time)
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: profiler.clear())
    from gateway.cli import main as gateway

    profiler.enable()
    try:
        return gateway(gateway_args)
    finally:
        profiler.disable()
        profiler.dump_stats(str(out))


if __name__ == "__main__":
    raise SystemExit(main())
