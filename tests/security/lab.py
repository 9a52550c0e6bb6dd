"""The security suite's lab: the in-process gateway in front of novasim, in each identity mode.

Owns the callers of every identity mode (noauth tokens, signed JWTs, a fake Keystone that
validates lab tokens) and the view of what reached the upstream; it must never change
gateway behaviour nor count the gateway's own server lookups as forwarded requests.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.identity.credentials import is_identity_header
from novasim.recorder import RecordedRequest
from tests.integration.conftest import SimUpstream
from tests.security.wire import DEFAULT_TIMEOUT, Exchange, Header, Reply, exchange, request_bytes

# The gateway's own identity for its server lookups, in every mode (noauth's default
# service token; the JWT service-token file and the fake Keystone hand out the same).
SERVICE_TOKEN = "nova-gateway:service:admin"
SERVICE_PASSWORD = "lab-secret"
JWT_ISSUER = "https://idp.security-lab"
JWT_AUDIENCE = "nova-gateway"
MODES = ("noauth", "jwt", "keystone")
IMPATIENT_BODY_TIMEOUT = 0.5  # [limits] request_body_timeout of the slow-loris lab


@dataclass(frozen=True)
class Caller:
    user: str
    project: str | None
    roles: tuple[str, ...]


# Who the suite's tokens stand for; each mode spells them its own way.
CALLERS: dict[str, Caller] = {
    "member": Caller("alice", "p1", ("member", "reader")),
    "reader": Caller("carol", "p1", ("reader",)),
    "other": Caller("eve", "p2", ("member", "reader")),
    "admin": Caller("admin", "admin", ("admin", "manager", "member", "reader")),
}
LAB_TOKENS = {
    "member": "alice:p1",
    "reader": "carol:p1:reader",
    "other": "eve:p2",
    "admin": "admin:admin",
}


@dataclass(frozen=True)
class Tokens:
    member: str
    reader: str
    other: str
    admin: str


class JwtIssuer:
    """An ES256 key pair on disk; signs tokens the gateway's jwt mode accepts."""

    def __init__(self, directory: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_file = directory / "signer.pem"
        self.public_file.write_bytes(
            self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.service_token_file = directory / "service-token"
        self.service_token_file.write_text(SERVICE_TOKEN, encoding="utf-8")

    def sign(self, caller: Caller) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": JWT_ISSUER,
            "aud": JWT_AUDIENCE,
            "sub": caller.user,
            "project_id": caller.project,
            "roles": list(caller.roles),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, self.key, algorithm="ES256")

    def tokens(self) -> Tokens:
        return Tokens(**{name: self.sign(caller) for name, caller in CALLERS.items()})

    def overrides(self) -> dict[str, Any]:
        return {
            "identity__mode": "jwt",
            "identity__jwt_key_files": [str(self.public_file)],
            "identity__jwt_algorithms": ["ES256"],
            "identity__jwt_issuer": JWT_ISSUER,
            "identity__jwt_audience": JWT_AUDIENCE,
            "identity__jwt_service_token_file": str(self.service_token_file),
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeKeystone:
    """Keystone v3's two token calls, validating the lab tokens (``alice:p1``, ...).

    Lab tokens are used so that novasim, behind the gateway, accepts the same tokens.
    """

    def __init__(self) -> None:
        self.validations = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/auth/tokens", self._issue)
        app.router.add_get("/v3/auth/tokens", self._validate)
        return app

    async def _issue(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["auth"]["identity"]["password"]["user"]["password"] != SERVICE_PASSWORD:
            return web.json_response({"error": {"code": 401}}, status=401)
        now = time.time()
        token = {"issued_at": _iso(now), "expires_at": _iso(now + 3600)}
        return web.json_response(
            {"token": token}, status=201, headers={"X-Subject-Token": SERVICE_TOKEN}
        )

    async def _validate(self, request: web.Request) -> web.Response:
        self.validations += 1
        if request.headers.get("X-Auth-Token") != SERVICE_TOKEN:
            return web.json_response({"error": {"code": 401}}, status=401)
        subject = request.headers.get("X-Subject-Token", "")
        name = next((name for name, token in LAB_TOKENS.items() if token == subject), None)
        if name is None:
            return web.json_response({"error": {"code": 404}}, status=404)
        caller = CALLERS[name]
        now = time.time()
        token: dict[str, Any] = {
            "user": {"id": caller.user, "name": caller.user, "domain": {"id": "default"}},
            "roles": [{"id": role, "name": role} for role in caller.roles],
            "project": {"id": caller.project, "name": caller.project, "domain": {"id": "default"}},
            "issued_at": _iso(now),
            "expires_at": _iso(now + 3600),
        }
        return web.json_response({"token": token})


def keystone_overrides(url: str) -> dict[str, Any]:
    return {
        "identity__mode": "keystone",
        "identity__keystone_url": url,
        "identity__service_password": SERVICE_PASSWORD,
    }


@dataclass
class Lab:
    """One gateway (one identity mode) in front of one novasim, both on loopback."""

    port: int
    upstream: SimUpstream
    tokens: Tokens
    mode: str

    def server(self, project: str = "p1", **fields: Any) -> str:
        return self.upstream.make_server(project_id=project, **fields)

    def mark(self) -> int:
        """A position in novasim's request record; pass it to ``forwarded``/``seen``."""
        return len(self.upstream.recorder)

    def seen(self, since: int = 0) -> list[RecordedRequest]:
        """Every request novasim received since ``since``, the gateway's lookups included."""
        records: list[RecordedRequest] = self.upstream.recorder.records()
        return records[since:]

    def forwarded(self, since: int = 0) -> list[RecordedRequest]:
        """Requests the gateway forwarded for clients since ``since`` (its lookups left out)."""
        return [record for record in self.seen(since) if not _own_request(record)]

    def actions_run(self, server_id: str) -> list[str]:
        """novasim's instance-action log of the server (what really ran), oldest first."""
        server = self.upstream.sim.store.servers.get(server_id)
        return [] if server is None else [entry.action for entry in server.actions]

    def vm_state(self, server_id: str) -> str | None:
        server = self.upstream.sim.store.servers.get(server_id)
        return None if server is None else str(server.vm_state)

    async def send(self, data: bytes, **options: Any) -> Exchange:
        return await exchange(self.port, data, **options)

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[Header] = (),
        body: bytes = b"",
        timeout: float = DEFAULT_TIMEOUT,
        **options: Any,
    ) -> Reply:
        """One request built by ``request_bytes`` and its one final answer."""
        sent = await exchange(
            self.port, request_bytes(method, target, headers, body, **options), timeout=timeout
        )
        return sent.reply


def _own_request(record: RecordedRequest) -> bool:
    """The gateway's server lookups and version-document reads, not a client's request."""
    if record.header("X-Auth-Token") == SERVICE_TOKEN:
        return True
    return bool(
        record.method == "GET" and record.path == "/v2.1/" and record.header("X-Auth-Token") is None
    )


def identity_headers_in(records: Sequence[RecordedRequest]) -> list[tuple[str, str, str]]:
    """(path, name, value) of every identity or underscore header that reached novasim."""
    return [
        (record.path, name, value)
        for record in records
        for name, value in record.headers
        if is_identity_header(name) or "_" in name
    ]


ACTION_PATH = "/v2.1/servers/{}/action"
