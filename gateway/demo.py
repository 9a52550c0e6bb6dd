"""The demo: with no Nova configured, run the gateway in front of the bundled simulator.

Owns starting and seeding the simulator and printing what to try; it must never be used
when an upstream is configured.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Any

from oslo_config import cfg

from gateway import server

SEED_PER_PROJECT = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_simulator() -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "novasim",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            str(SEED_PER_PROJECT),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("READY "):
            return process, line.split()[1]
    raise SystemExit("nova-gateway demo: the Nova simulator did not start")


def _servers(url: str, token: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(url + "/servers", headers={"X-Auth-Token": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        servers: list[dict[str, Any]] = json.load(response)["servers"]
    return servers


def _instructions(listen: str, admin: str, p1_server: str) -> str:
    base = f"http://{listen}/v2.1"
    action = f"{base}/servers/{p1_server}/action"
    json_type = "-H 'Content-Type: application/json'"
    return "\n".join(
        [
            f"nova-gateway demo: gateway http://{listen} -> bundled Nova simulator",
            "Tokens are <user>:<project>[:<roles>], e.g. alice:p1 (member), eve:p2.",
            "",
            "# allowed: alice pauses her own server (202), then reads it (status PAUSED)",
            f"curl -si -X POST {action} -H 'X-Auth-Token: alice:p1' {json_type} "
            "-d '{\"pause\": null}'",
            f"curl -s {base}/servers/{p1_server} -H 'X-Auth-Token: alice:p1'",
            "# refused by the gateway: two values for one key could authorize one action",
            "# and run another (400 badRequest, never forwarded)",
            f"curl -si -X POST {action} -H 'X-Auth-Token: alice:p1' {json_type} "
            '-d \'{"unpause": null, "unpause": {}}\'',
            "# refused by the gateway: addFloatingIp is gone from microversion 2.44 (404)",
            f"curl -si -X POST {action} -H 'X-Auth-Token: alice:p1' {json_type} "
            "-H 'OpenStack-API-Version: compute 2.44' "
            '-d \'{"addFloatingIp": {"address": "10.0.0.5"}}\'',
            "# refused by the gateway with Nova's own message: reboot type must be HARD/SOFT",
            f"curl -si -X POST {action} -H 'X-Auth-Token: alice:p1' {json_type} "
            '-d \'{"reboot": {"type": "COLD"}}\'',
            f"# health and readiness: curl -s http://{admin}/healthz ; "
            f"curl -s http://{admin}/readyz",
            "# the gateway logs one JSON line per event on stderr (this terminal)",
        ]
    )


def run(conf: cfg.ConfigOpts) -> int:
    simulator, url = _start_simulator()
    try:
        p1_server = _servers(url, "alice:p1")[0]["id"]
        text = _instructions(conf.gateway.listen, conf.gateway.admin_listen, p1_server)
        return server.run(conf, url, lambda: print(text, flush=True))
    finally:
        if simulator.poll() is None:
            os.kill(simulator.pid, signal.SIGTERM)
            simulator.wait(timeout=10)
