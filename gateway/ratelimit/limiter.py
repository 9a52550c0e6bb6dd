"""Per-project rate limits, counted in storage every worker and replica shares.

Owns the check that admits or refuses a call (429 with Retry-After, or 503 when the storage
is down and fails closed) and the circuit breaker; it must never block the event loop, nor
let a storage outage cost more than one short timeout per breaker interval.

The rules and their file format live in ratelimit_rules, what a caller is shown (headers,
GET /limits) in ratelimit_view; the names other modules use are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
)
from limits.aio.strategies import RateLimiter as Strategy
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string
from oslo_config import cfg

from gateway.call import Call
from gateway.config import ConfigError
from gateway.identity.credentials import Credentials
from gateway.nova.faults import Fault
from gateway.nova.routing import API_PREFIX
from gateway.policy.engine import Outcome, PolicyEngine
from gateway.policy.gateway_rules import RATE_LIMIT_EXEMPT
from gateway.ratelimit.pipe import Address, PipedScript, RedisPipe
from gateway.ratelimit.rules import (
    Per,
    Rule,
    RuleError,
    RuleSet,
    load_rules,
    parse_rules,
    path_pattern,
)
from gateway.ratelimit.view import (
    Usage,
    add_rate_section,
    describe,
    limits_entries,
    rate_headers,
)
from gateway.ratelimit.windows import (
    CHECK_SCRIPT,
    MemoryWindows,
    RedisWindows,
    WindowStore,
    redis_py_runner,
)
from gateway.tls.contexts import (
    ClientFiles,
    RenewedClientContext,
    redis_tls_options,
    verification_failure,
)

__all__ = [
    "CircuitBreaker",
    "RateLimiter",
    "Rule",
    "RuleError",
    "RuleSet",
    "add_rate_section",
    "api_path",
    "load_rules",
    "parse_rules",
    "path_pattern",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")

_LIMITS_PATH = "/limits"
CHECK_TIMEOUTS = 3  # a whole check may take this many storage timeouts
_WARM_UP = parse("1/second")
# The default, counted by the gateway itself (gateway.ratelimit.windows): O(1) per rule,
# one Redis round trip per check.
SLIDING_WINDOW_COUNTER = "sliding-window-counter"
# `limits`' own strategies, kept for operators who chose them: moving-window's cost grows
# with the limit (it keeps every hit), and each takes a round trip per rule and step.
STRATEGIES: Mapping[str, Callable[[Storage], Strategy]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}


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


def api_path(path: str, project_id: str | None) -> str:
    """The path rules match: without /v2.1 and the caller's own /{project_id}."""
    rest = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
    if project_id and rest.startswith(f"/{project_id}/"):
        rest = rest[len(project_id) + 1 :]
    if len(rest) > 1 and rest.endswith("/"):
        rest = rest[:-1]
    return rest or "/"


class RateLimiter:
    """Counts calls against the rules in one storage (memory:// or a shared Redis)."""

    def __init__(
        self,
        rules: RuleSet,
        policy: PolicyEngine,
        *,
        storage_url: str = "memory://",
        strategy: str = SLIDING_WINDOW_COUNTER,
        key_prefix: str = "nova_gateway",
        timeout: float = 0.1,
        fail_closed: bool = False,
        breaker_cooldown: float = 5.0,
        tls: ClientFiles | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self._policy = policy
        self._timeout = timeout
        self._fail_closed = fail_closed
        self._clock = clock
        self.breaker = CircuitBreaker(breaker_cooldown)
        tls = tls or ClientFiles()
        self.storage = _storage(storage_url, key_prefix, timeout, tls)
        self.shared = not isinstance(self.storage, MemoryStorage)
        self._key_prefix = key_prefix
        self._windows: WindowStore | None = None
        self._strategy: Strategy | None = None
        self.pipe: RedisPipe | None = None
        if strategy != SLIDING_WINDOW_COUNTER:
            self._strategy = STRATEGIES[strategy](self.storage)
        elif isinstance(self.storage, RedisStorage) and isinstance(
            self.storage.bridge, RedispyBridge
        ):
            client: Any = self.storage.bridge.get_connection()
            scheme = storage_url.partition("://")[0]
            if scheme in SINGLE_REDIS_SCHEMES:
                # One Redis: counted over the gateway's pipelined connection, at the
                # address (and with the login) redis-py read from the URL.
                context = (
                    RenewedClientContext(tls, "[rate_limit] " + _TLS_FILE_OPTIONS)
                    if scheme in TLS_SCHEMES
                    else None
                )
                address = Address.of_pool(client.connection_pool.connection_kwargs, context)
                self.pipe = RedisPipe(address, timeout)
                self._windows = RedisWindows(PipedScript(self.pipe, CHECK_SCRIPT))
            else:
                # Sentinel's primary, a cluster's nodes: the client limits built.
                self._windows = RedisWindows(redis_py_runner(client))
        elif not self.shared:
            self._windows = MemoryWindows()
        else:
            raise ConfigurationError(f"strategy {strategy!r} needs memory:// or Redis")
        self._errors: tuple[type[BaseException], ...] = (
            StorageError,
            TimeoutError,
            OSError,
            *_as_tuple(self.storage.base_exceptions),
            *_cluster_errors(self.storage),
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
                tls=ClientFiles(
                    group.storage_ca_file, group.storage_cert_file, group.storage_key_file
                ),
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
                if self._windows is not None:
                    key = self._key(("warm-up", ""))
                    await self._windows.check([key], [_WARM_UP], 0, self._clock())
                elif self._strategy is not None:
                    await self._strategy.get_window_stats(_WARM_UP, "warm-up")
        except self._errors as exc:
            self.breaker.failed()
            self.storage_errors += 1
            if self.pipe is not None:
                self.pipe.abort()
            log.warning("rate_limit_storage_unreachable_at_start", **_failure(exc))

    async def close(self) -> None:
        if self.pipe is not None:
            await self.pipe.close()
        # limits offers no close(); its redis-py clients hold the connection pools (with
        # Sentinel: the primary's, the replicas' and one per sentinel).
        bridge = getattr(self.storage, "bridge", None)
        for name in ("storage", "storage_replica", "sentinel"):
            closer = getattr(getattr(bridge, name, None), "aclose", None)
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
        if await self._exempt(credentials):
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
            # In memory nothing waits: no guard (a timer per call is most of its cost).
            async with (
                asyncio.timeout(CHECK_TIMEOUTS * self._timeout)
                if self.shared
                else contextlib.nullcontext()
            ):
                refusal = await self._count(call, credentials, counted, rules.cost(call.action_key))
                if refusal is None and shows_limits:
                    usages = await self._usages(credentials, rules)
                    call.response_rewrite = add_rate_section(limits_entries(usages, self._clock()))
        except self._errors as exc:
            self.breaker.failed()
            self.storage_errors += 1
            if self.pipe is not None:
                # Whatever failed (a Redis that hangs, a reply in error), the breaker's
                # next probe starts on a new connection, not behind stuck commands.
                self.pipe.abort()
            log.warning(
                "rate_limit_storage_failed",
                **_failure(exc),
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
        if self._windows is not None:
            usages, short = await self._count_windows(self._windows, credentials, counted, cost)
        else:
            usages, short = await self._count_limits(credentials, counted, cost)
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

    async def _count_windows(
        self,
        windows: WindowStore,
        credentials: Credentials,
        counted: Sequence[tuple[Rule, RateLimitItem]],
        cost: int,
    ) -> tuple[list[Usage], list[Usage]]:
        """Every rule checked and counted at once: all of them, or none."""
        keys = [self._key(_identifiers(rule, credentials)) for rule, _ in counted]
        admitted, states = await windows.check(
            keys, [limit for _, limit in counted], cost, self._clock()
        )
        usages = [
            Usage(rule, state.limit, state.remaining, state.reset_at)
            for (rule, _), state in zip(counted, states, strict=True)
        ]
        return usages, [] if admitted else [u for u in usages if u.remaining < cost]

    async def _count_limits(
        self,
        credentials: Credentials,
        counted: Sequence[tuple[Rule, RateLimitItem]],
        cost: int,
    ) -> tuple[list[Usage], list[Usage]]:
        """With one of limits' strategies: read every rule, then count every rule."""
        assert self._strategy is not None
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
        return usages, short

    async def _usages(self, credentials: Credentials, rules: RuleSet) -> list[Usage]:
        """Every rule as it stands for this caller (what GET /limits shows)."""
        shown = [
            (rule, limit)
            for rule in rules.rules
            if (limit := rules.limit_for(rule, credentials.project_id)) is not None
        ]
        if self._windows is not None:
            keys = [self._key(_identifiers(rule, credentials)) for rule, _ in shown]
            _, states = await self._windows.check(
                keys, [limit for _, limit in shown], 0, self._clock()
            )
            return [
                Usage(rule, state.limit, state.remaining, state.reset_at)
                for (rule, _), state in zip(shown, states, strict=True)
            ]
        assert self._strategy is not None
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

    def _key(self, identifiers: tuple[str, ...]) -> str:
        # The project in braces: a Redis Cluster puts one caller's counters in one slot,
        # so that one script may count them all (the braces are never empty).
        return f"{self._key_prefix}:swc:{{p{identifiers[1]}}}:" + ":".join(identifiers)

    async def _each(self, operations: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Every operation's result: concurrently against a shared storage (one round
        trip for all), one after the other in memory (where tasks cost more than work)."""
        if self.shared and len(operations) > 1:
            return list(await asyncio.gather(*(operation() for operation in operations)))
        return [await operation() for operation in operations]

    async def _exempt(self, credentials: Credentials) -> bool:
        target = {"project_id": credentials.project_id, "user_id": credentials.user_id}
        # Only a plain allow exempts: a dry-run "would deny" must not lift the limits.
        verdict = await self._policy.decide_async(RATE_LIMIT_EXEMPT, target, credentials)
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
    per_user = rule.per is Per.USER or credentials.project_id is None
    return _quoted(rule.name, credentials.project_id or "", credentials.user_id, per_user)


@functools.lru_cache(maxsize=16384)  # callers come back: quoting is most of a key's cost
def _quoted(rule: str, project: str, user: str, per_user: bool) -> tuple[str, ...]:
    # Quoted so that a '/' in an id cannot make two callers share one key.
    name, project = quote(rule, safe=""), quote(project, safe="")
    return (name, project, quote(user, safe="")) if per_user else (name, project)


def _failure(exc: BaseException) -> dict[str, str]:
    """What a storage failure is, for the log; with OpenSSL's reason for a failed
    handshake, which limits' wrapper and redis-py's error text do not show."""
    fields = {"error": repr(exc)}
    tls = verification_failure(exc.storage_error if isinstance(exc, StorageError) else exc)
    if tls is not None:
        fields["tls"] = tls
    return fields


def _cluster_errors(storage: Storage) -> tuple[type[BaseException], ...]:
    """redis-py's cluster errors outside RedisError (no reachable node, a slot without a
    node), which limits does not wrap: without them an outage would be a 500."""
    if not storage.__class__.__name__.endswith("ClusterStorage"):
        return ()
    from redis.exceptions import RedisClusterException

    return (RedisClusterException,)


def _as_tuple(
    value: type[BaseException] | tuple[type[BaseException], ...],
) -> tuple[type[BaseException], ...]:
    return value if isinstance(value, tuple) else (value,)


# The storage URLs the gateway accepts, by the kind of Redis deployment they name.
MEMORY_URLS = ("memory://", "async+memory://")
REDIS_URL_SCHEMES = {
    "async+redis": "one Redis (async+redis://[:PASSWORD@]HOST:PORT/DB)",
    "async+rediss": "one Redis over TLS",
    "async+redis+sentinel": "Redis with Sentinel "
    "(async+redis+sentinel://[:PASSWORD@]HOST:PORT,HOST:PORT,.../SERVICE)",
    "async+rediss+sentinel": "Redis with Sentinel, sentinels and Redis over TLS",
    "async+redis+cluster": "Redis Cluster (async+redis+cluster://[:PASSWORD@]HOST:PORT,HOST:PORT,...)",
    "async+rediss+cluster": "Redis Cluster over TLS",
}
# One Redis, neither Sentinel nor a cluster: counted over the gateway's own pipe.
SINGLE_REDIS_SCHEMES = ("async+redis", "async+rediss")
# TLS spellings `limits` has no scheme for: its plain scheme with redis-py's ssl=True.
TLS_SCHEMES = {
    "async+rediss": "async+rediss",
    "async+rediss+sentinel": "async+redis+sentinel",
    "async+rediss+cluster": "async+redis+cluster",
}
_TLS_FILE_OPTIONS = "storage_ca_file, storage_cert_file, storage_key_file"


def _storage(url: str, key_prefix: str, timeout: float, tls: ClientFiles) -> Storage:
    """The async storage the URL names; Redis with short timeouts and no retries."""
    scheme = url.partition("://")[0]
    if (tls.ca_file or tls.cert_file or tls.key_file) and scheme not in TLS_SCHEMES:
        # A CA file beside a plain URL: the operator believes the counters travel
        # encrypted. They would not; refuse rather than guess.
        raise ConfigurationError(
            f"{_TLS_FILE_OPTIONS}: set, but storage_url {_without_password(url)!r} is not "
            f"TLS: use {', '.join(f'{tls_scheme}://' for tls_scheme in TLS_SCHEMES)}"
        )
    if url in MEMORY_URLS:
        storage = storage_from_string("async+memory://")
    elif scheme in REDIS_URL_SCHEMES:
        if scheme.endswith("+sentinel") and not urlsplit(url).path.strip("/"):
            plain = scheme.replace("rediss", "redis")
            raise ConfigurationError(
                f"storage_url {_without_password(url)!r} names no Sentinel service: "
                f"write {REDIS_URL_SCHEMES[plain].partition('(')[2].rstrip(')')}"
            )
        options = _redis_options(scheme, key_prefix, timeout)
        if scheme in TLS_SCHEMES:
            _add_tls(options, scheme, tls)
            url = TLS_SCHEMES[scheme] + url[len(scheme) :]
        storage = storage_from_string(url, **options)
    else:
        raise ConfigurationError(
            f"storage_url {_without_password(url)!r}: use memory://, or "
            + "; ".join(f"{scheme}:// for {what}" for scheme, what in REDIS_URL_SCHEMES.items())
        )
    if not isinstance(storage, Storage):
        raise ConfigurationError(f"storage_url {url!r} is not an asynchronous storage")
    return storage


def _redis_options(scheme: str, key_prefix: str, timeout: float) -> dict[str, Any]:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    def no_retries() -> Retry:
        # redis-py retries 10 times with backoff by default: one outage would cost every
        # request seconds. The breaker decides when to try again instead.
        return Retry(NoBackoff(), 0)

    timeouts = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    options: dict[str, Any] = {
        "implementation": "redispy",
        "key_prefix": key_prefix,
        "wrap_exceptions": True,
        "retry": no_retries(),
        **timeouts,
    }
    if scheme.endswith("+sentinel"):
        # Read the counters where they are written: a replica lags, and a read decides
        # refusals. Asking the sentinels for the primary must be as short as a command
        # (limits hands redis-py sentinel options of its own, so the timeouts are not
        # inherited) and not retried: discovery already moves on to the next sentinel.
        options["use_replicas"] = False
        options["sentinel_kwargs"] = {**timeouts, "retry": no_retries()}
    return options


def _add_tls(options: dict[str, Any], scheme: str, files: ClientFiles) -> None:
    """redis-py's TLS arguments: the peer's chain and name always verified (against
    storage_ca_file, else the system's CAs), for sentinels as for Redis itself."""
    tls = redis_tls_options(files, "[rate_limit] " + _TLS_FILE_OPTIONS)
    options.update(tls)
    if scheme != "async+rediss":  # there the URL's scheme makes redis-py use TLS
        options["ssl"] = True
    if scheme.endswith("+sentinel"):
        # The sentinels are asked over TLS too, with the same CA and certificate.
        options["sentinel_kwargs"] = {**options["sentinel_kwargs"], "ssl": True, **tls}


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}{sep}***@{location}" if at and credentials else url
