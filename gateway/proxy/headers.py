"""Header names and header hygiene: hop-by-hop removal, forwarding headers, request ids.

Owns every header name the gateway reads or writes; it must never look at bodies or
decide whether a request is allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence

from gateway.nova.microversion import LEGACY_HEADER, STANDARD_HEADER

REQUEST_ID = "X-OpenStack-Request-ID"
COMPUTE_REQUEST_ID = "X-Compute-Request-ID"
RESPONSE_REQUEST_IDS = ("x-openstack-request-id", "x-compute-request-id")
# The IETF httpapi draft's rate-limit headers (as Kong and envoy's ratelimit send them).
RATELIMIT_LIMIT = "RateLimit-Limit"
RATELIMIT_REMAINING = "RateLimit-Remaining"
RATELIMIT_RESET = "RateLimit-Reset"
RATELIMIT_POLICY = "RateLimit-Policy"
_GLOBAL_ID_RE = re.compile(r"^req-[a-f0-9]{8}(-[a-f0-9]{4}){3}-[a-f0-9]{12}$")

# RFC 9110 §7.6.1 and the legacy ones every proxy drops.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Headers the gateway itself sets or relies on: a client's Connection header may never
# make us drop them (the hop-by-hop abuse of Apache CVE-2022-31813, Traefik 2024-45410).
PROTECTED = frozenset(
    {
        "x-auth-token",
        "x-service-token",
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        STANDARD_HEADER.lower(),
        LEGACY_HEADER.lower(),
        REQUEST_ID.lower(),
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
    }
)

# Forwarding headers Nova's http_proxy_to_wsgi believes: only from trusted proxies.
FORWARDING = frozenset(
    {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix"}
)

# Set by the gateway on the way up; a client's copy never passes.
SET_UPSTREAM = frozenset(
    {
        "host",
        "content-length",
        STANDARD_HEADER.lower(),
        LEGACY_HEADER.lower(),
        REQUEST_ID.lower(),
        "expect",
    }
)


def new_request_id() -> str:
    """``req-`` and a random (version 4) UUID, as Nova's request ids; formatted from the
    random bytes directly (uuid.uuid4() builds and checks a UUID object per request)."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"req-{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def global_request_id(headers: Iterable[tuple[str, str]]) -> str | None:
    """A client's ``X-OpenStack-Request-ID`` when it is well-formed, as Nova accepts it."""
    values = [value for key, value in headers if key.lower() == REQUEST_ID.lower()]
    if len(values) == 1 and _GLOBAL_ID_RE.match(values[0]):
        return values[0]
    return None


def _tokens(values: Iterable[str]) -> frozenset[str]:
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )


def end_to_end(
    headers: Iterable[tuple[str, str]], also_drop: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    """Drop hop-by-hop headers and those a Connection header names (never protected ones),
    and any named in ``also_drop`` (lower-case); each name is lower-cased once."""
    named = [(key.lower(), key, value) for key, value in headers]
    connection = [value for lower, _, value in named if lower == "connection"]
    drop = HOP_BY_HOP | also_drop
    if connection:
        drop = drop | (_tokens(connection) - PROTECTED)
    return [(key, value) for lower, key, value in named if lower not in drop]


_PEERS_REMEMBERED = 4096


class ForwardingPolicy:
    """Builds X-Forwarded-* for the upstream, believing only trusted front proxies."""

    def __init__(self, trusted: Sequence[str]) -> None:
        self._trusted = [ipaddress.ip_network(entry, strict=False) for entry in trusted]
        # Peers come back on every request of their connections: each address is parsed
        # once (per policy: a SIGHUP builds a new one). Bounded: forgotten when full.
        self._verdicts: dict[str, bool] = {}

    def is_trusted(self, peer: str) -> bool:
        verdict = self._verdicts.get(peer)
        if verdict is None:
            if len(self._verdicts) >= _PEERS_REMEMBERED:
                self._verdicts.clear()
            verdict = self._verdicts[peer] = self._judge(peer)
        return verdict

    def _judge(self, peer: str) -> bool:
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    def upstream_headers(
        self,
        headers: Sequence[tuple[str, str]],
        peer: str,
        scheme: str,
        host: str,
    ) -> list[tuple[str, str]]:
        """The client's end-to-end headers with forwarding headers made trustworthy."""
        trusted = self.is_trusted(peer)
        kept: list[tuple[str, str]] = []
        prior_for: list[str] = []
        prior: dict[str, str] = {}
        for key, value in headers:
            lower = key.lower()
            if lower in SET_UPSTREAM:
                continue
            if lower in FORWARDING:
                if trusted:
                    if lower == "x-forwarded-for":
                        prior_for.append(value.strip())
                    else:
                        prior.setdefault(lower, value)
                continue
            kept.append((key, value))
        chain = ", ".join([*prior_for, peer]) if peer else ", ".join(prior_for)
        if chain:
            kept.append(("X-Forwarded-For", chain))
        kept.append(("X-Forwarded-Proto", prior.get("x-forwarded-proto", scheme)))
        kept.append(("X-Forwarded-Host", prior.get("x-forwarded-host", host)))
        if "forwarded" in prior:
            kept.append(("Forwarded", prior["forwarded"]))
        if "x-forwarded-prefix" in prior:
            kept.append(("X-Forwarded-Prefix", prior["x-forwarded-prefix"]))
        return kept


# Response headers the proxy must not copy from the upstream as they are.
RESPONSE_SKIP = HOP_BY_HOP | {"content-length", "server", "date"}
