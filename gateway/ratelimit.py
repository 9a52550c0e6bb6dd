"""Per-project rate limits, counted in storage every worker and replica shares.

Owns the rules (which calls they count, at what cost, with which per-project overrides),
the check that admits or refuses a call (429 with Retry-After and RateLimit-* headers) and
the rate section of GET /limits; it must never block the event loop, nor let a storage
outage cost more than one short timeout per breaker interval.

Rules file (``[rate_limit] rules_file``, YAML or JSON)
------------------------------------------------------
::

    rules:
      - name: reboots                 # unique; named in the 429 message and the metrics
        limit: 10 per minute          # the `limits` notation: 10/minute, 100 per hour,
                                      # 5 per 10 seconds
        actions: [reboot]             # action keys (the body key of POST .../action;
                                      # "delete"/"update" for DELETE/PUT /servers/{id})
      - name: server-actions
        limit: 60 per minute
        methods: [POST]
        path: /servers/*/action       # after /v2.1 and an optional /{project_id};
                                      # * is one path segment, ** any number of them
      - name: writes
        limit: 120 per minute
        methods: [POST, PUT, DELETE]
        per: user                     # project (default): one counter per project;
                                      # user: one per user within the project
    costs:                            # weight of an action in every rule it counts for
      rebuild: 5
      createImage: 3
    overrides:                        # per project id: rule name -> limit or "unlimited"
      0c4e8b1e3f2a4d5c9b7a6e5d4c3b2a10:
        server-actions: 600 per minute
        reboots: unlimited

A rule counts a call when every selector it has (``methods``, ``path``, ``actions``)
matches; a rule with none counts every authenticated API call. A call counts against every
rule it matches and is refused when any of them has less left than the call's cost (its
action's cost, else 1); a refused call consumes nothing. Callers for whom the policy rule
``nova_gateway:rate_limit:exempt`` passes (default: ``rule:context_is_admin``) are not
counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import structlog
import yaml
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from oslo_config import cfg

from gateway import headers
from gateway.call import Call
from gateway.config import ConfigError
from gateway.faults import Fault
from gateway.identity import Credentials
from gateway.policy import Outcome, PolicyEngine
from gateway.policy_defaults import RATE_LIMIT_EXEMPT
from gateway.routing import API_PREFIX

log = structlog.get_logger(__name__)
T = TypeVar("T")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_RULE_KEYS = frozenset({"name", "limit", "methods", "path", "actions", "per"})
_FILE_KEYS = frozenset({"rules", "costs", "overrides"})
_UNLIMITED = "unlimited"
_LIMITS_PATH = "/limits"
# The verb GET /limits shows for a rule that names actions but no methods.
_VERB_OF_ACTION = {"delete": "DELETE", "update": "PUT"}
CHECK_TIMEOUTS = 3  # a whole check may take this many storage timeouts
_WARM_UP = parse("1/second")
STRATEGIES: Mapping[str, Callable[[Storage], Strategy]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


class RuleError(ValueError):
    """The rules file cannot be used; the message names the file and the entry."""


class Per(enum.Enum):
    PROJECT = "project"
    USER = "user"


@dataclass(frozen=True)
class Rule:
    name: str
    limit: RateLimitItem
    methods: frozenset[str] = frozenset()  # empty: any method
    path: str | None = None  # the pattern as written, shown in GET /limits
    actions: frozenset[str] = frozenset()  # empty: any call, action or not
    per: Per = Per.PROJECT
    path_regex: re.Pattern[str] | None = field(default=None, compare=False)

    def matches(self, method: str, path: str, action: str | None) -> bool:
        if self.methods and method not in self.methods:
            return False
        if self.actions and action not in self.actions:
            return False
        return self.path_regex is None or self.path_regex.fullmatch(path) is not None

    @property
    def verbs(self) -> list[str]:
        if self.methods:
            return sorted(self.methods)
        if self.actions:
            return sorted({_VERB_OF_ACTION.get(action, "POST") for action in self.actions})
        return ["*"]

    @property
    def uri(self) -> str:
        """The rule as Nova's legacy limits view showed a URI, e.g. ``/servers/*/action
        (reboot)``."""
        uri = self.path or "*"
        if self.actions:
            uri += " (" + ", ".join(sorted(self.actions)) + ")"
        return uri


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    costs: Mapping[str, int] = field(default_factory=dict)
    # project id -> rule name -> limit (None: unlimited for that project)
    overrides: Mapping[str, Mapping[str, RateLimitItem | None]] = field(default_factory=dict)

    def matching(self, method: str, path: str, action: str | None) -> list[Rule]:
        return [rule for rule in self.rules if rule.matches(method, path, action)]

    def limit_for(self, rule: Rule, project_id: str | None) -> RateLimitItem | None:
        """The rule's limit for this project: its override, else the rule's own."""
        if project_id is not None:
            by_rule = self.overrides.get(project_id)
            if by_rule is not None and rule.name in by_rule:
                return by_rule[rule.name]
        return rule.limit

    def cost(self, action: str | None) -> int:
        return self.costs.get(action, 1) if action is not None else 1


# --------------------------------------------------------------------------------------
# Reading rules


def path_pattern(pattern: str) -> re.Pattern[str]:
    """``/servers/*/action`` → a regex over the API path; ``*`` one segment, ``**`` any."""
    if not pattern.startswith("/"):
        raise ValueError("must start with '/'")
    escaped = re.escape(pattern.rstrip("/") or "/")
    regex = escaped.replace(r"\*\*", ".*").replace(r"\*", "[^/]+")
    return re.compile(regex)


def _limit(text: Any, where: str) -> RateLimitItem:
    if not isinstance(text, str):
        raise RuleError(f"{where}: limit must be a string such as '10 per minute'")
    try:
        item = parse(text)
    except ValueError:
        raise RuleError(
            f"{where}: {text!r} is not a limit (write e.g. '10 per minute', '5/second', "
            "'100 per 2 hours')"
        ) from None
    if item.amount < 1:
        raise RuleError(f"{where}: {text!r} admits nothing; remove the rule or write a limit")
    return item


def _names(value: Any, where: str, what: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"{where}: {what} must be a list of strings")
    return frozenset(value)


def _rule(entry: Any, index: int, source: str) -> Rule:
    where = f"{source}: rules[{index}]"
    if not isinstance(entry, dict):
        raise RuleError(f"{where}: each rule is a mapping with at least name and limit")
    unknown = set(entry) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise RuleError(f"{where}: 'name' is required")
    where = f"{source}: rule {name!r}"
    methods = _names(entry.get("methods", []), where, "methods")
    methods = frozenset(method.upper() for method in methods)
    if methods - _METHODS:
        raise RuleError(f"{where}: unknown method(s) {sorted(methods - _METHODS)}")
    path = entry.get("path")
    regex = None
    if path is not None:
        if not isinstance(path, str):
            raise RuleError(f"{where}: path must be a string such as /servers/*/action")
        try:
            regex = path_pattern(path)
        except ValueError as exc:
            raise RuleError(f"{where}: path {path!r} {exc}") from None
    per_text = entry.get("per", Per.PROJECT.value)
    try:
        per = Per(per_text)
    except ValueError:
        raise RuleError(f"{where}: per must be 'project' or 'user', not {per_text!r}") from None
    return Rule(
        name=name,
        limit=_limit(entry.get("limit"), where),
        methods=methods,
        path=path,
        actions=_names(entry.get("actions", []), where, "actions"),
        per=per,
        path_regex=regex,
    )


def parse_rules(data: Any, source: str = "rules") -> RuleSet:
    """The RuleSet a parsed rules document describes; RuleError names what is wrong."""
    if data is None:
        return RuleSet()
    if not isinstance(data, dict):
        raise RuleError(f"{source}: expected a mapping with 'rules', 'costs', 'overrides'")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise RuleError(
            f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}"
        )
    entries = data.get("rules") or []
    if not isinstance(entries, list):
        raise RuleError(f"{source}: 'rules' must be a list")
    rules = tuple(_rule(entry, index, source) for index, entry in enumerate(entries))
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise RuleError(f"{source}: rule names must be unique: {duplicates}")
    costs = data.get("costs") or {}
    if not isinstance(costs, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 1 for k, v in costs.items()
    ):
        raise RuleError(f"{source}: 'costs' maps action keys to whole numbers >= 1")
    overrides: dict[str, dict[str, RateLimitItem | None]] = {}
    raw_overrides = data.get("overrides") or {}
    if not isinstance(raw_overrides, dict):
        raise RuleError(f"{source}: 'overrides' maps project ids to {{rule name: limit}}")
    for project, by_rule in raw_overrides.items():
        where = f"{source}: overrides[{project!r}]"
        if not isinstance(by_rule, dict):
            raise RuleError(f"{where}: expected a mapping of rule name to limit")
        overrides[str(project)] = {}
        for name, text in by_rule.items():
            if name not in names:
                raise RuleError(f"{where}: no rule named {name!r}")
            overrides[str(project)][name] = (
                None if text == _UNLIMITED else _limit(text, f"{where}[{name!r}]")
            )
    ruleset = RuleSet(rules, dict(costs), overrides)
    _check_costs(ruleset, source)
    return ruleset


def _check_costs(ruleset: RuleSet, source: str) -> None:
    # A cost above a limit could never pass: refuse the file rather than the caller forever.
    for action, cost in ruleset.costs.items():
        for rule in ruleset.rules:
            if rule.actions and action not in rule.actions:
                continue
            overridden = (by_rule.get(rule.name) for by_rule in ruleset.overrides.values())
            smallest = min(limit.amount for limit in (rule.limit, *overridden) if limit is not None)
            if cost > smallest:
                raise RuleError(
                    f"{source}: cost {cost} of {action!r} exceeds rule {rule.name!r}'s limit "
                    f"of {smallest}: that action could never pass"
                )


def load_rules(path: str | None) -> RuleSet:
    """Read and check a rules file (blocking; at start-up and on SIGHUP only)."""
    if not path:
        return RuleSet()
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as exc:
        raise RuleError(f"{path}: not YAML or JSON: {exc}") from None
    return parse_rules(data, path)


# --------------------------------------------------------------------------------------
# The breaker


class CircuitBreaker:
    """After a failure, nobody waits for the storage for ``cooldown`` seconds; then one
    caller probes it while the others still get the failure choice at once."""

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._opened_at: float | None = None
        self._probing = False

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    def retry_after(self) -> int:
        if self._opened_at is None:
            return 1
        return max(1, math.ceil(self._opened_at + self._cooldown - self._clock()))

    def allow(self) -> bool:
        if self._opened_at is None:
            return True
        if self._probing or self._clock() < self._opened_at + self._cooldown:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self._opened_at = self._clock()
        self._probing = False

    def abandoned(self) -> None:
        """A caller let through (perhaps the probe) gave up before knowing."""
        self._probing = False


# --------------------------------------------------------------------------------------
# The check


@dataclass(frozen=True)
class Usage:
    """Where one rule stands for one caller."""

    rule: Rule
    limit: RateLimitItem
    remaining: int
    reset_at: float  # epoch seconds when the oldest counted request leaves the window

    def reset_in(self, now: float) -> int:
        return max(0, math.ceil(self.reset_at - now))


def api_path(path: str, project_id: str | None) -> str:
    """The path rules match: without /v2.1 and the caller's own /{project_id}."""
    rest = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
    if project_id and rest.startswith(f"/{project_id}/"):
        rest = rest[len(project_id) + 1 :]
    if len(rest) > 1 and rest.endswith("/"):
        rest = rest[:-1]
    return rest or "/"


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


class RateLimiter:
    """Counts calls against the rules in one storage (memory:// or a shared Redis)."""

    def __init__(
        self,
        rules: RuleSet,
        policy: PolicyEngine,
        *,
        storage_url: str = "memory://",
        strategy: str = "moving-window",
        key_prefix: str = "nova_gateway",
        timeout: float = 0.1,
        fail_closed: bool = False,
        breaker_cooldown: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._policy = policy
        self._timeout = timeout
        self._fail_closed = fail_closed
        self._clock = clock
        self.breaker = CircuitBreaker(breaker_cooldown)
        self.storage = _storage(storage_url, key_prefix, timeout)
        self.shared = not isinstance(self.storage, MemoryStorage)
        self._strategy: Strategy = STRATEGIES[strategy](self.storage)
        self._errors: tuple[type[BaseException], ...] = (
            StorageError,
            TimeoutError,
            OSError,
            *_as_tuple(self.storage.base_exceptions),
        )
        self.storage_errors = 0  # storage failures seen (sampled by metrics)

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, policy: PolicyEngine) -> RateLimiter:
        group = conf.rate_limit
        try:
            rules = load_rules(group.rules_file)
            return cls(
                rules,
                policy,
                storage_url=group.storage_url,
                strategy=group.strategy,
                key_prefix=group.key_prefix,
                timeout=group.storage_timeout,
                fail_closed=group.storage_failure == "closed",
                breaker_cooldown=group.breaker_cooldown,
            )
        except (RuleError, ConfigurationError) as exc:
            raise ConfigError(f"[rate_limit] {exc}") from exc

    def reload_rules(self, path: str | None) -> bool:
        """SIGHUP: read the rules again; a broken file keeps the running rules."""
        try:
            self.rules = load_rules(path)
        except RuleError as exc:
            log.error("rate_limit_rules_reload_failed", error=str(exc))
            return False
        return True

    async def start(self) -> None:
        """Connect (and load the storage's scripts) before the first request, so that a
        burst at start-up does not pay for it; a storage already down opens the breaker."""
        if not self.shared:
            return
        try:
            async with asyncio.timeout(max(1.0, CHECK_TIMEOUTS * self._timeout)):
                await self._strategy.get_window_stats(_WARM_UP, "warm-up")
        except self._errors as exc:
            self.breaker.failed()
            self.storage_errors += 1
            log.warning("rate_limit_storage_unreachable_at_start", error=repr(exc))

    async def close(self) -> None:
        # limits offers no close(); its redis-py client holds the connection pool.
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        closer = getattr(client, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        timer = getattr(self.storage, "timer", None)
        if isinstance(timer, asyncio.Task):
            timer.cancel()

    # -- the stage ---------------------------------------------------------------------

    async def check(self, call: Call) -> None:
        """Admit the call (adding RateLimit-* headers) or raise 429 / 503."""
        credentials = call.credentials
        if credentials is None or call.route is None:
            return
        rules = self.rules  # one generation for the whole check, whatever SIGHUP does
        path = api_path(call.route.path, credentials.project_id)
        shows_limits = call.method == "GET" and path == _LIMITS_PATH
        matched = rules.matching(call.method, path, call.action_key)
        if not matched and not (shows_limits and rules.rules):
            return
        if self._exempt(credentials):
            call.rate_limit = "exempt"
            return
        counted = [
            (rule, limit)
            for rule in matched
            if (limit := rules.limit_for(rule, credentials.project_id)) is not None
        ]
        if not counted and not shows_limits:
            return  # "unlimited" for this project: nothing to count, no storage needed
        if not self.breaker.allow():
            self._storage_down(call)
            return
        try:
            # Each storage operation has its own timeout (connect, read); the guard bounds
            # the whole check (at most connect + read + count) whatever the client does.
            async with asyncio.timeout(CHECK_TIMEOUTS * self._timeout):
                refusal = await self._count(call, credentials, counted, rules.cost(call.action_key))
                if refusal is None and shows_limits:
                    usages = await self._usages(credentials, rules)
                    call.response_rewrite = add_rate_section(limits_entries(usages, self._clock()))
        except self._errors as exc:
            self.breaker.failed()
            self.storage_errors += 1
            log.warning(
                "rate_limit_storage_failed",
                error=repr(exc),
                choice="closed" if self._fail_closed else "open",
            )
            self._storage_down(call)
            return
        except asyncio.CancelledError:
            self.breaker.abandoned()  # the client left; a probe must not stay out forever
            raise
        self.breaker.succeeded()
        if refusal is not None:
            raise refusal

    async def _count(
        self,
        call: Call,
        credentials: Credentials,
        counted: Sequence[tuple[Rule, RateLimitItem]],
        cost: int,
    ) -> Fault | None:
        if not counted:
            return None
        keys = [_identifiers(rule, credentials) for rule, _ in counted]
        # Read first, count second: a call refused by one rule takes nothing from the others.
        stats = await self._each(
            [
                partial(self._strategy.get_window_stats, limit, *key)
                for (_, limit), key in zip(counted, keys, strict=True)
            ]
        )
        usages = [
            Usage(rule, limit, stat.remaining, stat.reset_time)
            for (rule, limit), stat in zip(counted, stats, strict=True)
        ]
        short = [usage for usage in usages if usage.remaining < cost]
        if not short:
            admitted = await self._each(
                [
                    partial(self._strategy.hit, limit, *key, cost=cost)
                    for (_, limit), key in zip(counted, keys, strict=True)
                ]
            )
            # Another worker or replica took the last ones between our read and our hit.
            short = [usage for usage, ok in zip(usages, admitted, strict=True) if not ok]
        now = self._clock()
        if short:
            usage = max(short, key=lambda u: u.reset_at)
            call.rate_limit, call.rate_limit_rule = "refused", usage.rule.name
            call.answer_headers.extend(rate_headers(usage, 0, now))
            return _refusal(usage, cost, now)
        tightest = min(usages, key=lambda u: (u.remaining - cost, -u.reset_at))
        call.rate_limit, call.rate_limit_rule = "allowed", tightest.rule.name
        call.answer_headers.extend(rate_headers(tightest, tightest.remaining - cost, now))
        return None

    async def _usages(self, credentials: Credentials, rules: RuleSet) -> list[Usage]:
        """Every rule as it stands for this caller (what GET /limits shows)."""
        shown = [
            (rule, limit)
            for rule in rules.rules
            if (limit := rules.limit_for(rule, credentials.project_id)) is not None
        ]
        stats = await self._each(
            [
                partial(self._strategy.get_window_stats, limit, *_identifiers(rule, credentials))
                for rule, limit in shown
            ]
        )
        return [
            Usage(rule, limit, stat.remaining, stat.reset_time)
            for (rule, limit), stat in zip(shown, stats, strict=True)
        ]

    async def _each(self, operations: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Every operation's result: concurrently against a shared storage (one round
        trip for all), one after the other in memory (where tasks cost more than work)."""
        if self.shared and len(operations) > 1:
            return list(await asyncio.gather(*(operation() for operation in operations)))
        return [await operation() for operation in operations]

    def _exempt(self, credentials: Credentials) -> bool:
        target = {"project_id": credentials.project_id, "user_id": credentials.user_id}
        # Only a plain allow exempts: a dry-run "would deny" must not lift the limits.
        verdict = self._policy.decide(RATE_LIMIT_EXEMPT, target, credentials)
        return verdict.outcome is Outcome.ALLOWED

    def _storage_down(self, call: Call) -> None:
        if not self._fail_closed:
            call.rate_limit = "storage_down_open"
            return
        call.rate_limit = "storage_down_closed"
        raise Fault(
            503,
            "Rate limiting is temporarily unavailable, so the request was not accepted; "
            "retry later.",
            reason="rate_limit_unavailable",
            retry_after=self.breaker.retry_after(),
        )


def _refusal(usage: Usage, cost: int, now: float) -> Fault:
    retry_after = max(1, usage.reset_in(now))
    scope = "user" if usage.rule.per is Per.USER else "project"
    weight = f" (this request counts {cost})" if cost != 1 else ""
    return Fault(
        429,
        f"This request was rate-limited: rule '{usage.rule.name}' allows "
        f"{describe(usage.limit)} per {scope}{weight}. Retry after {retry_after} seconds.",
        reason="rate_limited",
        retry_after=retry_after,
    )


def _identifiers(rule: Rule, credentials: Credentials) -> tuple[str, ...]:
    # Quoted so that a '/' in an id cannot make two callers share one key.
    project = quote(credentials.project_id or "", safe="")
    user = quote(credentials.user_id, safe="")
    name = quote(rule.name, safe="")
    if rule.per is Per.USER or credentials.project_id is None:
        return (name, project, user)
    return (name, project)


def _as_tuple(
    value: type[BaseException] | tuple[type[BaseException], ...],
) -> tuple[type[BaseException], ...]:
    return value if isinstance(value, tuple) else (value,)


def _storage(url: str, key_prefix: str, timeout: float) -> Storage:
    """The async storage the URL names; Redis with short timeouts and no retries."""
    if url in ("memory://", "async+memory://"):
        storage = storage_from_string("async+memory://")
    elif url.startswith(("async+redis", "async+rediss", "async+valkey")):
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "implementation": "redispy",
            "key_prefix": key_prefix,
            "wrap_exceptions": True,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # redis-py retries 10 times with backoff by default: one outage would cost
            # every request seconds. The breaker decides when to try again instead.
            "retry": Retry(NoBackoff(), 0),
        }
        storage = storage_from_string(url, **options)
    else:
        raise ConfigurationError(
            f"storage_url {url!r}: use memory:// or async+redis://HOST:PORT/DB"
        )
    if not isinstance(storage, Storage):
        raise ConfigurationError(f"storage_url {url!r} is not an asynchronous storage")
    return storage
