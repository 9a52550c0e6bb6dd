"""The mixed scenario: 80 % reads and 20 % actions over a working set of servers in several
projects, through the gateway with and without the notification mirror.

Owns that run (novasim publishing Nova's notifications to RabbitMQ, one gateway per row,
the clients) and its figure: the reads of Nova the gateway itself made, counted from
novasim's own request record, per client request and per action. It must never aim at
anything but 127.0.0.1 nor leave a process it started running.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import REPO
from bench.procs import LOOPBACK, Children, StartError, free_port
from bench.scenarios import MIXED_ACTIONS, MIXED_PROJECTS, MIXED_READ_SHARE
from bench.stats import fmt

START_TIMEOUT_SECONDS = 60.0
SERVICE_TOKEN = "nova-gateway:service:admin"  # [identity] noauth_service_token's default
RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"


@dataclass
class MixedRow:
    name: str
    what: str
    options: dict[str, dict[str, str]]
    requests: int = 0
    actions: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    reads: int = 0  # by the gateway, from novasim's record
    reads_metric: dict[str, float] = field(default_factory=dict)  # the gateway's, by reason
    seconds: float = 0.0

    @property
    def per_request(self) -> float | None:
        return self.reads / self.requests if self.requests else None

    @property
    def per_action(self) -> float | None:
        return self.reads / self.actions if self.actions else None


def rows(rabbit_url: str, queue_prefix: str) -> list[MixedRow]:
    return [
        MixedRow(
            "no bus",
            "[server_lookup] cache_ttl = 2 (the default): reads, refusals confirmed",
            {},
        ),
        MixedRow(
            "mirror",
            "[server_facts] notifications_url: decisions on Nova's notifications",
            {
                "server_facts": {
                    "notifications_url": rabbit_url,
                    "topics": queue_prefix + "_topic",
                    "queue_prefix": queue_prefix,
                }
            },
        ),
    ]


class Lab:
    """novasim (notifying) and a working set of servers spread over the projects."""

    def __init__(self, children: Children, workdir: Path, topic: str, rabbit_url: str) -> None:
        self.children = children
        self.workdir = workdir
        self.topic = topic
        self.rabbit_url = rabbit_url
        self.port = 0
        self.servers: list[tuple[str, str]] = []  # (project, server id)
        # Where each server is in MIXED_ACTIONS (kept across rows: the servers keep state).
        self.steps: dict[str, int] = {}

    def start(self, per_project: int, max_records: int) -> None:
        self.port = free_port()
        child = self.children.spawn(
            "novasim-mixed",
            [
                sys.executable, "-m", "novasim", "--host", LOOPBACK, "--port", str(self.port),
                "--max-recorded-requests", str(max_records), "--notify-url", self.rabbit_url,
                "--notify-topic", self.topic,
            ],
            cwd=REPO,
        )  # fmt: skip
        self.children.wait_ready_line(child, START_TIMEOUT_SECONDS)
        for project in MIXED_PROJECTS:
            for index in range(per_project):
                created = self._control(
                    "POST", "/_sim/servers", {"project": project, "name": f"{project}-{index}"}
                )
                self.servers.append((project, str(created["server"]["id"])))

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None

    def clear_record(self) -> None:
        self._control("DELETE", "/_sim/requests")

    def gateway_reads(self) -> int:
        """GETs novasim received with the gateway's own token: its reads of servers."""
        records = self._control("GET", "/_sim/requests")["requests"]
        return sum(
            1
            for record in records
            if record["method"] == "GET"
            and "/servers/" in record["path"]
            and any(
                k.lower() == "x-auth-token" and v == SERVICE_TOKEN for k, v in record["headers"]
            )
        )


def start_gateway(children: Children, lab: Lab, row: MixedRow, workers: int) -> tuple[int, int]:
    config = lab.workdir / f"gateway-{row.name.replace(' ', '-')}.conf"
    groups = {"identity": {"mode": "noauth", "allow_noauth": "true"}, **row.options}
    config.write_text(
        "\n".join(
            f"[{group}]\n" + "\n".join(f"{k} = {v}" for k, v in options.items()) + "\n"
            for group, options in groups.items()
        ),
        encoding="utf-8",
    )
    port, admin = free_port(), free_port()
    child = children.spawn(
        f"gateway-{row.name.replace(' ', '-')}",
        [
            sys.executable, "-m", "gateway", "--config-file", str(config),
            "--upstream-url", f"http://{LOOPBACK}:{lab.port}/v2.1",
            "--listen", f"{LOOPBACK}:{port}", "--admin-listen", f"{LOOPBACK}:{admin}",
            "--workers", str(workers),
        ],
        cwd=REPO,
    )  # fmt: skip
    children.wait_ready_line(child, START_TIMEOUT_SECONDS)
    return port, admin


async def wait_mirror(admin: int, timeout: float = 30.0) -> None:
    """Until /readyz says the mirror is up (a row without one returns at once)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://{LOOPBACK}:{admin}/readyz") as response:
                checks = (await response.json())["checks"]
            if checks.get("server_facts_degraded") in (None, False):
                return
            if time.monotonic() > deadline:
                raise StartError(f"the gateway's mirror never came up: {checks}")
            await asyncio.sleep(0.1)


async def metric_reads(admin: int) -> dict[str, float]:
    """nova_gateway_server_reads_total by reason."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{LOOPBACK}:{admin}/metrics") as response,
    ):
        text = await response.text()
    found = {}
    for line in text.splitlines():
        match = re.match(r'nova_gateway_server_reads_total\{reason="([a-z_]+)"\} (\S+)', line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


async def drive(
    port: int,
    servers: Sequence[tuple[str, str]],
    steps: dict[str, int],
    requests: int,
    clients: int,
    seed: int,
    read_share: float = MIXED_READ_SHARE,
) -> tuple[int, int, dict[int, int]]:
    """``clients`` clients, each owning a share of the servers (actions on one server never
    race), send ``requests`` in all: a read with MIXED_READ_SHARE, else the server's next
    action in its cycle (with ``read_share`` 0, each client's servers in turn).
    Returns (requests, actions, statuses)."""
    base = f"http://{LOOPBACK}:{port}/v2.1/servers/"
    statuses: dict[int, int] = {}
    counts = [0, 0]
    shares = [servers[index::clients] for index in range(clients)]
    quota = [
        requests // clients + (1 if index < requests % clients else 0) for index in range(clients)
    ]

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        rng = random.Random(seed * 1000 + index)
        mine = shares[index]
        for turn in range(quota[index]):
            project, server = rng.choice(mine) if read_share else mine[turn % len(mine)]
            headers = {"X-Auth-Token": f"user-{project}:{project}"}
            if rng.random() < read_share:
                request = session.get(base + server, headers=headers)
            else:
                body = MIXED_ACTIONS[steps.get(server, 0) % len(MIXED_ACTIONS)]
                steps[server] = steps.get(server, 0) + 1
                counts[1] += 1
                request = session.post(base + server + "/action", json=body, headers=headers)
            async with request as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            counts[0] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(index, session) for index in range(clients)))
    return counts[0], counts[1], statuses


async def measure(lab: Lab, row: MixedRow, port: int, admin: int, args: Any) -> None:
    await wait_mirror(admin)
    # Warm-up: one action on every server (the first decision on a server reads it).
    await drive(port, lab.servers, lab.steps, len(lab.servers), args.mixed_clients, 1, read_share=0)
    await asyncio.sleep(0.5)  # the warm-up's last notifications
    lab.clear_record()
    before = await metric_reads(admin)
    started = time.monotonic()
    row.requests, row.actions, row.statuses = await drive(
        port, lab.servers, lab.steps, args.mixed_requests, args.mixed_clients, seed=2
    )
    row.seconds = time.monotonic() - started
    row.reads = lab.gateway_reads()
    after = await metric_reads(admin)
    row.reads_metric = {
        reason: after[reason] - before.get(reason, 0.0)
        for reason in after
        if after[reason] > before.get(reason, 0.0)
    }


def run_mixed(args: Any, workdir: Path, note: Any) -> list[str]:
    """The mixed scenario's rows, measured; its Markdown section."""
    children = Children(workdir)
    prefix = f"nova-gateway-bench-{random.randrange(16**8):08x}"
    measured = rows(args.rabbit_url, prefix)
    lab = Lab(children, workdir, prefix + "_topic", args.rabbit_url)
    try:
        lab.start(args.mixed_servers, max_records=args.mixed_requests * 4 + 10000)
        for row in measured:
            port, admin = start_gateway(children, lab, row, args.mixed_workers)
            asyncio.run(measure(lab, row, port, admin, args))
            children.stop(children._children[-1])
    except (StartError, OSError, aiohttp.ClientError) as exc:
        note(f"mixed scenario failed: {exc}")
    finally:
        children.stop_all()
    return report(measured, lab, args)


def report(measured: Sequence[MixedRow], lab: Lab, args: Any) -> list[str]:
    head = (
        "| row | client requests | actions | gateway reads of Nova | reads per request "
        "| reads per action | the gateway's count, by reason | statuses | req/s |"
    )
    cycle = ", ".join(next(iter(action)) for action in MIXED_ACTIONS)
    lines = [
        f"### mixed: {round(MIXED_READ_SHARE * 100)} % GET /servers/{{id}}, "
        f"{round((1 - MIXED_READ_SHARE) * 100)} % actions ({cycle} "
        f"in turn per server), {len(lab.servers)} servers in {len(MIXED_PROJECTS)} projects, "
        f"{args.mixed_clients} clients, gateway --workers {args.mixed_workers}",
        "",
        "Reads counted from novasim's record of the requests carrying the gateway's own "
        "token, after a warm-up that touched every server (steady state).",
        "",
        head,
        "|" + "---|" * head.count(" | ") + "---|",
    ]
    for row in measured:
        if not row.requests:
            continue
        statuses = ", ".join(f"{code}: {count}" for code, count in sorted(row.statuses.items()))
        reasons = ", ".join(f"{k} {v:g}" for k, v in sorted(row.reads_metric.items())) or "0"
        lines.append(
            f"| {row.name} | {row.requests} | {row.actions} | {row.reads} | "
            f"{fmt(row.per_request, 3)} | {fmt(row.per_action, 3)} | {reasons} | "
            f"{statuses} | {fmt(row.requests / row.seconds if row.seconds else None, 0)} |"
        )
    lines += ["", *[f"* {row.name}: {row.what}" for row in measured]]
    return lines
