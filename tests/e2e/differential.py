"""The differential harness: one raw request to the real Nova directly and through the gateway.

Owns sending the same bytes both ways and comparing what a client can tell apart (status,
body shape, fault key, message, body, headers), with every allowed difference named and
reasoned here or by the test; it must never let through a difference nobody named, nor
keep a named difference that no longer occurs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.security.wire import Reply, exchange

# Headers that differ between any two answers, whoever makes them, and why.
ALWAYS_DIFFER: Mapping[str, str] = {
    "date": "the moment of the answer",
    "x-openstack-request-id": "each stack mints its own id (req-<uuid4>, checked below)",
    "x-compute-request-id": "the same id under Nova's older name (checked equal to the above)",
    "connection": "the hop's framing: waitress and aiohttp close or keep connections their way",
    "keep-alive": "the hop's framing",
    "transfer-encoding": "the hop's framing (a streamed answer may be chunked)",
    "content-length": "follows the body, which is compared itself (HEAD: compared)",
}
ANSWER_TIMEOUT = 30.0  # realnova under a loaded machine: seconds, not milliseconds
REQUEST_ID = re.compile(
    r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


@dataclass(frozen=True)
class Seen:
    """One answer as a client tells it apart (header names lower-cased, repeats kept)."""

    status: int
    shape: str  # fault | webob | keystone | json | text | empty
    key: str | None  # the fault's name, "error" for keystonemiddleware's, else None
    message: str | None
    body: bytes
    headers: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, reply: Reply, head: bool = False) -> Seen:
        headers: dict[str, tuple[str, ...]] = {}
        for name, value in reply.headers:
            headers[name.lower()] = (*headers.get(name.lower(), ()), value)
        shape, key, message = _shape(reply)
        if head and "content-length" in headers:
            # No body to compare: the length the body would have had is what a client sees.
            shape = f"{shape} length={headers['content-length'][0]}"
        return cls(reply.status, shape, key, message, reply.body, headers)


def _shape(reply: Reply) -> tuple[str, str | None, str | None]:
    if not reply.body:
        return "empty", None, None
    if reply.webob_page:
        try:
            return "webob", None, str(reply.json()["message"])
        except ValueError:
            return "webob", None, None  # text or HTML: the body itself is compared
    try:
        body: Any = json.loads(reply.body)
    except ValueError:
        return "text", None, None
    if isinstance(body, dict) and len(body) == 1:
        name, detail = next(iter(body.items()))
        if isinstance(detail, dict) and "message" in detail:
            shape = "keystone" if name == "error" else "fault"
            return shape, str(name), str(detail["message"])
    return "json", None, None


@dataclass
class Difference:
    """Both answers to one request, and every way they differ that nobody allowed."""

    label: str
    nova: Seen
    gateway: Seen
    unexplained: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"[{self.label}]", *(f"    {line}" for line in self.unexplained)]
        lines.append(f"    Nova:    {self.nova.status} {self.nova.shape} {self.nova.body[:160]!r}")
        lines.append(
            f"    gateway: {self.gateway.status} {self.gateway.shape} {self.gateway.body[:160]!r}"
        )
        return "\n".join(lines)


def compare(
    label: str, nova: Seen, gateway: Seen, expected: Mapping[str, str] | None = None
) -> Difference:
    """Every aspect (``status``, ``shape``, ``key``, ``message``, ``body`` and
    ``header:<name>``) that differs and is not in ``ALWAYS_DIFFER`` nor ``expected``
    (aspect -> why); and every ``expected`` aspect that does not differ after all."""
    expected = dict(expected or {})
    found: list[str] = []
    for aspect in ("status", "shape", "key", "message", "body"):
        if getattr(nova, aspect) != getattr(gateway, aspect):
            found.append(aspect)
    for name in sorted(set(nova.headers) | set(gateway.headers)):
        if name in ALWAYS_DIFFER:
            continue
        if nova.headers.get(name) != gateway.headers.get(name):
            found.append(f"header:{name}")
    difference = Difference(label, nova, gateway)
    for aspect in found:
        if aspect not in expected:
            difference.unexplained.append(
                f"{aspect} differs: Nova {_aspect(nova, aspect)!r}, "
                f"gateway {_aspect(gateway, aspect)!r}"
            )
    for aspect, why in expected.items():
        if aspect not in found:
            difference.unexplained.append(f"{aspect} was expected to differ ({why}) but does not")
    # Every answer through the gateway carries one id under both names (Nova's own when
    # it answered, the gateway's otherwise); Nova's version list carries none at all.
    ids = gateway.headers.get("x-openstack-request-id", ())
    if len(ids) != 1 or not REQUEST_ID.match(ids[0]):
        difference.unexplained.append("the gateway's answer lacks one well-formed request id")
    elif gateway.headers.get("x-compute-request-id") != ids:
        difference.unexplained.append("the gateway's two request-id headers differ")
    if any(not REQUEST_ID.match(id_) for id_ in nova.headers.get("x-openstack-request-id", ())):
        difference.unexplained.append("Nova's request id is not req-<uuid4>")
    return difference


def _aspect(seen: Seen, aspect: str) -> Any:
    if aspect.startswith("header:"):
        return seen.headers.get(aspect.removeprefix("header:"))
    value = getattr(seen, aspect)
    return value[:200] if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Pair:
    """The real Nova's port and the port of a gateway in front of that same Nova."""

    nova_port: int
    gateway_port: int

    async def send(self, data: bytes, *, head: bool = False) -> tuple[Seen, Seen]:
        """The same bytes to each (Nova first), each on a connection of its own."""
        seen = []
        for port in (self.nova_port, self.gateway_port):
            sent = await exchange(port, data, head=head, timeout=ANSWER_TIMEOUT)
            assert sent.replies and not sent.timed_out, f"no answer from port {port}"
            seen.append(Seen.of(sent.replies[-1], head))  # the final one, after any 100
        return seen[0], seen[1]
