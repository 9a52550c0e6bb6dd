"""The ``Call``: one request being decided, built once and enriched by each stage.

Owns the shape of what the gateway knows about a request; it must never decide
anything itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import ActionSpec
from gateway.nova.faults import Fault
from gateway.nova.routing import Route
from gateway.nova.types import Version
from gateway.proxy.upstream import Exchange, ResponseRewrite
from gateway.servers.facts import Grade, ReadReason, ServerFacts


@dataclass
class Call:
    request_id: str
    method: str
    target: str
    headers: list[tuple[str, str]]  # the client's end-to-end headers
    peer: str
    scheme: str
    host: str
    body: bytes = b""
    global_request_id: str | None = None
    route: Route | None = None
    version: Version | None = None
    action: ActionSpec | None = None
    action_body: dict[str, Any] | None = None
    credentials: Credentials | None = None
    is_admin: bool = False
    server: ServerFacts | None = None
    locked_by: str | None = None
    # How current the server facts the call was decided on are; why Nova was read for it
    # (ReadReason values, in order); a read the next lookup must make, with its reason.
    facts_grade: Grade | None = None
    server_reads: list[str] = field(default_factory=list)
    read_server: ReadReason | None = None
    # A refusal decided on a copy was re-decided on a fresh read: "stood" | "overturned".
    refusal_confirmation: str | None = None
    # (rule, outcome) for every policy rule evaluated: allow | deny | would_deny
    verdicts: list[tuple[str, str]] = field(default_factory=list)
    # Headers a stage wants on the answer whatever it is (e.g. RateLimit-*).
    answer_headers: list[tuple[str, str]] = field(default_factory=list)
    # The rate-limit outcome (allowed | refused | exempt | storage_down_open |
    # storage_down_closed; None when no rule applied) and the rule it was about.
    rate_limit: str | None = None
    rate_limit_rule: str | None = None
    # A change the proxy applies to a small JSON answer (rate limits in GET /limits).
    response_rewrite: ResponseRewrite | None = None
    fault: Fault | None = None
    decision: str = "pending"  # allow | deny | error
    started: float = field(default_factory=time.monotonic)
    decided_seconds: float = 0.0
    exchange: Exchange = field(default_factory=Exchange)
    status: int | None = None
    _header_index: dict[str, list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def header(self, name: str) -> str | None:
        """The single value of a header, or None; several values count as one joined."""
        values = self._by_name().get(name.lower())
        return ",".join(values) if values else None

    def header_values(self, name: str) -> list[str]:
        return list(self._by_name().get(name.lower(), ()))

    def _by_name(self) -> dict[str, list[str]]:
        # Built on first use: stages ask for headers by name several times per call.
        # ``headers`` is not changed once the call is built (call_from).
        index = self._header_index
        if index is None:
            index = {}
            for key, value in self.headers:
                index.setdefault(key.lower(), []).append(value)
            self._header_index = index
        return index

    @property
    def action_key(self) -> str | None:
        return self.action.key if self.action is not None else None

    @property
    def action_value(self) -> Any:
        """The value under the action key (the body's only member)."""
        if self.action is None or self.action_body is None:
            return None
        return self.action_body.get(self.action.key)
