"""PolicyEngine as Nova decides: its credentials, is_admin, remote checks, scope always on.

Each case is checked against Nova's way of calling a stock oslo.policy Enforcer
(tests/support/nova_policy.py), and remote checks against a decision point on loopback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_policy import policy as oslo

from gateway import config
from gateway.identity.credentials import Credentials
from gateway.identity.keystone import credentials_from_token
from gateway.nova.catalogue import BY_KEY, PolicyRule
from gateway.nova.types import v
from gateway.policy.engine import Outcome, PolicyEngine, Reason, build_target, rules_for
from tests.support import nova_policy
from tests.support.decision_point import DecisionPoint, decision_point
from tests.unit.test_policy import make_conf, write

PAUSE = "os_compute_api:os-pause-server:pause"
UNPAUSE = "os_compute_api:os-pause-server:unpause"
TARGET = {"project_id": "p1", "user_id": "u1"}


def token(
    roles: list[str],
    project: str | None = "p1",
    *,
    system: bool = False,
    domain: str | None = None,
    is_admin_project: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": {"id": "u1", "name": "u1", "domain": {"id": "default", "name": "Default"}},
        "roles": [{"id": f"id-{name}", "name": name} for name in roles],
        "methods": ["password"],
        "issued_at": "2026-01-01T00:00:00.000000Z",
        "expires_at": "2099-01-01T00:00:00.000000Z",
        "is_admin_project": is_admin_project,
    }
    if system:
        body["system"] = {"all": True}
    elif domain:
        body["domain"] = {"id": domain, "name": domain}
    elif project:
        body["project"] = {"id": project, "name": project, "domain": {"id": "d1", "name": "D1"}}
    return {"token": body}


ADMIN_MEMBER = token(["admin", "member", "reader"])
MEMBER = token(["member", "reader"])
SYSTEM_ADMIN = token(["admin"], system=True)
DOMAIN_MANAGER = token(["manager"], domain="d1")
SHOUTING = token(["Admin", "MEMBER"], is_admin_project=False)
CALLERS = (ADMIN_MEMBER, MEMBER, SYSTEM_ADMIN, DOMAIN_MANAGER, SHOUTING)


@pytest.fixture(scope="module")
def nova_rules(shared_dir: Path) -> list[oslo.RuleDefault]:
    return nova_policy.nova_defaults(shared_dir)


@pytest.fixture(scope="module")
def point() -> Iterator[DecisionPoint]:
    allowed = {PAUSE, "context_is_admin"}
    with decision_point(lambda rule: rule in allowed, delay=1.0) as running:
        yield running


class Both:
    """The gateway and Nova's reference on the same policy directory."""

    def __init__(self, directory: Path, nova_rules: list[oslo.RuleDefault], **options: Any):
        conf = make_conf(directory, **options)
        self.gateway = PolicyEngine(conf)
        remote = {name: value for name, value in options.items() if name.startswith("remote_")}
        self.nova = nova_policy.nova_enforcer(directory, nova_rules, oslo_policy_options=remote)

    def gateway_allows(self, rule: str, target: dict[str, Any], caller: dict[str, Any]) -> bool:
        return self.gateway.decide(rule, target, credentials_from_token(caller)).allowed

    def nova_says(self, rule: str, target: dict[str, Any], caller: dict[str, Any]) -> str:
        environ = nova_policy.keystone_environ(caller)
        return nova_policy.nova_decides(self.nova, environ, rule, target)


@pytest.fixture
def both(tmp_path: Path, nova_rules: list[oslo.RuleDefault]) -> Callable[..., Both]:
    def build(rules: dict[str, str], **options: Any) -> Both:
        lines = "".join(f'"{name}": "{check}"\n' for name, check in rules.items())
        write(tmp_path / "policy.yaml", lines)
        return Both(tmp_path, nova_rules, **options)

    return build


# -- is_admin, as Nova computes it ---------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        # The two examples: admins refused, then admins allowed.
        ("role:member and not is_admin:True", [False, True, False, False, False]),
        ("is_admin:True or project_id:%(project_id)s", [True, True, False, False, True]),
        # Nova's IsAdminCheck: anything but 'true' (any case) expects False.
        ("is_admin:true", [True, False, False, False, True]),
        ("is_admin:1", [False, True, False, False, False]),
        ("is_admin:%(project_id)s", [False, True, False, False, False]),
    ],
)
def test_is_admin_checks_as_nova(
    both: Callable[..., Both], check: str, expected: list[bool]
) -> None:
    policy = both({PAUSE: check})
    for caller, allowed in zip(CALLERS, expected, strict=True):
        nova = policy.nova_says(PAUSE, TARGET, caller)
        assert (nova == nova_policy.ALLOW) is allowed, (check, caller, nova)
        assert policy.gateway_allows(PAUSE, TARGET, caller) is allowed, (check, caller)


@pytest.mark.parametrize(
    "context_is_admin",
    [
        # Nova's target is the caller's own {project_id, user_id}, nothing else.
        "'True':%(is_admin_project)s",
        "role:admin and 'u1':%(user_id)s",
        "role:admin and 'p1':%(project_id)s",
        # Evaluated while is_admin is still None in the credentials.
        "is_admin:False",
        "None:%(project_id)s or role:admin",
    ],
)
def test_is_admin_is_context_is_admin_on_the_callers_own_target(
    both: Callable[..., Both], context_is_admin: str
) -> None:
    # admin_api has no scope types: every caller reaches the check.
    policy = both({"context_is_admin": context_is_admin, "admin_api": "is_admin:True"})
    for caller in CALLERS:
        nova = policy.nova_says("admin_api", {"project_id": "elsewhere"}, caller)
        assert policy.gateway_allows("admin_api", {"project_id": "elsewhere"}, caller) is (
            nova == nova_policy.ALLOW
        ), (context_is_admin, caller, nova)
        admin = policy.gateway.is_admin(credentials_from_token(caller))
        assert admin is (nova == nova_policy.ALLOW)


def test_is_admin_failing_refuses_every_rule(both: Callable[..., Both]) -> None:
    # Nova cannot build the request's context (a 500): nothing is allowed.
    policy = both({"context_is_admin": "project_id.x:y", PAUSE: "@"})
    for caller in (ADMIN_MEMBER, MEMBER):
        assert policy.nova_says(PAUSE, TARGET, caller).startswith("error")
        verdict = policy.gateway.decide(PAUSE, TARGET, credentials_from_token(caller))
        assert (verdict.outcome, verdict.reason) == (Outcome.DENIED, Reason.ERROR)
    assert not policy.gateway.is_admin(credentials_from_token(ADMIN_MEMBER))


def test_role_names_keep_the_issuers_spelling(both: Callable[..., Both]) -> None:
    # role: compares case-insensitively; a generic roles: check compares as written.
    policy = both({PAUSE: "roles:Admin", UNPAUSE: "role:admin"})
    for rule, allowed in ((PAUSE, True), (UNPAUSE, True)):
        assert policy.nova_says(rule, TARGET, SHOUTING) == nova_policy.ALLOW
        assert policy.gateway_allows(rule, TARGET, SHOUTING) is allowed
    assert not policy.gateway_allows(PAUSE, TARGET, ADMIN_MEMBER)  # 'admin' is not 'Admin'
    assert policy.nova_says(PAUSE, TARGET, ADMIN_MEMBER) == nova_policy.DENY


def test_policy_credentials_are_nova_keys(
    nova_rules: list[oslo.RuleDefault], tmp_path: Path
) -> None:
    """What a remote check receives from the gateway is what Nova's enforce() evaluates."""
    with decision_point(lambda rule: True) as running:
        write(tmp_path / "policy.yaml", f'"admin_api": "http:{running.url}/check"')
        policy = Both(tmp_path, nova_rules)
        for caller in CALLERS:
            policy.gateway_allows("admin_api", TARGET, caller)
            (asked,) = running.take()
            nova = nova_policy.nova_credentials(policy.nova, nova_policy.keystone_environ(caller))
            assert asked.credentials == nova
            assert list(asked.credentials) == list(nova)  # the same keys in the same order


# -- scope --------------------------------------------------------------------------------


def test_enforce_scope_false_is_refused_at_load(tmp_path: Path) -> None:
    conf_file = tmp_path / "gateway.conf"
    conf_file.write_text("[policy]\nenforce_scope = false\n")
    with pytest.raises(config.ConfigError, match=r"oslo\.policy 6"):
        config.load(["--config-file", str(conf_file)])
    conf_file.write_text("[policy]\nenforce_scope = true\n")
    assert config.load(["--config-file", str(conf_file)]).policy.enforce_scope


# -- remote checks --------------------------------------------------------------------------


def test_remote_check_receives_the_enforced_rule(
    both: Callable[..., Both], point: DecisionPoint
) -> None:
    """The issue's case: the http: check sits in project_member_or_admin; pause and unpause
    refer to it; the decision point answers by the enforced rule's name."""
    policy = both({"project_member_or_admin": f"http:{point.url}/check"})
    point.take()
    for rule, allowed in ((PAUSE, True), (UNPAUSE, False)):
        assert policy.gateway_allows(rule, TARGET, MEMBER) is allowed
        asked_gateway = point.take()
        assert (policy.nova_says(rule, TARGET, MEMBER) == nova_policy.ALLOW) is allowed
        assert asked_gateway == point.take()
        assert [asked.rule for asked in asked_gateway] == [rule]
        assert asked_gateway[0].target == TARGET


def test_remote_check_in_context_is_admin(both: Callable[..., Both], point: DecisionPoint) -> None:
    policy = both({"context_is_admin": f"http:{point.url}/admin"})
    point.take()
    assert policy.gateway.is_admin(credentials_from_token(MEMBER))
    (asked,) = point.take()
    assert (asked.rule, asked.target) == ("context_is_admin", TARGET)
    assert asked.credentials["is_admin"] is None  # not computed yet, as in Nova
    # Never asked on the event loop: the inline answers step aside for the remote check,
    # and asking is never remembered (the decision point is asked each time).
    member = credentials_from_token(MEMBER)
    assert policy.gateway.is_admin_inline(member) is None
    assert policy.gateway.decide_all_inline([PolicyRule(PAUSE)], TARGET, member) is None
    assert policy.gateway.is_admin(member) and policy.gateway.is_admin(member)
    assert len(point.take()) == 2
    policy.gateway_allows(PAUSE, TARGET, MEMBER)
    gateway_asked = point.take()
    policy.nova_says(PAUSE, TARGET, MEMBER)
    assert gateway_asked == point.take()


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "application/json"])
def test_remote_check_content_type(
    both: Callable[..., Both], point: DecisionPoint, content_type: str
) -> None:
    policy = both({PAUSE: f"http:{point.url}/check"}, remote_content_type=content_type)
    point.take()
    assert policy.gateway_allows(PAUSE, TARGET, MEMBER)
    (asked,) = point.take()
    assert asked.content_type == content_type
    policy.nova_says(PAUSE, TARGET, MEMBER)
    assert [asked] == point.take()


def test_remote_check_failures_refuse(both: Callable[..., Both], point: DecisionPoint) -> None:
    policy = both(
        {
            PAUSE: f"http:{point.url}/slow",
            UNPAUSE: "http://127.0.0.1:9/closed",
            "os_compute_api:os-lock-server:lock": f"http:{point.url}/%(missing)s",
        },
        remote_timeout=0.2,
    )
    for rule in (PAUSE, UNPAUSE, "os_compute_api:os-lock-server:lock"):
        verdict = policy.gateway.decide(rule, TARGET, credentials_from_token(MEMBER))
        assert (verdict.outcome, verdict.reason) == (Outcome.DENIED, Reason.ERROR)
        assert policy.nova_says(rule, TARGET, MEMBER).startswith("error")


def test_key_error_inside_a_referenced_rule_is_false(
    both: Callable[..., Both], point: DecisionPoint
) -> None:
    # oslo's RuleCheck turns a KeyError from inside the referenced rule into False.
    policy = both(
        {
            PAUSE: "not rule:site_missing_key",
            "site_missing_key": f"http:{point.url}/%(missing)s",
        }
    )
    assert policy.nova_says(PAUSE, TARGET, MEMBER) == nova_policy.ALLOW
    assert policy.gateway_allows(PAUSE, TARGET, MEMBER)


def test_remote_check_never_receives_body_secrets(
    both: Callable[..., Both], point: DecisionPoint
) -> None:
    rebuild = "os_compute_api:servers:rebuild"
    policy = both({rebuild: f"http:{point.url}/check"})
    body = {
        "imageRef": "img",
        "adminPass": "s3cret",
        "user_data": "IyEvYmluL3No",
        "personality": [{"path": "/etc/motd", "contents": "aGk="}],
        "metadata": {"db_password": "hunter2", "role": "web"},
    }
    target = build_target(
        BY_KEY["rebuild"], body, v("2.1"), project_id="p1", user_id="u1", server={}
    )
    point.take()
    policy.gateway.decide(rebuild, target, credentials_from_token(MEMBER))
    (asked,) = point.take()
    assert asked.target["action.adminPass"] == asked.target["action.user_data"] == "***"
    assert asked.target["action.personality"] == [{"path": "/etc/motd", "contents": "***"}]
    assert asked.target["action.metadata"] == {"db_password": "***", "role": "web"}
    assert asked.target["action.imageRef"] == "img" and asked.target["project_id"] == "p1"
    assert "s3cret" not in repr(asked) and "hunter2" not in repr(asked)
    # Site rules evaluated by the gateway itself still see the body as sent.
    assert target["action.adminPass"] == "s3cret"


def test_remote_check_options_reach_oslo(tmp_path: Path) -> None:
    engine = PolicyEngine(make_conf(tmp_path, remote_timeout=3.5, remote_ssl_ca_crt_file="/ca"))
    options = engine.loaded.enforcer.conf.oslo_policy
    assert options.remote_timeout == 3.5
    assert options.remote_ssl_ca_crt_file == "/ca"
    # Unlike oslo.policy's own default: an unverified decision point could answer anything.
    assert options.remote_ssl_verify_server_crt is True


async def test_remote_checks_run_off_the_event_loop(tmp_path: Path, point: DecisionPoint) -> None:
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "http:{point.url}/slow"')
    engine = PolicyEngine(make_conf(tmp_path, remote_timeout=0.3))
    rules = rules_for(BY_KEY["pause"], None, v("2.1"), "img", None, "p1", "p1")
    member = credentials_from_token(MEMBER)
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.get_running_loop().create_task(ticking())
    started = time.monotonic()
    decision = await engine.decide_all_async(rules, TARGET, member)
    elapsed = time.monotonic() - started
    ticker.cancel()
    assert decision.verdict.reason is Reason.ERROR and not decision.allowed
    assert elapsed >= 0.3
    assert ticks >= 5  # the loop kept running while the decision point was slow
    # A decision without remote checks stays on the loop (no thread hop).
    unpause = rules_for(BY_KEY["unpause"], None, v("2.1"), "img", None, "p1", "p1")
    assert not engine.loaded.blocks(rule.name for rule in unpause)
    assert (await engine.decide_all_async(unpause, TARGET, member)).allowed
    assert await engine.is_admin_async(credentials_from_token(ADMIN_MEMBER))
    await engine.stop()


def test_credentials_shape_without_keystone() -> None:
    # Other identity modes (jwt, noauth) have no issuer spelling: the lower-cased roles.
    creds = Credentials("u", "p", frozenset({"member", "reader"})).policy_credentials()
    assert creds["roles"] == ["member", "reader"]
    assert creds["service_roles"] == [] and creds["service_user_id"] is None
