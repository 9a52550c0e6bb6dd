"""The demo: with no Nova configured, run the gateway in front of the bundled simulator.

Owns starting and seeding the simulator and printing what to try; it must never be used
when an upstream is configured.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from oslo_config import cfg

from gateway.web import server

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


DEMO_DATA = Path("demo-data")


def _demo_audit(conf: cfg.ConfigOpts) -> Path | None:
    """Unless the operator configured audit, the demo audits into ./demo-data/audit."""
    if conf.audit.enabled:
        return None
    audit_dir = DEMO_DATA / "audit"
    audit_dir.mkdir(parents=True, exist_ok=True)
    key_file = DEMO_DATA / "audit.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))  # text: the key loader strips whitespace
        key_file.chmod(0o600)
    conf.set_override("enabled", True, group="audit")
    conf.set_override("hmac_key_file", str(key_file), group="audit")
    conf.set_override("file_directory", str(audit_dir), group="audit")
    return audit_dir


def _post(action: str, token: str, body: str, extra: str = "") -> str:
    headers = f"-H 'X-Auth-Token: {token}' -H 'Content-Type: application/json'{extra}"
    return f"curl -si -X POST {action} {headers} -d '{body}'"


def _instructions(base: str, admin: str, p1_server: str, audit_dir: Path | None) -> str:
    """What to try; every curl line follows a comment naming the status it answers.

    ``base`` is the API's /v2.1 URL, ``admin`` the admin listener's, scheme included.
    """
    action = f"{base}/servers/{p1_server}/action"
    return "\n".join(
        [
            f"nova-gateway demo: gateway {base.removesuffix('/v2.1')} -> bundled Nova simulator",
            "Tokens are <user>:<project>[:<roles>], e.g. alice:p1 (member), eve:p2.",
            "",
            "# allowed: alice pauses her own server (202)",
            _post(action, "alice:p1", '{"pause": null}'),
            "# and reads it: status PAUSED (200)",
            f"curl -si {base}/servers/{p1_server} -H 'X-Auth-Token: alice:p1'",
            "# refused by the gateway: two values for one key could authorize one action",
            "# and run another; never forwarded (400)",
            _post(action, "alice:p1", '{"unpause": null, "unpause": {}}'),
            "# refused by the gateway: addFloatingIp is gone from microversion 2.44 (404)",
            _post(
                action,
                "alice:p1",
                '{"addFloatingIp": {"address": "10.0.0.5"}}',
                " -H 'OpenStack-API-Version: compute 2.44'",
            ),
            "# refused with Nova's own message: a reboot type is HARD or SOFT (400)",
            _post(action, "alice:p1", '{"reboot": {"type": "COLD"}}'),
            "# refused by policy: a reader may look, not act, whatever X-Roles says (403)",
            _post(action, "carol:p1:reader", '{"unpause": null}', " -H 'X-Roles: admin'"),
            "# another project's server does not exist for eve, as in Nova (404)",
            _post(action, "eve:p2", '{"unpause": null}'),
            "# alice locks her server (202)",
            _post(action, "alice:p1", '{"lock": null}'),
            "# then even she cannot unpause it until she unlocks (409)",
            _post(action, "alice:p1", '{"unpause": null}'),
            f"# health and readiness: curl -s {admin}/healthz ; curl -s {admin}/readyz",
            "# metrics: every decision above, by action, decision, reason and status",
            f"curl -s {admin}/metrics | grep '^nova_gateway_requests_total'",
            *_audit_lines(audit_dir),
            "# the gateway logs one JSON line per event on stderr (this terminal)",
        ]
    )


def _audit_lines(audit_dir: Path | None) -> list[str]:
    if audit_dir is None:
        return ["# audit: as configured in [audit]"]
    return [
        f"# audit: one hash-chained record per request in {audit_dir}/ (tokens never)",
        f"tail -n 3 {audit_dir}/*.jsonl",
        f"nova-gateway audit verify --key-file {DEMO_DATA}/audit.key {audit_dir}",
        f"nova-gateway audit query --key-file {DEMO_DATA}/audit.key --decision deny {audit_dir}",
    ]


def run(conf: cfg.ConfigOpts) -> int:
    audit_dir = _demo_audit(conf)
    simulator, url = _start_simulator()
    try:
        p1_server = _servers(url, "alice:p1")[0]["id"]
        api_url, admin_url = server.listener_urls(conf)
        text = _instructions(api_url, admin_url, p1_server, audit_dir)
        ready = f"READY {api_url} admin {admin_url}"
        return server.run(conf, url, lambda: print(f"{ready}\n{text}", flush=True))
    finally:
        if simulator.poll() is None:
            os.kill(simulator.pid, signal.SIGTERM)
            simulator.wait(timeout=10)
