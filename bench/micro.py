"""Microbenchmarks of the gateway's concerns, in-process: body, validation, policy, pipeline.

Owns timing those pieces (median of repeats) and the audit / rate-limit hooks; it must
never change gateway behaviour nor reach beyond loopback (Redis at 127.0.0.1 only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from bench.stats import percentile, rotated

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench" / "results"
LOOPBACK = "127.0.0.1"
REDIS_URL = "async+redis://127.0.0.1:6379"
USAGE = """\
  python -m bench.micro            # ~1.5-3 minutes
  python -m bench.micro --quick    # ~1 minute

Writes Markdown tables to stdout and the numbers to bench/results/micro-<time>.json.
"""
MAX_NUMBER = 1 << 20
T = TypeVar("T")  # calibration never runs a statement more than this per repeat


# -- timing ----------------------------------------------------------------------------


@dataclass
class Measure:
    group: str
    name: str
    cpu_us: float  # median over repeats of CPU time per call (the primary number)
    cpu_min_us: float
    spread_pct: float  # (max - min) / median of the CPU per call over repeats
    wall_us: float  # median wall time per call (includes time other tenants took)
    note: str = ""


@dataclass(frozen=True)
class Timing:
    cpu_us: float
    cpu_min_us: float
    spread_pct: float
    wall_us: float

    def measure(self, group: str, name: str, note: str = "") -> Measure:
        return Measure(
            group, name, self.cpu_us, self.cpu_min_us, self.spread_pct, self.wall_us, note
        )


@dataclass
class Settings:
    repeat: int  # repeats per benchmark (median reported)
    target: float  # seconds one repeat should last
    rounds: int  # rounds of the in-process pipeline comparisons (variants rotated)
    block: int  # sequential requests per variant per round
    mix_requests: int  # requests of the realistic mix


def _spread(values: Sequence[float]) -> float:
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid * 100 if mid else 0.0


def _timing(cpu: Sequence[float], wall: Sequence[float]) -> Timing:
    return Timing(statistics.median(cpu), min(cpu), _spread(cpu), statistics.median(wall))


def time_sync(fn: Callable[[], object], settings: Settings) -> Timing:
    """CPU (this thread's) and wall µs per call of ``fn`` over ``settings.repeat`` repeats.

    CPU time is the primary number: on a shared machine the wall clock also counts the
    time other tenants had the core.
    """
    number = 1
    while number < MAX_NUMBER:  # calibrate: one repeat lasts about settings.target
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= settings.target / 4:
            number = max(1, int(number * settings.target / max(time.perf_counter() - start, 1e-9)))
            break
        number *= 2
    cpu, wall = [], []
    for _ in range(settings.repeat):
        start, cpu_start = time.perf_counter(), time.thread_time()
        for _ in range(number):
            fn()
        cpu.append((time.thread_time() - cpu_start) / number * 1e6)
        wall.append((time.perf_counter() - start) / number * 1e6)
    return _timing(cpu, wall)


async def time_async(
    fn: Callable[[], Awaitable[object]], settings: Settings, number: int
) -> Timing:
    """Like time_sync for sequential awaits (a fixed ``number`` per repeat); CPU is the
    whole process's, so threads the awaited code uses count too."""
    for _ in range(min(number, 50)):
        await fn()
    cpu, wall = [], []
    for _ in range(settings.repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(number):
            await fn()
        cpu.append((time.process_time() - cpu_start) / number * 1e6)
        wall.append((time.perf_counter() - start) / number * 1e6)
    return _timing(cpu, wall)


# -- 1. body parsing and validation ------------------------------------------------------


def rebuild_body() -> dict[str, Any]:
    """The largest action: rebuild at 2.94 with every field, ~64 KiB of base64 user_data."""
    user_data = base64.b64encode(random.Random(7).randbytes(49_000)).decode()  # 65,336 chars
    return {
        "rebuild": {
            "name": "web-01-rebuilt",
            "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b",
            "adminPass": "s3cret-Passw0rd",
            "metadata": {f"key-{i}": f"value-{i}" for i in range(16)},
            "preserve_ephemeral": False,
            "OS-DCF:diskConfig": "AUTO",
            "accessIPv4": "192.0.2.10",
            "accessIPv6": "2001:db8::10",
            "description": "rebuilt by the benchmark",
            "key_name": "ops-key",
            "user_data": user_data,
            "trusted_image_certificates": [f"cert-{i:02d}" for i in range(8)],
            "hostname": "web-01.example.org",
        }
    }


def bench_body(settings: Settings) -> list[Measure]:
    from gateway.nova import body
    from gateway.nova.catalogue import BY_KEY
    from gateway.nova.types import Version
    from gateway.nova.validation import validate_action

    cases = [
        ("pause", b'{"pause": null}', Version(2, 1)),
        ("rebuild", json.dumps(rebuild_body()).encode(), Version(2, 94)),
    ]
    results = []
    for name, raw, version in cases:
        value = body.parse_json(raw)
        spec, _ = body.dispatch_action(value, BY_KEY)
        validate_action(spec, version, value)  # valid, and compiles the schema once

        def whole(raw: bytes = raw, version: Version = version) -> None:
            parsed = body.parse_json(raw)
            found, _ = body.dispatch_action(parsed, BY_KEY)
            validate_action(found, version, parsed)

        pieces: list[tuple[str, Callable[[], object]]] = [
            ("parse_json", partial(body.parse_json, raw)),
            ("dispatch_action", partial(body.dispatch_action, value, BY_KEY)),
            ("validate_action", partial(validate_action, spec, version, value)),
            ("parse + dispatch + validate", whole),
        ]
        for piece, fn in pieces:
            note = f"{len(raw):,} bytes at {version}"
            results.append(time_sync(fn, settings).measure("body", f"{name}: {piece}", note))
    return results


# -- 2. policy -----------------------------------------------------------------------------


def _policy_conf_overrides() -> dict[str, Any]:
    return {"policy.policy_dir": str(REPO / "policies")}


def bench_policy(settings: Settings) -> list[Measure]:
    from oslo_config import cfg
    from oslo_policy import policy as oslo_policy

    from gateway.identity.noauth import parse_token
    from gateway.nova.catalogue import BY_KEY, Target
    from gateway.nova.policy_defaults import DEFAULTS
    from gateway.nova.types import Version
    from gateway.policy.engine import Outcome, PolicyEngine, build_target, rules_for
    from gateway.servers.lookup import ServerFacts
    from tests.support.gateway import gateway_conf

    engine = PolicyEngine(gateway_conf(_policy_conf_overrides()))
    credentials = parse_token("alice:p1")
    spec = BY_KEY["reboot"]
    value = {"type": "HARD"}
    version = Version(2, 1)
    server = ServerFacts(
        id="0a1b2c3d-0000-4000-8000-000000000001",
        project_id="p1",
        user_id="alice",
        status="ACTIVE",
        vm_state="active",
        task_state=None,
        launched_at="2026-01-01T00:00:00.000000",
        locked=False,
        locked_reason=None,
        flavor="m1.small",
        image="70a599e0-31e7-49b7-b260-868f441e862b",
    )
    rules = [
        rule
        for rule in rules_for(spec, value, version, server.image, None, "p1", "p1")
        if not rule.after_state and rule.target is not Target.CALLER
    ]

    def targets() -> tuple[dict[str, Any], dict[str, Any]]:
        target = build_target(
            spec,
            value,
            version,
            project_id=server.project_id,
            user_id=server.user_id,
            server=server.policy_attributes(),
        )
        caller = build_target(
            spec, value, version, project_id=credentials.project_id, user_id=credentials.user_id
        )
        return target, caller

    target, caller = targets()

    def as_pipeline() -> object:
        target, caller = targets()
        return engine.decide_all(rules, target, credentials, caller_target=caller)

    decision = engine.decide_all(rules, target, credentials, caller_target=caller)
    assert decision.verdict.outcome is Outcome.ALLOWED, decision

    # Stock oslo.policy, as a naive gateway would call it (perf-anchors.md "aio-full").
    conf = cfg.ConfigOpts()
    conf([], project="bench-oslo", default_config_files=[], default_config_dirs=[])
    enforcer = oslo_policy.Enforcer(conf, policy_file=str(REPO / "policies" / "policy.yaml"))
    conf.set_override("policy_dirs", [str(REPO / "policies" / "policy.d")], group="oslo_policy")
    conf.set_override("enforce_new_defaults", True, group="oslo_policy")
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    enforcer.register_defaults(DEFAULTS)
    creds = credentials.policy_credentials()
    rule_name = rules[0].name
    assert enforcer.enforce(rule_name, target, creds) is True
    static = oslo_policy.Enforcer(conf, policy_file=str(REPO / "policies" / "policy.yaml"))
    static.suppress_deprecation_warnings = True
    static.suppress_default_change_warnings = True
    static.register_defaults(DEFAULTS)
    static.load_rules()
    static.use_conf = False

    note = f"{rule_name}, alice member of p1, own server; {len(enforcer.rules)} rules"
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "gateway decide_all (reboot rules, as the pipeline calls it: 2 targets + decide)",
            as_pipeline,
        ),
        (
            "gateway decide_all only",
            lambda: engine.decide_all(rules, target, credentials, caller_target=caller),
        ),
        (
            "gateway is_admin (authenticate stage, every request)",
            lambda: engine.is_admin(credentials),
        ),
        (
            "oslo.policy Enforcer.enforce, stock use_conf=True",
            lambda: enforcer.enforce(rule_name, target, creds),
        ),
        (
            "oslo.policy Enforcer.enforce, use_conf=False (rules set once)",
            lambda: static.enforce(rule_name, target, creds),
        ),
    ]
    results = []
    for name, fn in cases:
        what = "context_is_admin, alice member of p1" if "is_admin" in name else note
        results.append(time_sync(fn, settings).measure("policy", name, what))
    return results


# -- 3. the whole pipeline in-process ----------------------------------------------------


class Recorder:
    """A CallObserver that notes each finished call and whether its lookup hit the cache."""

    def __init__(self, gate: Any) -> None:
        self._gate = gate
        self._hits = gate.servers.hits
        self._misses = gate.servers.misses
        self.decided: list[float] = []
        self.lookup: list[str] = []  # hit | miss | none, per call (exact when sequential)
        self.statuses: dict[int, int] = {}
        self.calls: list[Any] = []

    def observe(self, call: Any) -> None:
        hits, misses = self._gate.servers.hits, self._gate.servers.misses
        self.lookup.append(
            "hit" if hits > self._hits else "miss" if misses > self._misses else "none"
        )
        self._hits, self._misses = hits, misses
        self.decided.append(call.decided_seconds)
        status = int(call.status or 0)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if len(self.calls) < 4:
            self.calls.append(call)

    def reset(self) -> None:
        self.decided.clear()
        self.lookup.clear()
        self.statuses.clear()


@contextlib.asynccontextmanager
async def simulator(seed: int) -> AsyncIterator[tuple[str, list[str]]]:
    """novasim in this process on a free loopback port: (its /v2.1 url, p1's server ids)."""
    from novasim.app import create_app
    from novasim.config import SimConfig

    runner = web.AppRunner(create_app(SimConfig(seed=seed)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://{LOOPBACK}:{port}/v2.1"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{url}/servers", headers={"X-Auth-Token": "alice:p1"}) as response,
        ):
            servers = (await response.json())["servers"]
        yield url, sorted(str(server["id"]) for server in servers)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def gateway(
    upstream: str, overrides: Mapping[str, Any]
) -> AsyncIterator[tuple[Any, str, Recorder]]:
    """The gateway in this process (tests/support/gateway.py): (gate, base url, recorder)."""
    from tests.support.gateway import base_url, running_gateway

    async with running_gateway(upstream, {**_policy_conf_overrides(), **overrides}) as listeners:
        recorder = Recorder(listeners.gate)
        listeners.gate.observers.append(recorder)
        yield listeners.gate, base_url(listeners), recorder


LOCK_BODY = b'{"lock": null}'
JSON_HEADERS = {"X-Auth-Token": "alice:p1", "Content-Type": "application/json"}


async def _sequential(
    session: aiohttp.ClientSession, url: str, count: int, ids: Sequence[str]
) -> tuple[list[float], float]:
    """``count`` lock requests one after another: (client wall per request, process CPU)."""
    walls = []
    cpu_start = time.process_time()
    for index in range(count):
        start = time.perf_counter()
        target = f"{url}/v2.1/servers/{ids[index % len(ids)]}/action"
        async with session.post(target, data=LOCK_BODY, headers=JSON_HEADERS) as response:
            await response.read()
        walls.append(time.perf_counter() - start)
    return walls, time.process_time() - cpu_start


@dataclass
class PipelineRun:
    name: str
    requests: int
    wall_us_median: float
    wall_us_p99: float
    cpu_us_per_request: float  # median over blocks
    cpu_spread_pct: float  # (max-min)/median over blocks
    decided_us_median: float
    decided_us_p99: float
    decided_hit_us: float | None
    decided_miss_us: float | None
    hits: int
    misses: int
    statuses: dict[int, int]
    extra: dict[str, Any] = field(default_factory=dict)


def _us(values: Sequence[float], pct: float) -> float:
    return percentile(sorted(values), pct) * 1e6


Finish = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Variant:
    """One gateway configuration to compare; ``prepare`` may change the running gate and
    returns what to await after each block (work it leaves behind, e.g. an audit queue)."""

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    prepare: Callable[[Any], Awaitable[Finish]] | None = None


@dataclass
class _Live:
    variant: Variant
    gate: Any
    url: str
    recorder: Recorder
    session: aiohttp.ClientSession
    finish: Finish | None
    walls: list[float] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)
    decided: list[float] = field(default_factory=list)
    lookup: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


Driver = Callable[
    [aiohttp.ClientSession, str, int, Sequence[str]], Awaitable[tuple[list[float], float]]
]


async def compare(
    upstream: str,
    ids: Sequence[str],
    variants: Sequence[Variant],
    settings: Settings,
    *,
    driver: Driver | None = None,
) -> list[PipelineRun]:
    """Lock requests (sequential unless ``driver`` says otherwise) through one in-process
    gateway per variant, in blocks, the variants' order rotated every round (drift and
    noise hit all of them alike)."""
    send = driver or _sequential
    async with contextlib.AsyncExitStack() as stack:
        live: list[_Live] = []
        for variant in variants:
            gate, url, recorder = await stack.enter_async_context(
                gateway(upstream, variant.overrides)
            )
            finish = await variant.prepare(gate) if variant.prepare is not None else None
            session = await stack.enter_async_context(aiohttp.ClientSession())
            live.append(_Live(variant, gate, url, recorder, session, finish))
        for item in live:  # warm-up, unmeasured
            await _sequential(item.session, item.url, 100, ids)
            if item.finish is not None:
                await item.finish()
        for round_index in range(settings.rounds):
            for item in rotated(live, round_index):
                item.recorder.reset()
                hits, misses = item.gate.servers.hits, item.gate.servers.misses
                walls, cpu = await send(item.session, item.url, settings.block, ids)
                if item.finish is not None:
                    # Work left after the last answer (an audit queue draining) counts too.
                    item.extra = await item.finish()
                    cpu += item.extra.get("drain_cpu_s", 0.0)
                item.walls += walls
                item.cpu_per_request.append(cpu / settings.block)
                item.decided += item.recorder.decided
                item.lookup += item.recorder.lookup
                for status, count in item.recorder.statuses.items():
                    item.statuses[status] = item.statuses.get(status, 0) + count
                item.hits += item.gate.servers.hits - hits
                item.misses += item.gate.servers.misses - misses
        runs = []
        for item in live:
            by_lookup = {
                kind: [d for d, seen in zip(item.decided, item.lookup, strict=True) if seen == kind]
                for kind in ("hit", "miss")
            }
            limiter = getattr(item.gate, "rate_limiter", None)
            if limiter is not None:
                item.extra["rate_limit_storage_errors"] = limiter.storage_errors
            runs.append(
                PipelineRun(
                    name=item.variant.name,
                    requests=len(item.walls),
                    wall_us_median=_us(item.walls, 50),
                    wall_us_p99=_us(item.walls, 99),
                    cpu_us_per_request=statistics.median(item.cpu_per_request) * 1e6,
                    cpu_spread_pct=_spread(item.cpu_per_request),
                    decided_us_median=_us(item.decided, 50),
                    decided_us_p99=_us(item.decided, 99),
                    decided_hit_us=_us(by_lookup["hit"], 50) if by_lookup["hit"] else None,
                    decided_miss_us=_us(by_lookup["miss"], 50) if by_lookup["miss"] else None,
                    hits=item.hits,
                    misses=item.misses,
                    statuses=dict(item.statuses),
                    extra=item.extra,
                )
            )
        return runs


# The realistic mix: 90 % of requests on 20 hot servers, the rest on the cold tail.
MIX = (
    # (share, method, token, body or None); path is the server (+ /action with a body)
    (0.50, "GET", "alice:p1", None),
    (0.15, "POST", "alice:p1", b'{"lock": null}'),
    (0.15, "POST", "alice:p1", b'{"unlock": null}'),
    (0.10, "POST", "alice:p1", b'{"os-getConsoleOutput": {"length": 10}}'),
    (0.10, "POST", "eve:p2", b'{"lock": null}'),  # another project: 404 after the lookup
)
HOT_SERVERS = 20
HOT_SHARE = 0.9


def mix_requests(
    ids: Sequence[str], count: int, seed: int = 11
) -> list[tuple[str, str, str, bytes | None]]:
    rng = random.Random(seed)
    hot, cold = ids[:HOT_SERVERS], ids[HOT_SERVERS:] or ids[:HOT_SERVERS]
    shares = [share for share, *_ in MIX]
    plan = []
    for _ in range(count):
        server = rng.choice(hot) if rng.random() < HOT_SHARE else rng.choice(cold)
        _, method, token, body = rng.choices(MIX, weights=shares)[0]
        path = f"/v2.1/servers/{server}" + ("/action" if body is not None else "")
        plan.append((method, path, token, body))
    return plan


async def mix_run(
    upstream: str, ids: Sequence[str], count: int, concurrency: int
) -> dict[str, Any]:
    """The mix through a gateway with cache_ttl 2 s: how many lookups the cache answered."""
    plan = mix_requests(ids, count)
    async with gateway(upstream, {"server_lookup.cache_ttl": 2.0}) as (gate, url, recorder):
        recorder.reset()
        hits, misses = gate.servers.hits, gate.servers.misses
        queue: asyncio.Queue[tuple[str, str, str, bytes | None]] = asyncio.Queue()
        for item in plan:
            queue.put_nowait(item)
        connector = aiohttp.TCPConnector(limit=concurrency)
        start = time.perf_counter()
        async with aiohttp.ClientSession(connector=connector) as session:

            async def client() -> None:
                while not queue.empty():
                    method, path, token, body = queue.get_nowait()
                    headers = {"X-Auth-Token": token}
                    if body is not None:
                        headers["Content-Type"] = "application/json"
                    async with session.request(method, url + path, data=body, headers=headers) as r:
                        await r.read()

            await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        hit, miss = gate.servers.hits - hits, gate.servers.misses - misses
    lookups = hit + miss
    return {
        "requests": count,
        "concurrency": concurrency,
        "hits": hit,
        "misses": miss,
        "hit_share_of_lookups": hit / lookups if lookups else 0.0,
        "hit_share_of_requests": hit / count if count else 0.0,
        "lookups_per_request": lookups / count if count else 0.0,
        "statuses": dict(sorted(recorder.statuses.items())),
        "req_per_s": count / elapsed if elapsed > 0 else 0.0,
    }


# -- 4. audit and rate-limit hooks -------------------------------------------------------


def _module(name: str) -> Any | None:
    if not (REPO / (name.replace(".", "/") + ".py")).exists():
        return None
    return importlib.import_module(name)


async def bench_ratelimit(upstream: str, ids: Sequence[str], settings: Settings) -> list[str]:
    lines = ["### rate limit", ""]
    ratelimit = _module("gateway.ratelimit.limiter")
    if ratelimit is None:
        return [*lines, "not present (no gateway/ratelimit/limiter.py)"]
    redis_up = _reachable(LOOPBACK, 6379)
    prefix = f"nova_gateway_bench_{os.getpid()}"
    rules = {
        "rules": [
            {
                "name": "bench-server-actions",
                "limit": "100000 per minute",  # never refuses: measures the counting
                "methods": ["POST"],
                "path": "/servers/*/action",
            }
        ]
    }
    storages = [("memory://", "memory://")]
    if redis_up:
        storages.append(("redis 127.0.0.1:6379", REDIS_URL))
    else:
        lines.append("* redis: not reachable at 127.0.0.1:6379, skipped")
    # a) the check alone, on a real lock Call captured from the pipeline
    async with gateway(upstream, {}) as (gate, url, recorder):
        async with aiohttp.ClientSession() as session:
            await _sequential(session, url, 3, ids)
        call = recorder.calls[-1]
        policy = gate.policy
    from bench.ratelimit import scaling_rows

    number = settings.rounds * settings.block

    async def time_once(check: Callable[[], Awaitable[None]]) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(number):
            await check()
        return (
            (time.process_time() - cpu_start) / number * 1e6,
            (time.perf_counter() - start) / number * 1e6,
        )

    def finish(name: str, note: str, cpu: list[float], wall: list[float]) -> Measure:
        return _timing(cpu, wall).measure("ratelimit", name, note)

    checks, notes = await scaling_rows(
        ratelimit, call, policy, storages, time_once, finish, prefix, settings.repeat
    )
    # The strategy the default replaced, for contrast: limits' moving window keeps every
    # hit of the period, so its cost follows the limit and how much of it is in use.
    contrast = dataclasses.replace(call.credentials, project_id="bench-moving-window")
    for limit in (10, 100_000):
        limiter = ratelimit.RateLimiter(
            ratelimit.parse_rules(
                {"rules": [{**rules["rules"][0], "limit": f"{limit} per minute"}]}
            ),
            policy,
            strategy="moving-window",
        )
        call.credentials = contrast

        async def moving(limiter: Any = limiter) -> None:
            with contextlib.suppress(Exception):  # a 429 once the window is full
                await limiter.check(call)
            call.answer_headers.clear()
            await asyncio.sleep(0)  # limits' memory expiry runs between requests

        try:
            timing = await time_async(moving, settings, settings.rounds * settings.block)
            checks.append(
                timing.measure(
                    "ratelimit",
                    f"check(), memory://, moving-window, {limit:,} per minute, 1 project",
                    "contrast (no longer the default); refused once full",
                )
            )
        finally:
            await limiter.close()
    lines += [
        "RateLimiter.check() on a captured `lock` Call (1 matching rule; the default "
        "sliding-window counter; N projects taking turns, every one counted once before "
        "timing; the limiter's clock moves on so each project stays at half its limit and "
        "every measured call is admitted; the exempt-policy check included), sequential "
        "awaits; a storage's four cells timed interleaved, each repeat in a rotated order; "
        "CPU = the whole process's, every thread (a Redis round trip is wall time, "
        "not CPU):",
        "",
        *measure_table(checks),
        *notes,
        "",
    ]
    # b) the whole pipeline with and without a rule
    runs: list[PipelineRun] = []
    with tempfile.TemporaryDirectory(prefix="nova-gateway-micro-rl-") as scratch:
        rules_file = Path(scratch) / "rules.json"
        rules_file.write_text(json.dumps(rules))
        variants = [Variant("no rules")]
        for label, storage_url in storages:
            variants.append(
                Variant(
                    f"1 rule, {label}",
                    {
                        "rate_limit.rules_file": str(rules_file),
                        "rate_limit.storage_url": storage_url,
                        "rate_limit.key_prefix": f"{prefix}_pipeline_{len(variants)}",
                        # A loaded box may take >100 ms to connect once: no breaker trips.
                        "rate_limit.storage_timeout": 2.0,
                    },
                )
            )
        try:
            runs = await compare(upstream, ids, variants, settings)
        except Exception as exc:
            lines.append(f"* pipeline: {type(exc).__name__}: {exc}")
    if runs:
        base = runs[0]
        lines += [
            f"Sequential `lock` requests through the in-process gateway, {settings.rounds} "
            f"rounds × {settings.block} per variant, rotated (one project: its counter holds "
            "every request of the last minute):",
            "",
            "| variant | wall µs/req (median) | p99 | CPU µs/req | spread % | CPU ratio to no "
            "rules | storage errors | statuses |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for run in runs:
            lines.append(
                f"| {run.name} | {run.wall_us_median:.0f} | {run.wall_us_p99:.0f} "
                f"| {run.cpu_us_per_request:.0f} | {run.cpu_spread_pct:.0f} "
                f"| {run.cpu_us_per_request / base.cpu_us_per_request:.2f} "
                f"| {run.extra.get('rate_limit_storage_errors', '—')} | {run.statuses} |"
            )
    return lines


def _reachable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# -- report ------------------------------------------------------------------------------


def measure_table(measures: Sequence[Measure]) -> list[str]:
    lines = [
        "| benchmark | CPU µs/call (median) | min | spread % | wall µs/call | note |",
        "|---|---|---|---|---|---|",
    ]
    for m in measures:
        lines.append(
            f"| {m.name} | {m.cpu_us:.2f} | {m.cpu_min_us:.2f} | {m.spread_pct:.0f} "
            f"| {m.wall_us:.2f} | {m.note} |"
        )
    return lines


def pipeline_table(runs: Sequence[PipelineRun]) -> list[str]:
    lines = [
        "| variant | decided µs (median) | p99 | decided µs, lookup from cache | "
        "decided µs, lookup read upstream | round trip µs (median) | process CPU µs/req "
        "| cache hits/misses | statuses |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        hit = "—" if run.decided_hit_us is None else f"{run.decided_hit_us:.0f}"
        miss = "—" if run.decided_miss_us is None else f"{run.decided_miss_us:.0f}"
        lines.append(
            f"| {run.name} | {run.decided_us_median:.0f} | {run.decided_us_p99:.0f} | {hit} "
            f"| {miss} | {run.wall_us_median:.0f} | {run.cpu_us_per_request:.0f} "
            f"| {run.hits}/{run.misses} | {run.statuses} |"
        )
    return lines


async def bench_pipeline(settings: Settings) -> tuple[list[str], dict[str, Any]]:
    out: list[str] = []
    raw: dict[str, Any] = {}
    async with simulator(seed=200) as (upstream, ids):
        hot = ids[:HOT_SERVERS]
        runs = await compare(
            upstream,
            hot,
            [
                Variant("lock, cache_ttl 0 (lookup every time)", {"server_lookup.cache_ttl": 0}),
                Variant("lock, cache_ttl 2 s (default)", {"server_lookup.cache_ttl": 2.0}),
            ],
            settings,
        )
        raw["pipeline"] = [asdict(run) for run in runs]
        out += [
            "### whole pipeline, in-process",
            "",
            f'Sequential `POST /v2.1/servers/{{id}}/action {{"lock": null}}` by the owner '
            f"({settings.rounds} rounds × {settings.block} per variant after 100 warm-up, "
            f"variants rotated per round, requests rotated over {len(hot)} servers) through "
            "`running_gateway` (tests/support/gateway.py) in front of an in-process novasim, "
            "one process and one event loop. *decided* = "
            "`Call.decided_seconds` (request received → all stages passed, before "
            "forwarding; a lookup read is a round trip to the in-process novasim). Every "
            "forwarded action invalidates its server's cache entry, so repeated actions on "
            "one server read it again.",
            "",
            *pipeline_table(runs),
            "",
        ]
        mixes = [
            await mix_run(upstream, ids, settings.mix_requests, concurrency)
            for concurrency in (1, 16)
        ]
        raw["mix"] = mixes
        shares = ", ".join(
            f"{share:.0%} {method} {'action ' + body.decode() if body else 'show'} as {token}"
            for share, method, token, body in MIX
        )
        out += [
            "### server-lookup cache under a realistic mix (cache_ttl 2 s)",
            "",
            f"{settings.mix_requests} requests, {HOT_SHARE:.0%} on {HOT_SERVERS} hot servers, "
            f"the rest on {len(ids) - HOT_SERVERS} others; {shares}. GET show is proxied "
            "without a lookup.",
            "",
            "| clients | lookups/request | cache hits | misses | share of lookups from "
            "cache | share of requests | statuses | req/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mix in mixes:
            out.append(
                f"| {mix['concurrency']} | {mix['lookups_per_request']:.2f} | {mix['hits']} "
                f"| {mix['misses']} | {mix['hit_share_of_lookups']:.1%} "
                f"| {mix['hit_share_of_requests']:.1%} | {mix['statuses']} "
                f"| {mix['req_per_s']:.0f} |"
            )
        out.append("")
        audit_lines, raw["audit"] = await bench_audit(upstream, hot, settings)
        out += audit_lines
        out.append("")
        out += await bench_ratelimit(upstream, hot, settings)
    return out, raw


async def bench_ratelimit_only(settings: Settings) -> tuple[list[str], dict[str, Any]]:
    async with simulator(seed=200) as (upstream, ids):
        lines = await bench_ratelimit(upstream, ids[:HOT_SERVERS], settings)
    return lines, {}


async def bench_audit_only(settings: Settings) -> tuple[list[str], dict[str, Any]]:
    async with simulator(seed=200) as (upstream, ids):
        lines, raw = await bench_audit(upstream, ids[:HOT_SERVERS], settings)
    return lines, {"audit": raw}


async def bench_audit(
    upstream: str, ids: Sequence[str], settings: Settings
) -> tuple[list[str], dict[str, Any]]:
    from bench import audit  # imports this module: loaded once this one is

    return await audit.bench_audit(upstream, ids, settings)


# -- command line ------------------------------------------------------------------------


def _git_revision() -> str:
    """HEAD's short hash, +dirty when the work tree differs (the gateway moves fast)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def _quiet_logs() -> None:
    # Gateway log lines go to stderr (as in production), warnings and up only, so the
    # tables on stdout stay clean; in-process the aiohttp access log is off.
    from gateway import logs

    logs.configure("WARNING")


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed, as the gateway's workers do."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.micro",
        description=__doc__,
        epilog=USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats and requests")
    parser.add_argument(
        "--only",
        choices=["audit", "ratelimit"],
        help="just one section (audit: ~1-2 min, --quick ~40 s; ratelimit: ~1-2 min)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    settings = (
        Settings(repeat=5, target=0.05, rounds=4, block=150, mix_requests=1500)
        if args.quick
        else Settings(repeat=9, target=0.1, rounds=6, block=300, mix_requests=5000)
    )
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    _quiet_logs()
    started = dt.datetime.now()
    body: list[Measure] = []
    policy: list[Measure] = []
    with _cwd(REPO):
        if args.only == "audit":
            pipeline_lines, raw = _run_loop(bench_audit_only(settings))
        elif args.only == "ratelimit":
            pipeline_lines, raw = _run_loop(bench_ratelimit_only(settings))
        else:
            body = bench_body(settings)
            policy = bench_policy(settings)
            pipeline_lines, raw = _run_loop(bench_pipeline(settings))
    out = [
        f"## nova-gateway micro benchmarks ({started:%Y-%m-%d %H:%M:%S}, "
        f"{'quick' if args.quick else 'full'})",
        "",
        f"Gateway {_git_revision()}. Python {platform.python_version()}, aiohttp "
        f"{aiohttp.__version__}, nproc "
        f"{os.cpu_count()}. CPU µs per call = this thread's CPU time, median over "
        f"{settings.repeat} repeats (each ~{settings.target * 1000:.0f} ms of back-to-back "
        "calls); spread = (max-min)/median; wall = the same calls by the clock (it also "
        "counts the time other tenants had the core).",
        "",
        *(["### parse + validate an action body", "", *measure_table(body), ""] if body else []),
        *(["### policy decision", "", *measure_table(policy), ""] if policy else []),
        *pipeline_lines,
    ]
    text = "\n".join(out)
    print(text)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"micro-{started:%Y%m%d-%H%M%S}.json"
    document = {
        "started": started.isoformat(timespec="seconds"),
        "git": _git_revision(),
        "mode": "quick" if args.quick else "full",
        "settings": asdict(settings),
        "body": [asdict(m) for m in body],
        "policy": [asdict(m) for m in policy],
        **raw,
        "markdown": text,
    }
    path.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    try:
        shown = path.relative_to(REPO)
    except ValueError:
        shown = Path(path.name)
    print(f"\n(raw numbers: {shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
