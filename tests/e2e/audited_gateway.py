"""The audited e2e gateway: a sealed file trail, its records, and Nova's log checked against it.

Owns starting it, reading and correlating its records, `audit verify`; never acts on a server.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yarl

from tests.e2e.gateway_fixtures import GatewayLab, start_gateway
from tests.support.api_client import ApiClient
from tests.support.processes import ProcessStartError, ServerProcess

RECORD_TIMEOUT = 10.0  # the audit writer thread appends within milliseconds
VERIFY_TIMEOUT = 60.0

Ran = tuple[str, str, str]  # (server id, Nova's action name, Nova's request id)

# Nova's instance-action names that differ from the action keys the gateway records.
NOVA_ACTION_KEYS = {
    "stop": "os-stop",
    "start": "os-start",
    "live-migration": "os-migrateLive",
    "resetState": "os-resetState",
}


def port_of(url: str) -> int:
    port = yarl.URL(url).port
    assert port is not None
    return port


@dataclass(frozen=True)
class AuditedGateway:
    """A module's gateway with its audit trail on: where the trail goes, and its key."""

    lab: GatewayLab
    audit_dir: Path
    key_file: Path

    @property
    def process(self) -> ServerProcess:
        """The gateway process (the e2e conftest attaches its log tail to a failure)."""
        return self.lab.process

    @property
    def port(self) -> int:
        return port_of(self.lab.url)


def start_audited_gateway(
    upstream_url: str,
    home: Path,
    log_dir: Path,
    sections: Mapping[str, Mapping[str, object]],
    *,
    name: str,
) -> AuditedGateway:
    """``sections`` plus a file audit trail sealed with a fresh key, all under ``home``; a
    gateway that does not start fails the test as ``name``."""
    audit_dir = home / "audit"
    audit_dir.mkdir()
    key_file = home / "audit.key"
    key_file.write_text(secrets.token_hex(16), encoding="ascii")  # 32 bytes
    key_file.chmod(0o600)
    audited = {
        **sections,
        "audit": {
            "enabled": "true",
            "sinks": "file",
            "hmac_key_file": str(key_file),
            "file_directory": str(audit_dir),
            "file_fsync": "never",
        },
    }
    try:
        lab = start_gateway(upstream_url, home / "config", log_dir, audited)
    except ProcessStartError as exc:
        pytest.fail(f"{name} did not start: {exc}", pytrace=False)
    return AuditedGateway(lab, audit_dir, key_file)


def audit_records(audit_dir: Path) -> list[dict[str, Any]]:
    """Every complete call record: a request record, or a write-ahead decision with its
    outcome's answer (status, upstream) joined in by request id. A line still being
    appended is left for the next read."""
    deciding: list[dict[str, Any]] = []
    outcomes: dict[str, dict[str, Any]] = {}
    for path in sorted(audit_dir.glob("*.jsonl")):
        for line in path.read_text(encoding="ascii").splitlines(keepends=True):
            if line.endswith("\n"):
                record = json.loads(line)
                if record.get("event") in ("request", "decision"):
                    deciding.append(record)
                elif record.get("event") == "outcome":
                    outcomes[record["request_id"]] = record
    for record in deciding:
        outcome = outcomes.get(record["request_id"])
        if record["event"] == "decision":
            record["upstream"] = outcome["upstream"] if outcome is not None else None
            record["decision"]["status"] = outcome["status"] if outcome is not None else None
    return deciding


async def instance_actions(
    nova: ApiClient, server_id: str, token: str, microversion: str | None = None
) -> list[tuple[str, str]]:
    """(action, request id) of every row of Nova's instance-action log for the server."""
    reply = await nova.request(
        "GET",
        f"/servers/{server_id}/os-instance-actions",
        token=token,
        microversion=microversion,
    )
    assert reply.status == 200, reply.body
    return sorted((row["action"], row["request_id"]) for row in reply.body["instanceActions"])


def authorizing_record(
    records: list[dict[str, Any]], server_id: str, action: str, request_id: str
) -> dict[str, Any] | None:
    """The "allow" record of ``action`` on the server that Nova ran as ``request_id``.

    Correlated by Nova's own request id (the record's upstream ``request_id``), or by the
    global request id the gateway forwarded (its own id when the client sent none).
    """
    key = NOVA_ACTION_KEYS.get(action, action)
    for record in records:
        upstream = record.get("upstream") or {}
        ids = {upstream.get("request_id"), record.get("global_request_id")}
        if (
            request_id in ids
            and record["decision"]["outcome"] == "allow"
            and (record.get("action") or {}).get("key") == key
            and record["target"]["server_id"] == server_id
        ):
            return record
    return None


async def not_allowed(
    audit_dir: Path, ran: Sequence[Ran]
) -> tuple[list[Ran], list[dict[str, Any]]]:
    """The actions Nova ran that no "allow" record authorizes, and the records read; waits
    up to RECORD_TIMEOUT for the writer thread's last records while any is missing."""
    deadline = time.monotonic() + RECORD_TIMEOUT
    while True:  # bounded: the writer thread may still hold the last records
        records = audit_records(audit_dir)
        missing = [
            (server, action, request_id)
            for server, action, request_id in ran
            if authorizing_record(records, server, action, request_id) is None
        ]
        if not missing or time.monotonic() >= deadline:
            return missing, records
        await asyncio.sleep(0.1)


def nova_gateway_command() -> list[str]:
    """The ``nova-gateway`` console script beside this interpreter, else ``python -m gateway``."""
    script = Path(sys.executable).parent / "nova-gateway"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gateway"]


def audit_verify(gateway: AuditedGateway) -> subprocess.CompletedProcess[str]:
    """``nova-gateway audit verify`` of the gateway's trail with its key (the caller judges)."""
    return subprocess.run(
        [
            *nova_gateway_command(),
            "audit",
            "verify",
            "--key-file",
            str(gateway.key_file),
            str(gateway.audit_dir),
        ],
        capture_output=True,
        text=True,
        timeout=VERIFY_TIMEOUT,
        check=False,
    )
