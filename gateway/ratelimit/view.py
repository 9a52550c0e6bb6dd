"""What a caller is shown of the rate limits: RateLimit-* headers and GET /limits' rate.

Owns Usage and its rendering (headers, Nova's legacy ``limits.rate`` entries, the 429's
wording of a limit); it must never count, read the storage, nor touch ``limits.absolute``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from limits import RateLimitItem

from gateway.proxy import headers
from gateway.ratelimit.rules import Rule


class Usage(NamedTuple):
    """Where one rule stands for one caller (a tuple: one per rule on every check)."""

    rule: Rule
    limit: RateLimitItem
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window

    def reset_in(self, now: float) -> int:
        return max(0, math.ceil(self.reset_at - now))


def _period(limit: RateLimitItem) -> str:
    name = limit.GRANULARITY.name
    return name if limit.multiples == 1 else f"{limit.multiples} {name}s"


def describe(limit: RateLimitItem) -> str:
    return f"{limit.amount} per {_period(limit)}"


def rate_headers(usage: Usage, remaining: int, now: float) -> list[tuple[str, str]]:
    return [
        (headers.RATELIMIT_LIMIT, str(usage.limit.amount)),
        (headers.RATELIMIT_REMAINING, str(max(0, remaining))),
        (headers.RATELIMIT_RESET, str(usage.reset_in(now))),
        (headers.RATELIMIT_POLICY, f"{usage.limit.amount};w={usage.limit.get_expiry()}"),
    ]


def limits_entries(usages: Sequence[Usage], now: float) -> list[dict[str, Any]]:
    """Nova's legacy ``limits.rate`` view: one entry per URI/regex, a limit per verb."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for usage in usages:
        rule = usage.rule
        regex = rule.path_regex.pattern if rule.path_regex is not None else ".*"
        unit = usage.limit.GRANULARITY.name.upper()
        if usage.limit.multiples != 1:
            unit = f"{usage.limit.multiples} {unit}S"
        available = now if usage.remaining > 0 else usage.reset_at
        for verb in rule.verbs:
            grouped.setdefault((rule.uri, regex), []).append(
                {
                    "verb": verb,
                    "value": usage.limit.amount,
                    "unit": unit,
                    "remaining": max(0, usage.remaining),
                    "next-available": datetime.fromtimestamp(available, UTC).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                }
            )
    return [
        {"uri": uri, "regex": regex, "limit": entries} for (uri, regex), entries in grouped.items()
    ]


def add_rate_section(entries: list[dict[str, Any]]) -> Callable[[bytes], bytes | None]:
    """A response rewrite putting ``entries`` in Nova's ``limits.rate``; absolute untouched."""

    def rewrite(body: bytes) -> bytes | None:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        section = document.get("limits") if isinstance(document, dict) else None
        if not isinstance(section, dict):
            return None
        rate = section.get("rate")
        section["rate"] = (rate if isinstance(rate, list) else []) + entries
        return json.dumps(document).encode()

    return rewrite
