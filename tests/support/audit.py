"""Audit test plumbing: a key file, a simulator upstream, requests, and reading the trail back.

Owns test wiring only; it must never change gateway behaviour nor edit an audit file
(tests that tamper with one do it themselves, visibly).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

KEY = b"an-audit-key-for-tests-only-0123456789abcdef"


def write_key(directory: Path) -> Path:
    path = directory / "audit.key"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    return path


def audit_overrides(directory: Path, key_file: Path, **extra: Any) -> dict[str, Any]:
    """``group.name`` overrides for running_gateway: a file trail in ``directory``."""
    options: dict[str, Any] = {
        "audit.enabled": True,
        "audit.hmac_key_file": str(key_file),
        "audit.file_directory": str(directory),
        "audit.file_fsync": "never",
        "audit.retry_interval": 0.1,
    }
    options.update({f"audit.{name}": value for name, value in extra.items()})
    return options


@dataclass(frozen=True)
class Simulator:
    """novasim behind a loopback socket: its /v2.1 url and a seeded server per project."""

    url: str
    server: TestServer

    def seeded(self, project: str = "p1") -> str:
        from novasim.app import SIM

        assert self.server.app is not None
        sim = self.server.app[SIM]
        return str(next(sid for owner, sid in sim.seeded_ids() if owner == project))


@asynccontextmanager
async def simulator() -> AsyncIterator[Simulator]:
    from novasim import SimConfig, create_app

    server = TestServer(create_app(SimConfig(seed=1)), host="127.0.0.1")
    await server.start_server()
    try:
        yield Simulator(f"http://127.0.0.1:{server.port}/v2.1", server)
    finally:
        await server.close()


@dataclass(frozen=True)
class Answer:
    """An answer, and the global request id sent with it (the record carries it)."""

    status: int
    global_id: str
    body: bytes


async def send(
    base: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    raw: bytes | None = None,
    token: str | None = "alice:p1",
    headers: dict[str, str] | None = None,
) -> Answer:
    # A forwarded answer carries Nova's own request id; the global id we send is what
    # ties an answer to its record.
    sent = {
        "Content-Type": "application/json",
        "User-Agent": "audit-tests/1.0",
        "X-OpenStack-Request-ID": f"req-{uuid.uuid4()}",
    }
    if token is not None:
        sent["X-Auth-Token"] = token
    sent.update(headers or {})
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, base + path, data=data, headers=sent) as response,
    ):
        return Answer(response.status, sent["X-OpenStack-Request-ID"], await response.read())


def read_lines(directory: Path) -> list[str]:
    """Every line of every audit file in the directory, files in name (written) order."""
    lines: list[str] = []
    for path in sorted(p for p in directory.glob("*.jsonl") if p.is_file()):
        lines.extend(line for line in path.read_text().splitlines() if line)
    return lines


def read_records(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(directory)]


DECIDING = ("request", "decision")  # the records that hold a call's whole decision


def requests_by_global_id(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The deciding records (request, or a write-ahead decision) by global request id."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("event") in DECIDING:
            by_id.setdefault(str(record.get("global_request_id")), []).append(record)
    return by_id


def outcomes_of(records: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    """The outcome records that follow the decision with this (gateway) request id."""
    return [r for r in records if r.get("event") == "outcome" and r["request_id"] == request_id]


class GatedSink:
    """A real sink behind a gate the test opens and closes: a disk that stalls on demand.

    Not a mock: every line reaches the wrapped sink. ``writes`` holds each batch's size;
    ``entered`` is set when a write reaches the closed gate.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.name = sink.name
        self.batch_size = sink.batch_size
        self.writes: list[int] = []
        self.entered = threading.Event()
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self.entered.clear()
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def write(self, batch: Any) -> None:
        if not self._open.is_set():
            self.entered.set()
            self._open.wait(30)
        self.sink.write(batch)
        self.writes.append(len(batch))

    def tick(self) -> None:
        self.sink.tick()

    def close(self) -> None:
        self.sink.close()


def action_call(server_id: str = "srv-1", method: str = "POST") -> Any:
    """A Call as the pipeline leaves it when it allows ``pause`` on ``server_id`` (another
    method: that method on the server itself, e.g. DELETE)."""
    from gateway.call import Call
    from gateway.nova import routing
    from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS

    action = method == "POST"
    target = f"/v2.1/servers/{server_id}" + ("/action" if action else "")
    call = Call(f"req-{uuid.uuid4()}", method, target, [], "127.0.0.1", "http", "h")
    path, query = routing.split_target(target, 4096)
    call.route = routing.classify(method, path, query)
    if action:
        call.action = BY_KEY["pause"]
        call.action_body = {"pause": None}
    else:
        call.action = SERVER_RESOURCE_ACTIONS.get(method)
    call.decision = "allow"
    return call
