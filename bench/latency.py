"""Action latency against the real Nova: direct, and through the gateway with and without
the notification mirror; the median of N calls each of lock, unlock and pause.

Owns that run: it starts realnova from ``../shared/realnova`` (publishing its versioned
notifications to RabbitMQ), two gateways in front of it, and times each call from send to
the whole answer, the three targets interleaved call by call so that drift hits all alike.
It must never aim at anything but 127.0.0.1 nor leave a process it started running.

    .venv/bin/python -m bench.latency [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import REPO
from bench.procs import LOOPBACK, Children, StartError, free_port

ACTIONS = ("lock", "unlock", "pause")
TOKEN = "alice:p1"
REALNOVA_START_SECONDS = 180.0


def shared_dir() -> Path:
    configured = os.environ.get("NOVA_GATEWAY_SHARED")
    return Path(configured) if configured else REPO.parent / "shared"


def start_realnova(children: Children, workdir: Path, rabbit_url: str) -> tuple[str, str]:
    """realnova's /v2.1 url and the id of its p1 seed server."""
    data = workdir / "realnova-data"
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "PLACEMENT_PORT": str(free_port()),
        "SEED_SERVERS": "1",
        "NOVA_LAB_DATA": str(data),
        "NOVA_LAB_NOTIFY_URL": rabbit_url,
    }
    child = children.spawn("realnova", [str(shared_dir() / "realnova" / "run")], env=env)
    url = children.wait_ready_line(child, REALNOVA_START_SECONDS)
    seeds = json.loads((data / "seed_servers.json").read_text(encoding="utf-8"))
    return url, next(server for project, server in seeds if project == "p1")


def start_gateway(
    children: Children, workdir: Path, name: str, upstream: str, options: dict[str, str]
) -> tuple[str, str]:
    config = workdir / f"{name}.conf"
    lines = ["[identity]", "mode = noauth", "allow_noauth = true"]
    if options:
        lines += ["[server_facts]", *(f"{key} = {value}" for key, value in options.items())]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    port, admin = free_port(), free_port()
    child = children.spawn(
        name,
        [
            sys.executable, "-m", "gateway", "--config-file", str(config),
            "--upstream-url", upstream, "--listen", f"{LOOPBACK}:{port}",
            "--admin-listen", f"{LOOPBACK}:{admin}", "--workers", "1",
        ],
        cwd=REPO,
    )  # fmt: skip
    children.wait_ready_line(child, 60.0)
    return f"http://{LOOPBACK}:{port}/v2.1", f"http://{LOOPBACK}:{admin}"


async def server_reads(admin: str) -> dict[str, float]:
    """The gateway's nova_gateway_server_reads_total, by reason."""
    async with aiohttp.ClientSession() as session, session.get(admin + "/metrics") as response:
        text = await response.text()
    reads: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('nova_gateway_server_reads_total{reason="'):
            reason = line.split('"')[1]
            reads[reason] = float(line.rsplit(" ", 1)[1])
    return reads


async def settled(session: aiohttp.ClientSession, nova: str, server: str) -> dict[str, Any]:
    """The server once no task runs on it."""
    deadline = time.monotonic() + 30
    while True:
        async with session.get(f"{nova}/servers/{server}", headers=_headers()) as response:
            body = (await response.json())["server"]
        if body["OS-EXT-STS:task_state"] is None:
            return dict(body)
        if time.monotonic() > deadline:
            raise StartError(f"server {server} stays busy: {body['status']}")
        await asyncio.sleep(0.02)


def _headers() -> dict[str, str]:
    return {"X-Auth-Token": TOKEN, "Content-Type": "application/json"}


async def timed(session: aiohttp.ClientSession, base: str, server: str, action: str) -> float:
    started = time.perf_counter()
    async with session.post(
        f"{base}/servers/{server}/action", data=json.dumps({action: None}), headers=_headers()
    ) as response:
        await response.read()
        status = response.status
    elapsed = time.perf_counter() - started
    if status != 202:
        raise StartError(f"{action} through {base} answered {status}")
    return elapsed


async def measure(
    targets: dict[str, str], nova: str, server: str, calls: int
) -> dict[str, dict[str, list[float]]]:
    """{target: {action: [seconds, ...]}}; each round runs every action once per target."""
    times: dict[str, dict[str, list[float]]] = {t: {a: [] for a in ACTIONS} for t in targets}
    async with aiohttp.ClientSession() as session:
        await settled(session, nova, server)
        for round_ in range(calls + 1):  # the first round warms every path up, unrecorded
            for target, base in targets.items():
                for action in ACTIONS:
                    seconds = await timed(session, base, server, action)
                    if round_:
                        times[target][action].append(seconds)
                await settled(session, nova, server)
                # Back to ACTIVE for the next pause, outside the measured calls.
                async with session.post(
                    f"{nova}/servers/{server}/action",
                    data=json.dumps({"unpause": None}),
                    headers=_headers(),
                ) as response:
                    await response.read()
                await settled(session, nova, server)
    return times


def report(
    times: dict[str, dict[str, list[float]]], calls: int, reads: dict[str, dict[str, float]]
) -> str:
    direct = times["direct"]
    lines = [
        f"### Action latency against the real Nova (median of {calls} calls each, ms; "
        "send to whole answer, targets interleaved)",
        "",
        "| target | " + " | ".join(ACTIONS) + " | added over direct (" + ", ".join(ACTIONS) + ") |",
        "|---|" + "---|" * len(ACTIONS) + "---|",
    ]
    for target, by_action in times.items():
        medians = {a: statistics.median(v) * 1000 for a, v in by_action.items()}
        added = ", ".join(
            f"{medians[a] - statistics.median(direct[a]) * 1000:+.1f}" for a in ACTIONS
        )
        lines.append(
            f"| {target} | "
            + " | ".join(f"{medians[a]:.1f}" for a in ACTIONS)
            + f" | {'—' if target == 'direct' else added} |"
        )
    lines.append("")
    for target, by_reason in reads.items():
        counted = ", ".join(f"{reason} {count:g}" for reason, count in sorted(by_reason.items()))
        lines.append(f"* {target}: reads of the server from Nova, whole run: {counted or '0'}")
    return "\n".join(lines)


def purge_novas_queue(rabbit_url: str) -> None:
    """Nova fills its own versioned_notifications.info while nothing reads it: empty what
    this run's Nova put there."""
    import contextlib

    import kombu

    url = rabbit_url.replace("rabbit://", "amqp://", 1)
    with contextlib.suppress(Exception), kombu.Connection(url, connect_timeout=2) as connection:
        connection.channel().queue_purge(queue="versioned_notifications.info")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--calls", type=int, default=20, help="measured calls per action (20)")
    parser.add_argument("--rabbit-url", default="rabbit://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 500:
        parser.error("calls 1..500")
    workdir = Path(tempfile.mkdtemp(prefix="nova-gateway-latency-"))
    children = Children(workdir)
    try:
        nova, server = start_realnova(children, workdir, args.rabbit_url)
        prefix = f"nova-gateway-latency-{os.getpid()}"
        gateways = {
            "gateway, mirror": start_gateway(
                children, workdir, "gateway-mirror", nova,
                {"notifications_url": args.rabbit_url, "queue_prefix": prefix},
            ),
            "gateway, no bus": start_gateway(children, workdir, "gateway-reads", nova, {}),
        }  # fmt: skip
        targets = {"direct": nova, **{name: api for name, (api, _) in gateways.items()}}
        times = asyncio.run(measure(targets, nova, server, args.calls))
        reads = {name: asyncio.run(server_reads(admin)) for name, (_, admin) in gateways.items()}
    except (StartError, OSError, aiohttp.ClientError, KeyError, ValueError) as exc:
        print(f"latency run failed: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        purge_novas_queue(args.rabbit_url)
    print(report(times, args.calls, reads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
