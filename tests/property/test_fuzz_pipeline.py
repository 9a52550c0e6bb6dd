"""Fuzzing the whole request path: random requests on a real socket, gateway before novasim.

Owns the end-to-end property: the gateway never answers 5xx of its own, and whatever
reaches novasim as an action is, byte for byte, the path and body the client sent and an
action that caller may run; it must never run unbounded (NOVA_GATEWAY_FUZZ_EXAMPLES
raises the example count) nor leave its lab thread running.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yarl
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.identity.credentials import is_identity_header
from novasim import routing as sim_routing
from novasim.app import RECORDER, SIM, create_app
from novasim.control import build_server
from novasim.recorder import RecordedRequest
from tests.support.gateway import running_gateway

LOOPBACK = "127.0.0.1"
EXAMPLES = int(os.environ.get("NOVA_GATEWAY_FUZZ_EXAMPLES", "0") or 0)
SOCKET_TIMEOUT = 4.0
BODY_TIMEOUT = 1.0  # the lab's [limits] request_body_timeout: a short body costs 1 s
MAX_ANSWER = 1 << 20
SERVICE_TOKEN = "nova-gateway:service:admin"
T = TypeVar("T")

# Members of the server's project may run these; the rest need a manager or an admin.
ADMIN_ONLY = frozenset(
    {"injectNetworkInfo", "os-resetState", "evacuate", "shelveOffload", "migrate", "os-migrateLive"}
)
PROJECT_OF_TOKEN = {"alice:p1": "p1", "bob:p1": "p1", "eve:p2": "p2"}
ADMIN_TOKEN = "admin:admin"


class ThreadedLab:
    """novasim and the gateway on their own event loop in a thread; state read on it."""

    def __init__(self, policy_dir: str) -> None:
        self.port = 0
        self._policy_dir = policy_dir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-lab", daemon=True)
        self._stack = AsyncExitStack()
        self._sim_server: TestServer | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        self._sim_server = TestServer(create_app(), host=LOOPBACK)
        await self._sim_server.start_server()
        options = {
            "policy.policy_dir": self._policy_dir,
            "limits.request_body_timeout": BODY_TIMEOUT,
        }
        url = f"http://{LOOPBACK}:{self._sim_server.port}/v2.1"
        listeners = await self._stack.enter_async_context(running_gateway(url, options))
        self.port = listeners.api_address[1]

    def stop(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    async def _stop(self) -> None:
        await self._stack.aclose()
        if self._sim_server is not None:
            await self._sim_server.close()

    def _app(self) -> Any:
        assert self._sim_server is not None and self._sim_server.app is not None
        return self._sim_server.app

    async def _make(self, project: str) -> str:
        sim = self._app()[SIM]
        server = sim.store.add(build_server(sim, {"project_id": project}))
        return str(server.id)

    async def _records(self) -> list[RecordedRequest]:
        records: list[RecordedRequest] = self._app()[RECORDER].records()
        return records

    async def _actions(self, server_id: str) -> list[str]:
        server = self._app()[SIM].store.servers.get(server_id)
        return [] if server is None else [entry.action for entry in server.actions]

    def make_server(self, project: str) -> str:
        return self.run(self._make(project))

    def records(self) -> list[RecordedRequest]:
        return self.run(self._records())

    def actions_run(self, server_id: str) -> list[str]:
        return self.run(self._actions(server_id))


@pytest.fixture(scope="module")
def threaded_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedLab]:
    lab = ThreadedLab(str(Path(tmp_path_factory.mktemp("fuzz-policy"))))
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


# -- what a fuzzed request is made of ------------------------------------------------------

ACTION_BODIES: list[dict[str, Any]] = [
    {"pause": None},
    {"unpause": None},
    {"lock": None},
    {"unlock": None},
    {"os-stop": None},
    {"os-start": None},
    {"suspend": None},
    {"resume": None},
    {"reboot": {"type": "HARD"}},
    {"reboot": {"type": "SOFT"}},
    {"createImage": {"name": "snap"}},
    {"shelve": None},
    {"changePassword": {"adminPass": "s3cret"}},
    {"rescue": None},
    {"trigger_crash_dump": None},
    {"os-getConsoleOutput": {"length": 5}},
    {"addFloatingIp": {"address": "10.0.0.9"}},
    {"migrate": None},
    {"os-migrateLive": {"host": None, "block_migration": "auto"}},
    {"os-resetState": {"state": "error"}},
    {"injectNetworkInfo": None},
    {"evacuate": {}},
    {"shelveOffload": None},
]


def _mutations(value: dict[str, Any]) -> list[bytes]:
    text = json.dumps(value)
    (key,) = value
    escaped = text.replace(f'"{key}"', f'"\\u{ord(key[0]):04x}{key[1:]}"', 1)
    return [
        text.encode(),
        escaped.encode(),
        b"  " + text.encode() + b"\n",
        text[:-1].encode() + b', "os-resetState": {"state": "error"}}',
        b'{"os-resetState": {"state": "error"}, ' + text[1:].encode(),
        text[:-1].encode() + b", " + text[1:-1].encode() + b"}",  # the same key twice
        b"\xef\xbb\xbf" + text.encode(),
        text.encode("utf-16"),
        text.encode()[: len(text) // 2],
        f"[{text}]".encode(),
    ]


BODIES = [body for value in ACTION_BODIES for body in _mutations(value)]

TARGETS = [
    *["/v2.1/servers/{s}/action"] * 8,
    "/v2.1/servers/{s}/action?x=1",
    "/v2.1//servers/{s}/action",
    "/v2.1/servers/{s}/%61ction",
    "/v2.1/servers/{s}/action/",
    "/v2.1/servers/{s}/Action",
    "/V2.1/servers/{s}/action",
    "/v2/servers/{s}/action",
    "/v2.1/servers/{s}/action.json",
    "/v2.1/servers/{s}/./action",
    "/v2.1/servers/x/../{s}/action",
    "/v2.1/servers/{s}%2Faction",
    "/v2.1/servers/{s};x/action",
    "/v2.1/0abc/servers/{s}/action",
    "/v2.1/servers/{s}/action%20",
    "/v2.1/servers/{s}/%C1%A1ction",
    "/v2.1/servers/servers/{s}/action",
    "/v2.1/servers/{s}",
    "/v2.1/servers/{s}/os-instance-actions",
    "http://127.0.0.1/v2.1/servers/{s}/action",
    "/v2.1/servers/{S}/action",
    "/v2.1/servers/detail/action",
]

EXTRA_HEADERS: list[tuple[str, str]] = [
    ("Content-Type", "application/json"),
    ("Content-Type", "text/plain"),
    ("Content-Type", "application/xml"),
    ("Content-Type", "application/json; charset=utf-16"),
    ("OpenStack-API-Version", "compute 2.43"),
    ("OpenStack-API-Version", "compute 2.44"),
    ("OpenStack-API-Version", "compute latest"),
    ("OpenStack-API-Version", "compute LATEST"),
    ("OpenStack-API-Version", "volume 3.5, compute 2.91"),
    ("X-OpenStack-Nova-API-Version", "2.43"),
    ("X-OpenStack-Nova-API-Version", "2.105"),
    ("OpenStack_API_Version", "compute 2.44"),
    ("X-Roles", "admin"),
    ("X_Roles", "admin"),
    ("X-Project-Id", "p1"),
    ("X-Tenant-Id", "p1"),
    ("OpenStack-System-Scope", "all"),
    ("X-Is-Admin-Project", "True"),
    ("X_Auth_Token", "admin:admin"),
    ("X-Auth-Token", "admin:admin"),
    ("Connection", "X-Auth-Token"),
    ("Connection", "OpenStack-API-Version, Content-Type, X-Forwarded-For"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("Content-Encoding", "gzip"),
    ("Content-Encoding", "identity"),
    ("Expect", "100-continue"),
    ("X-Forwarded-For", "10.0.0.1"),
    ("Transfer-Encoding", "chunked"),
]

TOKENS = ["alice:p1", "alice:p1", "bob:p1", "carol:p1:reader", "eve:p2", "garbage", ""]


@dataclass(frozen=True)
class Fuzzed:
    method: str
    template: str
    project: str  # whose server {s} names
    token: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


fuzzed_requests = st.builds(
    Fuzzed,
    method=st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "HEAD"]),
    template=st.sampled_from(TARGETS),
    project=st.sampled_from(["p1", "p2"]),
    token=st.sampled_from(TOKENS),
    headers=st.lists(st.sampled_from(EXTRA_HEADERS), max_size=5, unique=True).map(tuple),
    body=st.one_of(*[st.sampled_from(BODIES)] * 3, st.binary(max_size=40)),
)


def wire_bytes(request: Fuzzed, target: str) -> bytes:
    lines = [f"{request.method} {target} HTTP/1.1", f"Host: {LOOPBACK}"]
    if request.token:
        lines.append(f"X-Auth-Token: {request.token}")
    lines.extend(f"{name}: {value}" for name, value in request.headers)
    body = request.body
    if ("Transfer-Encoding", "chunked") in request.headers:
        body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


def final_status(port: int, data: bytes) -> int | None:
    """The first final status the gateway answers, on a fresh blocking connection."""
    received = b""
    with socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT) as sock:
        try:
            sock.sendall(data)
            deadline = time.monotonic() + SOCKET_TIMEOUT
            while time.monotonic() < deadline and len(received) < MAX_ANSWER:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except (TimeoutError, ConnectionError):
            pass
    for _ in range(4):  # skip interim 1xx answers (a head without a body)
        parts = received.partition(b"\r\n")[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        status = int(parts[1])
        if status >= 200:
            return status
        received = received.partition(b"\r\n\r\n")[2]
    return None


def novasim_runs_as_action(record: RecordedRequest) -> bool:
    """Whether novasim's router (decoding the path, as Nova's WSGI does) ran an action."""
    raw_path = record.path.split("?", 1)[0]
    decoded = yarl.URL.build(path=raw_path, encoded=True).path
    if not decoded.startswith("/v2.1/"):
        return False
    match = sim_routing.match(record.method, decoded[len("/v2.1") :])
    return match is not None and match.resource is sim_routing.Resource.SERVER_ACTION


def may_run(token: str, project: str, body: bytes) -> bool:
    """The oracle: one action key; an admin, or a member of the server's project running
    an action that needs no more than a member."""
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return False
    if not isinstance(value, dict) or len(value) != 1:
        return False
    (key,) = value
    if token == ADMIN_TOKEN:
        return True  # admin may run every action on every project's server
    return PROJECT_OF_TOKEN.get(token) == project and key not in ADMIN_ONLY


@settings(
    max_examples=EXAMPLES or 120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=fuzzed_requests)
def test_whole_request_path(threaded_lab: ThreadedLab, request: Fuzzed) -> None:
    lab = threaded_lab
    servers = {"p1": lab.make_server("p1"), "p2": lab.make_server("p2")}
    server = servers[request.project]
    target = request.template.format(s=server, S=server.upper())
    mark = len(lab.records())
    status = final_status(lab.port, wire_bytes(request, target))

    assert status is not None, "no answer"
    assert status < 500, status
    arrived = [r for r in lab.records()[mark:] if r.header("X-Auth-Token") != SERVICE_TOKEN]
    ran = [r for r in arrived if novasim_runs_as_action(r)]
    event(f"status {status}")  # --hypothesis-show-statistics shows what the run covered
    event("an action reached novasim" if ran else "no action reached novasim")
    tokens = [request.token] if request.token else []
    tokens += [value for name, value in request.headers if name == "X-Auth-Token"]
    for record in ran:
        assert request.method == "POST" and record.method == "POST"
        assert record.path == target.removesuffix("?")
        assert record.body == request.body
        assert len(tokens) == 1  # none or two tokens: never past the gate
        assert [v for k, v in record.headers if k.lower() == "x-auth-token"] == tokens
        assert may_run(tokens[0], request.project, request.body), (target, request.body)
        assert not [k for k, _ in record.headers if is_identity_header(k) or "_" in k]
        versions = [v for k, v in record.headers if k.lower() == "openstack-api-version"]
        assert len(versions) == 1 and "latest" not in versions[0].lower()
    # Nothing ran on a server but through an allowed action forwarded to it.
    for project, server_id in servers.items():
        if lab.actions_run(server_id):
            assert ran and server_id == server and project == request.project
