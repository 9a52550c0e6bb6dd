"""Rate limits: the rules file, which calls a rule counts, costs, overrides, exemption,
the refusal on the wire, the breaker, and GET /limits' rate section (memory storage)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from gateway import config
from gateway.call import Call
from gateway.identity.credentials import Credentials
from gateway.nova import routing
from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS
from gateway.nova.faults import Fault
from gateway.policy.engine import PolicyEngine
from gateway.ratelimit.limiter import (
    CircuitBreaker,
    RateLimiter,
    RuleError,
    RuleSet,
    add_rate_section,
    api_path,
    load_rules,
    parse_rules,
    path_pattern,
)

SERVER = "8d6b2c1e-5f3a-4b7c-9d2e-1a2b3c4d5e6f"
MEMBER = Credentials("alice", "p1", frozenset({"member", "reader"}))
OTHER_MEMBER = Credentials("bob", "p1", frozenset({"member", "reader"}))
OTHER_PROJECT = Credentials("carol", "p2", frozenset({"member", "reader"}))
ADMIN = Credentials("admin", "admin", frozenset({"admin", "manager", "member", "reader"}))
BULK = Credentials("robot", "p1", frozenset({"bulk", "member", "reader"}))

RULES = {
    "rules": [
        {"name": "reboots", "limit": "3 per minute", "actions": ["reboot"]},
        {
            "name": "server-actions",
            "limit": "10 per minute",
            "methods": ["POST"],
            "path": "/servers/*/action",
        },
        {"name": "writes", "limit": "20 per minute", "methods": ["post", "PUT"], "per": "user"},
    ],
    "costs": {"rebuild": 5},
    "overrides": {"p2": {"reboots": "unlimited", "server-actions": "6 per minute"}},
}


def make_conf(policy_dir: Path, **policy_opts: Any) -> cfg.ConfigOpts:
    conf = config.make_conf()
    conf([], project="nova-gateway", default_config_files=[])
    conf.set_override("policy_dir", str(policy_dir), group="policy")
    for name, value in policy_opts.items():
        conf.set_override(name, value, group="policy")
    return conf


@pytest.fixture
def policy(tmp_path: Path) -> PolicyEngine:
    return PolicyEngine(make_conf(tmp_path / "no-policy-files"))


# The limiter's clock for the tests that do not move it: half-way through a minute, so
# what they assert does not depend on where in the minute the suite happens to run.
MID_WINDOW = (int(time.time()) // 60 + 10) * 60 + 30.0


@pytest.fixture
async def limiter(policy: PolicyEngine) -> Any:
    limiter = RateLimiter(parse_rules(RULES), policy, clock=lambda: MID_WINDOW)
    yield limiter
    await limiter.close()


def make_call(
    method: str, path: str, credentials: Credentials | None, action: str | None = None
) -> Call:
    call = Call("req-1", method, path, [], "127.0.0.1", "http", "gateway")
    call.route = routing.classify(method, path, "")
    call.credentials = credentials
    if action is not None:
        call.action = BY_KEY[action]
    elif call.route.server_resource:
        call.action = SERVER_RESOURCE_ACTIONS[method]
    return call


def action_call(action: str, credentials: Credentials = MEMBER) -> Call:
    return make_call("POST", f"/v2.1/servers/{SERVER}/action", credentials, action)


async def outcome(limiter: RateLimiter, call: Call) -> int:
    """200 when admitted, else the refusal's status."""
    try:
        await limiter.check(call)
    except Fault as fault:
        return fault.status
    return 200


def header(call: Call, name: str) -> str:
    values = [value for key, value in call.answer_headers if key == name]
    assert len(values) == 1, call.answer_headers
    return values[0]


# -- the rules file ------------------------------------------------------------------


def test_rules_parse_with_defaults() -> None:
    rules = parse_rules(RULES)
    reboots, actions, writes = rules.rules
    assert (reboots.limit.amount, reboots.limit.get_expiry()) == (3, 60)
    assert reboots.actions == {"reboot"} and not reboots.methods
    assert actions.path == "/servers/*/action" and actions.methods == {"POST"}
    assert writes.methods == {"POST", "PUT"} and writes.per.value == "user"
    assert rules.cost("rebuild") == 5 and rules.cost("reboot") == 1 and rules.cost(None) == 1
    assert rules.limit_for(reboots, "p2") is None
    override = rules.limit_for(actions, "p2")
    assert override is not None and override.amount == 6
    assert rules.limit_for(actions, "p1") == actions.limit


def test_rules_file_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "rules.yaml"
    yaml_file.write_text(
        "rules:\n  - name: reboots\n    limit: 10 per minute\n    actions: [reboot]\n"
    )
    json_file = tmp_path / "rules.json"
    json_file.write_text(json.dumps(RULES))
    assert [rule.name for rule in load_rules(str(yaml_file)).rules] == ["reboots"]
    assert len(load_rules(str(json_file)).rules) == 3
    assert load_rules(None) == RuleSet()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "expected a mapping"),
        ({"rule": []}, "unknown key(s) ['rule']"),
        ({"rules": [{"limit": "1/second"}]}, "rules[0]: 'name' is required"),
        ({"rules": [{"name": "a", "limit": "lots"}]}, "rule 'a': 'lots' is not a limit"),
        ({"rules": [{"name": "a", "limit": 10}]}, "rule 'a': limit must be a string"),
        ({"rules": [{"name": "a", "limit": "0/second"}]}, "admits nothing"),
        ({"rules": [{"name": "a", "limit": "1/second", "per": "tenant"}]}, "per must be"),
        ({"rules": [{"name": "a", "limit": "1/second", "methods": ["FETCH"]}]}, "FETCH"),
        ({"rules": [{"name": "a", "limit": "1/second", "path": "servers"}]}, "start with '/'"),
        ({"rules": [{"name": "a", "limit": "1/second", "verb": "GET"}]}, "unknown key(s)"),
        ({"rules": [{"name": "a", "limit": "1/hour"}, {"name": "a", "limit": "1/hour"}]}, "unique"),
        ({"rules": [], "costs": {"rebuild": 0}}, "whole numbers >= 1"),
        ({"rules": [], "overrides": {"p1": {"nope": "1/second"}}}, "no rule named 'nope'"),
        (
            {"rules": [{"name": "a", "limit": "3/minute"}], "costs": {"rebuild": 5}},
            "cost 5 of 'rebuild' exceeds rule 'a'",
        ),
        (
            {
                "rules": [{"name": "a", "limit": "9/minute"}],
                "costs": {"rebuild": 5},
                "overrides": {"p1": {"a": "4/minute"}},
            },
            "could never pass",
        ),
    ],
)
def test_rules_errors_name_the_entry(document: Any, expected: str) -> None:
    with pytest.raises(RuleError) as error:
        parse_rules(document, "rules.yaml")
    assert expected in str(error.value)
    assert str(error.value).startswith("rules.yaml")


def test_cost_check_skips_rules_for_other_actions() -> None:
    # rebuild's cost of 5 is above the reboots rule's limit of 2, but that rule never
    # counts a rebuild: the file is accepted, and the cost kept.
    rules = parse_rules(
        {
            "rules": [{"name": "reboots", "limit": "2/minute", "actions": ["reboot"]}],
            "costs": {"rebuild": 5},
        }
    )
    assert rules.cost("rebuild") == 5
    assert [rule.name for rule in rules.matching("POST", "/servers/x/action", "rebuild")] == []
    # The same cost against a rule that does count rebuilds is refused.
    with pytest.raises(RuleError, match="cost 5 of 'rebuild' exceeds rule 'all'"):
        parse_rules({"rules": [{"name": "all", "limit": "2/minute"}], "costs": {"rebuild": 5}})


def test_unreadable_rules_file(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read"):
        load_rules(str(tmp_path / "absent.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(RuleError, match="not YAML or JSON"):
        load_rules(str(broken))


# -- which calls a rule counts -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "project", "expected"),
    [
        (f"/v2.1/servers/{SERVER}/action", "p1", f"/servers/{SERVER}/action"),
        (f"/v2.1/0a1b/servers/{SERVER}/action", "0a1b", f"/servers/{SERVER}/action"),
        ("/v2.1/p1/limits", "p1", "/limits"),
        ("/v2.1/p2/limits", "p1", "/p2/limits"),  # another project's prefix stays
        ("/v2.1/limits/", "p1", "/limits"),
        ("/v2.1/", None, "/"),
    ],
)
def test_api_path(path: str, project: str | None, expected: str) -> None:
    assert api_path(path, project) == expected


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/servers/*/action", "/servers/abc/action", True),
        ("/servers/*/action", "/servers/abc/def/action", False),
        ("/servers/*/action", "/servers//action", False),
        ("/servers/**", "/servers/abc/os-interface/x", True),
        ("/servers", "/servers", True),
        ("/servers/", "/servers", True),
        ("/servers", "/servers/detail", False),
        ("/os-keypairs", "/os-keypairs", True),
        ("/servers/*.json", "/servers/abc.json", True),
        ("/servers/*.json", "/servers/abcxjson", False),  # '.' is literal
    ],
)
def test_path_patterns(pattern: str, path: str, matches: bool) -> None:
    assert (path_pattern(pattern).fullmatch(path) is not None) == matches


def test_rule_selectors_combine() -> None:
    rules = parse_rules(RULES)
    action = f"/servers/{SERVER}/action"
    assert [r.name for r in rules.matching("POST", action, "reboot")] == [
        "reboots",
        "server-actions",
        "writes",
    ]
    assert [r.name for r in rules.matching("POST", action, "pause")] == ["server-actions", "writes"]
    assert [r.name for r in rules.matching("GET", "/servers/detail", None)] == []
    assert [r.name for r in rules.matching("PUT", f"/servers/{SERVER}", "update")] == ["writes"]
    everything = parse_rules({"rules": [{"name": "all", "limit": "1/second"}]})
    assert [r.name for r in everything.matching("GET", "/flavors", None)] == ["all"]


# -- counting ------------------------------------------------------------------------


async def test_limit_admits_n_then_refuses_with_nova_overlimit(limiter: RateLimiter) -> None:
    statuses = []
    remaining = []
    for _ in range(3):
        call = action_call("reboot")
        statuses.append(await outcome(limiter, call))
        assert header(call, "RateLimit-Limit") == "3"
        assert header(call, "RateLimit-Policy") == "3;w=60"
        assert 0 < int(header(call, "RateLimit-Reset")) <= 60
        remaining.append(header(call, "RateLimit-Remaining"))
        assert call.rate_limit == "allowed"
    assert statuses == [200, 200, 200]
    assert remaining == ["2", "1", "0"]
    refused = action_call("reboot")
    with pytest.raises(Fault) as error:
        await limiter.check(refused)
    fault = error.value
    assert (fault.status, fault.reason) == (429, "rate_limited")
    # Three calls fill this minute's window 30 s in; one more fits 20 s into the next
    # minute, when these three have faded to two: 60 * 4/3 - 30 s from now.
    assert fault.retry_after == 50
    assert fault.headers["Retry-After"] == str(fault.retry_after)
    body = json.loads(fault.body())
    assert body["overLimit"]["code"] == 429
    assert body["overLimit"]["retryAfter"] == str(fault.retry_after)
    message = body["overLimit"]["message"]
    assert "rule 'reboots' allows 3 per minute per project" in message
    assert f"Retry after {fault.retry_after} seconds" in message
    assert (refused.rate_limit, refused.rate_limit_rule) == ("refused", "reboots")
    assert header(refused, "RateLimit-Remaining") == "0"


async def test_a_refused_call_takes_nothing_from_other_rules(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.check(action_call("reboot"))
    for _ in range(5):
        assert await outcome(limiter, action_call("reboot")) == 429
    # server-actions (10/min) counted only the 3 admitted reboots.
    pauses = [await outcome(limiter, action_call("pause")) for _ in range(8)]
    assert pauses == [200] * 7 + [429]


async def test_headers_show_the_tightest_rule(limiter: RateLimiter) -> None:
    call = action_call("pause")
    await limiter.check(call)
    # server-actions 10/min has 9 left; writes (per user) 20/min has 19.
    assert header(call, "RateLimit-Limit") == "10"
    assert header(call, "RateLimit-Remaining") == "9"
    assert call.rate_limit_rule == "server-actions"


async def test_costs_weigh_actions(limiter: RateLimiter) -> None:
    # server-actions allows 10 per minute; a rebuild costs 5 of them, a pause 1.
    assert await outcome(limiter, action_call("rebuild")) == 200
    pauses = [await outcome(limiter, action_call("pause")) for _ in range(5)]
    assert pauses == [200] * 5
    call = action_call("rebuild")
    with pytest.raises(Fault) as error:
        await limiter.check(call)
    assert "(this request counts 5)" in error.value.message
    assert header(call, "RateLimit-Remaining") == "0"


async def test_overrides_per_project(limiter: RateLimiter) -> None:
    # p2: reboots unlimited, server-actions 6 per minute.
    statuses = [await outcome(limiter, action_call("reboot", OTHER_PROJECT)) for _ in range(7)]
    assert statuses == [200] * 6 + [429]
    # p1 still has its own, untouched budget.
    assert await outcome(limiter, action_call("reboot")) == 200


async def test_per_project_is_shared_per_user_is_not(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.check(action_call("reboot"))
    # Another user of p1 shares the project's reboots...
    assert await outcome(limiter, action_call("reboot", OTHER_MEMBER)) == 429
    # ...but not the per-user writes rule: alice's count does not show on bob's headers.
    call = make_call("PUT", f"/v2.1/servers/{SERVER}", OTHER_MEMBER)
    await limiter.check(call)
    assert header(call, "RateLimit-Remaining") == "19"


async def test_calls_no_rule_counts_are_untouched(limiter: RateLimiter) -> None:
    call = make_call("GET", "/v2.1/servers/detail", MEMBER)
    await limiter.check(call)
    assert call.rate_limit is None and call.answer_headers == []
    unauthenticated = make_call("GET", "/v2.1/", None)
    await limiter.check(unauthenticated)
    assert unauthenticated.rate_limit is None


# -- exemption -----------------------------------------------------------------------


async def test_admins_are_exempt_by_default(limiter: RateLimiter) -> None:
    for _ in range(10):
        call = action_call("reboot", ADMIN)
        await limiter.check(call)
        assert call.rate_limit == "exempt"
        assert call.answer_headers == []


async def test_exemption_rule_is_the_operators(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        '"nova_gateway:rate_limit:exempt": "role:bulk"\n', encoding="utf-8"
    )
    limiter = RateLimiter(parse_rules(RULES), PolicyEngine(make_conf(tmp_path)))
    try:
        for _ in range(5):
            call = action_call("reboot", BULK)
            await limiter.check(call)
            assert call.rate_limit == "exempt"
        # Admins are no longer exempt under this site's rule.
        statuses = [await outcome(limiter, action_call("reboot", ADMIN)) for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    finally:
        await limiter.close()


async def test_dry_run_exemption_does_not_lift_limits(tmp_path: Path) -> None:
    engine = PolicyEngine(
        make_conf(tmp_path / "none", dry_run_rules=["nova_gateway:rate_limit:exempt"])
    )
    limiter = RateLimiter(parse_rules(RULES), engine)
    try:
        statuses = [await outcome(limiter, action_call("reboot")) for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
    finally:
        await limiter.close()


# -- windows -------------------------------------------------------------------------


class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTime]:
    # limits reads time.time(); start one tenth of a second before a minute boundary,
    # where a fixed window would reset.
    fake = FakeTime((int(time.time()) // 60 + 10) * 60 - 0.1)
    monkeypatch.setattr(time, "time", fake)
    yield fake


@pytest.mark.parametrize(
    ("strategy", "admitted_after_edge"),
    [("moving-window", 0), ("sliding-window-counter", 1), ("fixed-window", 3)],
)
async def test_no_double_burst_across_a_window_edge(
    policy: PolicyEngine, clock: FakeTime, strategy: str, admitted_after_edge: int
) -> None:
    limiter = RateLimiter(parse_rules(RULES), policy, strategy=strategy, clock=clock)
    try:
        before = [await outcome(limiter, action_call("reboot")) for _ in range(3)]
        assert before == [200, 200, 200]
        clock.now += 0.2  # across the minute boundary
        after = [await outcome(limiter, action_call("reboot")) for _ in range(3)]
        assert after.count(200) <= admitted_after_edge
        if strategy == "moving-window":
            clock.now += 59.9  # the first three leave the window
            assert await outcome(limiter, action_call("reboot")) == 200
    finally:
        await limiter.close()


# moving-window: the first request leaves 60 s after it came (25 s after the refusal).
# sliding-window-counter: the first request is the previous window, still counting 25.1/60
# of itself at the refusal; with it faded out at the window's end, 25.1 s later, the two
# of this window leave room for one.
@pytest.mark.parametrize(
    ("strategy", "expected"), [("moving-window", 25), ("sliding-window-counter", 26)]
)
async def test_retry_after_counts_down_to_the_oldest_request(
    policy: PolicyEngine, clock: FakeTime, strategy: str, expected: int
) -> None:
    limiter = RateLimiter(parse_rules(RULES), policy, strategy=strategy, clock=clock)
    try:
        await limiter.check(action_call("reboot"))
        clock.now += 20
        await limiter.check(action_call("reboot"))
        await limiter.check(action_call("reboot"))
        clock.now += 15
        with pytest.raises(Fault) as error:
            await limiter.check(action_call("reboot"))
        assert error.value.retry_after == expected
    finally:
        await limiter.close()


# -- storage down --------------------------------------------------------------------


def test_breaker_lets_one_probe_through_per_cooldown() -> None:
    now = [100.0]
    breaker = CircuitBreaker(5.0, clock=lambda: now[0])
    assert breaker.allow() and not breaker.open
    breaker.failed()
    assert breaker.open and not breaker.allow()
    assert breaker.retry_after() == 5
    now[0] += 5.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else while it is out
    breaker.failed()
    assert not breaker.allow()
    now[0] += 5.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.allow() and breaker.allow() and not breaker.open
    breaker.failed()
    now[0] += 5.0
    assert breaker.allow()
    breaker.abandoned()  # the probe's client went away: the next caller probes instead
    assert breaker.allow()


async def test_unlimited_project_needs_no_storage(policy: PolicyEngine) -> None:
    rules = parse_rules(
        {
            "rules": [{"name": "reads", "limit": "1/hour", "methods": ["GET"]}],
            "overrides": {"p2": {"reads": "unlimited"}},
        }
    )
    down = f"async+redis://127.0.0.1:{closed_port()}/0"
    limiter = RateLimiter(rules, policy, storage_url=down, fail_closed=True)
    try:
        call = make_call("GET", "/v2.1/servers", OTHER_PROJECT)
        await limiter.check(call)  # no 503: nothing to count for p2
        assert call.rate_limit is None and limiter.storage_errors == 0
    finally:
        await limiter.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_storage_down_choice_and_one_failure_per_cooldown(
    policy: PolicyEngine, fail_closed: bool
) -> None:
    limiter = RateLimiter(
        parse_rules(RULES),
        policy,
        storage_url=f"async+redis://127.0.0.1:{closed_port()}/0",
        fail_closed=fail_closed,
        breaker_cooldown=30.0,
    )
    try:
        for _ in range(20):
            call = action_call("reboot")
            status = await outcome(limiter, call)
            if fail_closed:
                assert status == 503
                assert call.rate_limit == "storage_down_closed"
            else:
                assert status == 200
                assert call.rate_limit == "storage_down_open"
                assert call.answer_headers == []  # no numbers we do not have
        assert limiter.storage_errors == 1  # the breaker kept the others off the storage
        assert limiter.breaker.open
        if fail_closed:
            with pytest.raises(Fault) as error:
                await limiter.check(action_call("reboot"))
            assert error.value.reason == "rate_limit_unavailable"
            assert error.value.retry_after is not None and error.value.retry_after <= 30
    finally:
        await limiter.close()


async def test_storage_down_at_start_opens_the_breaker(policy: PolicyEngine) -> None:
    limiter = RateLimiter(
        parse_rules(RULES), policy, storage_url=f"async+redis://127.0.0.1:{closed_port()}/0"
    )
    try:
        await limiter.start()
        assert limiter.breaker.open and limiter.storage_errors == 1
        call = action_call("reboot")
        await limiter.check(call)
        assert call.rate_limit == "storage_down_open"
        assert limiter.storage_errors == 1  # the first request did not wait for it
    finally:
        await limiter.close()


async def test_silent_storage_costs_one_timeout_then_nothing(policy: PolicyEngine) -> None:
    # A listener that accepts and never answers: the worst kind of outage.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RateLimiter(
        parse_rules(RULES),
        policy,
        storage_url=f"async+redis://127.0.0.1:{port}/0",
        timeout=0.05,
        breaker_cooldown=30.0,
    )
    try:
        started = time.monotonic()
        first = action_call("reboot")
        await limiter.check(first)
        first_cost = time.monotonic() - started
        assert first.rate_limit == "storage_down_open"
        assert first_cost < 1.0  # 50 ms plus scheduling on a loaded machine
        started = time.monotonic()
        for _ in range(50):
            await limiter.check(action_call("reboot"))
        assert (time.monotonic() - started) / 50 < 0.005  # no waiting while the breaker is open
        assert limiter.storage_errors == 1
    finally:
        await limiter.close()
        server.close()
        await server.wait_closed()


# -- GET /limits ---------------------------------------------------------------------

NOVA_LIMITS = {
    "limits": {
        "rate": [],
        "absolute": {"maxTotalInstances": 10, "totalInstancesUsed": 2},
    }
}


async def test_limits_shows_the_callers_rates(limiter: RateLimiter) -> None:
    await limiter.check(action_call("reboot"))
    call = make_call("GET", "/v2.1/limits", MEMBER)
    await limiter.check(call)
    assert call.response_rewrite is not None
    body = call.response_rewrite(json.dumps(NOVA_LIMITS).encode())
    assert body is not None
    document = json.loads(body)
    assert document["limits"]["absolute"] == NOVA_LIMITS["limits"]["absolute"]
    rate = {entry["uri"]: entry for entry in document["limits"]["rate"]}
    reboots = rate["* (reboot)"]
    assert reboots["regex"] == ".*"
    assert reboots["limit"] == [
        {
            "verb": "POST",
            "value": 3,
            "unit": "MINUTE",
            "remaining": 2,
            "next-available": reboots["limit"][0]["next-available"],
        }
    ]
    assert reboots["limit"][0]["next-available"].endswith("Z")
    actions = rate["/servers/*/action"]
    assert actions["regex"] == "/servers/[^/]+/action"
    assert [entry["verb"] for entry in actions["limit"]] == ["POST"]
    assert actions["limit"][0]["remaining"] == 9
    assert [entry["verb"] for entry in rate["*"]["limit"]] == ["POST", "PUT"]


async def test_limits_shows_overrides_and_hides_unlimited(limiter: RateLimiter) -> None:
    call = make_call("GET", "/v2.1/p2/limits", OTHER_PROJECT)
    await limiter.check(call)
    assert call.response_rewrite is not None
    body = call.response_rewrite(json.dumps(NOVA_LIMITS).encode())
    assert body is not None
    rate = json.loads(body)["limits"]["rate"]
    assert {entry["uri"]: entry["limit"][0]["value"] for entry in rate} == {
        "/servers/*/action": 6,
        "*": 20,
    }


# Three reboots 0.1 s before a minute's end: the moving window frees one 60 s later; the
# sliding-window counter once a third of them has faded, 20 s into the next minute.
@pytest.mark.parametrize(
    ("strategy", "later"), [("moving-window", 60), ("sliding-window-counter", 20.1)]
)
async def test_limits_next_available_when_exhausted(
    policy: PolicyEngine, clock: FakeTime, strategy: str, later: float
) -> None:
    limiter = RateLimiter(parse_rules(RULES), policy, strategy=strategy, clock=clock)
    try:
        for _ in range(3):
            await limiter.check(action_call("reboot"))
        call = make_call("GET", "/v2.1/limits", MEMBER)
        await limiter.check(call)
        assert call.response_rewrite is not None
        body = call.response_rewrite(json.dumps(NOVA_LIMITS).encode())
        assert body is not None
        reboots = next(e for e in json.loads(body)["limits"]["rate"] if e["uri"] == "* (reboot)")
        expected = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(clock.now + later)))
        assert reboots["limit"][0]["remaining"] == 0
        assert reboots["limit"][0]["next-available"] == expected
    finally:
        await limiter.close()


def test_rate_section_rewrite_leaves_other_bodies() -> None:
    rewrite = add_rate_section([{"uri": "*", "regex": ".*", "limit": []}])
    assert rewrite(b"not json") is None
    assert rewrite(b'{"badRequest": {}}') is None
    assert rewrite(b"[]") is None
    kept = json.loads(rewrite(b'{"limits": {"rate": [1], "absolute": {}}}') or b"")
    assert kept == {
        "limits": {"rate": [1, {"uri": "*", "regex": ".*", "limit": []}], "absolute": {}}
    }


async def test_exempt_callers_see_novas_limits_unchanged(limiter: RateLimiter) -> None:
    call = make_call("GET", "/v2.1/limits", ADMIN)
    await limiter.check(call)
    assert call.rate_limit == "exempt" and call.response_rewrite is None


async def test_no_rules_no_rate_section(policy: PolicyEngine) -> None:
    limiter = RateLimiter(RuleSet(), policy)
    call = make_call("GET", "/v2.1/limits", MEMBER)
    await limiter.check(call)
    assert call.response_rewrite is None and call.rate_limit is None
    await limiter.close()


def test_rules_reload_keeps_running_rules_on_error(tmp_path: Path, policy: PolicyEngine) -> None:
    limiter = RateLimiter(parse_rules(RULES), policy)
    broken = tmp_path / "rules.yaml"
    broken.write_text("rules: [{name: a}]\n")
    assert not limiter.reload_rules(str(broken))
    assert len(limiter.rules.rules) == 3
    good = tmp_path / "good.yaml"
    good.write_text("rules: [{name: a, limit: 1/second}]\n")
    assert limiter.reload_rules(str(good))
    assert [rule.name for rule in limiter.rules.rules] == ["a"]


def test_bad_storage_url_is_a_config_error(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    conf.set_override("storage_url", "memcached://x", group="rate_limit")
    with pytest.raises(config.ConfigError, match=r"\[rate_limit\] storage_url"):
        RateLimiter.from_conf(conf, PolicyEngine(conf))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memcached://x", r"use memory://, or async\+redis:// for one Redis"),
        (
            "async+redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26379",
            r"'async\+redis\+sentinel://\*\*\*@10.0.0.1:26379,10.0.0.2:26379' names no "
            r"Sentinel service: write async\+redis\+sentinel://\[:PASSWORD@\]HOST:PORT",
        ),
    ],
)
def test_storage_url_errors_say_what_to_write_and_hide_the_password(
    tmp_path: Path, url: str, expected: str
) -> None:
    conf = make_conf(tmp_path)
    conf.set_override("storage_url", url, group="rate_limit")
    with pytest.raises(config.ConfigError, match=expected) as error:
        RateLimiter.from_conf(conf, PolicyEngine(conf))
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "async+redis+sentinel://127.0.0.1:{port},127.0.0.1:{port}/counters",
        "async+redis+cluster://127.0.0.1:{port}",
    ],
)
@pytest.mark.parametrize("outage", ["silent", "refused"])
async def test_sentinel_and_cluster_outages_cost_one_timeout(
    policy: PolicyEngine, url: str, outage: str
) -> None:
    # Sentinels (or cluster nodes) that accept and never answer, or nothing listening
    # (redis-py's cluster client raises an error of its own then): the whole check is
    # bounded by the storage timeout, then the breaker answers at once.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1] if outage == "silent" else closed_port()
    limiter = RateLimiter(
        parse_rules(RULES),
        policy,
        storage_url=url.format(port=port),
        timeout=0.05,
        breaker_cooldown=30.0,
        fail_closed=True,
    )
    try:
        started = time.monotonic()
        first = action_call("reboot")
        assert await outcome(limiter, first) == 503
        assert time.monotonic() - started < 1.0  # 3 times 50 ms plus a loaded machine
        assert first.rate_limit == "storage_down_closed"
        for _ in range(20):
            assert await outcome(limiter, action_call("reboot")) == 503
        assert limiter.storage_errors == 1
    finally:
        await limiter.close()
        server.close()
        await server.wait_closed()
