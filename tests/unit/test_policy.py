"""PolicyEngine: Nova's defaults, scope, dry run, reload, site rules on flat target keys."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg
from oslo_policy import policy as oslo

from gateway import config
from gateway.identity.credentials import Credentials
from gateway.nova.catalogue import BY_KEY, PolicyRule, When
from gateway.nova.policy_defaults import DEFAULTS
from gateway.nova.types import v
from gateway.policy.compiler import Compiler
from gateway.policy.engine import (
    Outcome,
    PolicyEngine,
    PolicyLoadError,
    Reason,
    build_target,
    load_policy,
    rules_for,
)
from tests.support import nova_policy
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "policies" / "policy.d" / "site-examples.yaml"

PAUSE = "os_compute_api:os-pause-server:pause"
MIGRATE = "os_compute_api:os-migrate-server:migrate"
EVACUATE = "os_compute_api:os-evacuate"
EXTRA_SPECS = "os_compute_api:servers:show:flavor-extra-specs"

MEMBER = Credentials("u-member", "p1", frozenset({"member", "reader"}))
READER = Credentials("u-reader", "p1", frozenset({"reader"}))
MANAGER = Credentials("u-manager", "p1", frozenset({"manager", "member", "reader"}))
ADMIN = Credentials("u-admin", "p-admin", frozenset({"admin", "member", "reader"}))
OTHER = Credentials("u-other", "p2", frozenset({"member", "reader"}))
NO_ROLE = Credentials("u-none", "p1", frozenset())
SYSTEM_ADMIN = Credentials("u-sys", None, frozenset({"admin", "reader"}), system_scope="all")
DOMAIN_ADMIN = Credentials("u-dom", None, frozenset({"admin"}), domain_id="d1")
PERSONAS = {
    "member": MEMBER,
    "reader": READER,
    "manager": MANAGER,
    "admin": ADMIN,
    "other": OTHER,
    "none": NO_ROLE,
    "system": SYSTEM_ADMIN,
    "domain": DOMAIN_ADMIN,
}
TARGET = {"project_id": "p1", "user_id": "u-member"}


def make_conf(policy_dir: Path, **policy_opts: Any) -> cfg.ConfigOpts:
    conf = config.make_conf()
    conf.set_override("policy_dir", str(policy_dir), group="policy")
    for name, value in policy_opts.items():
        conf.set_override(name, value, group="policy")
    return conf


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    # Some filesystems keep coarse mtimes; a distinct one makes the change visible.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def engine_at(tmp_path: Path) -> Callable[..., PolicyEngine]:
    def build(**policy_opts: Any) -> PolicyEngine:
        return PolicyEngine(make_conf(tmp_path, **policy_opts))

    return build


@pytest.fixture
def engine(engine_at: Callable[..., PolicyEngine]) -> PolicyEngine:
    return engine_at()


# -- Nova's defaults -------------------------------------------------------------------

DEFAULT_CELLS = [
    # rule, persona, allowed
    (PAUSE, "member", True),
    (PAUSE, "reader", False),
    (PAUSE, "manager", True),
    (PAUSE, "admin", True),
    (PAUSE, "other", False),
    (PAUSE, "none", False),
    (PAUSE, "system", False),
    (PAUSE, "domain", False),
    (MIGRATE, "member", False),
    (MIGRATE, "reader", False),
    (MIGRATE, "manager", True),
    (MIGRATE, "admin", True),
    (MIGRATE, "other", False),
    (MIGRATE, "system", False),
    (EVACUATE, "member", False),
    (EVACUATE, "manager", False),
    (EVACUATE, "admin", True),
    (EVACUATE, "other", False),
    (EVACUATE, "system", False),
    (EXTRA_SPECS, "reader", True),
    (EXTRA_SPECS, "member", True),
    (EXTRA_SPECS, "other", False),
    (EXTRA_SPECS, "none", False),
    (EXTRA_SPECS, "admin", True),
    ("compute:servers:resize:cross_cell", "admin", False),
]


@pytest.mark.parametrize(("rule", "persona", "allowed"), DEFAULT_CELLS)
def test_default_cells(engine: PolicyEngine, rule: str, persona: str, allowed: bool) -> None:
    verdict = engine.decide(rule, TARGET, PERSONAS[persona])
    assert verdict.allowed is allowed
    assert verdict.rule == rule
    assert verdict.outcome is (Outcome.ALLOWED if allowed else Outcome.DENIED)


def test_roles_compare_case_insensitively(engine: PolicyEngine) -> None:
    shouting = Credentials("u", "p1", frozenset({"MEMBER"}))
    assert engine.decide(PAUSE, TARGET, shouting).allowed


def test_scope_mismatch_is_denied_with_reason(engine: PolicyEngine) -> None:
    for creds in (SYSTEM_ADMIN, DOMAIN_ADMIN):
        verdict = engine.decide(PAUSE, TARGET, creds)
        assert verdict.outcome is Outcome.DENIED
        assert verdict.reason is Reason.SCOPE


def test_scope_is_always_enforced(engine_at: Callable[..., PolicyEngine]) -> None:
    # oslo.policy 6 (Nova 34) has no enforce_scope: a mode the gateway cannot offer.
    with pytest.raises(config.ConfigError, match="enforce_scope"):
        engine_at(enforce_scope=False)
    assert not engine_at(enforce_scope=True).decide(PAUSE, TARGET, SYSTEM_ADMIN).allowed


def test_verdict_has_no_truth_value(engine: PolicyEngine) -> None:
    with pytest.raises(TypeError):
        bool(engine.decide(PAUSE, TARGET, OTHER))


def test_is_admin_is_context_is_admin(engine: PolicyEngine, tmp_path: Path) -> None:
    assert engine.is_admin(ADMIN)
    assert engine.is_admin(SYSTEM_ADMIN)  # context_is_admin has no scope types
    assert not engine.is_admin(MEMBER)
    assert not engine.is_admin(MANAGER)
    # Nova evaluates it with the caller's own values as the target.
    write(
        tmp_path / "policy.yaml", '"context_is_admin": "role:admin and \'p-admin\':%(project_id)s"'
    )
    assert engine.poll()
    assert engine.is_admin(ADMIN)
    assert not engine.is_admin(SYSTEM_ADMIN)
    assert not engine.is_admin(Credentials("u", "p-admin", frozenset({"member"})))


def test_unknown_rule_is_denied(engine: PolicyEngine, tmp_path: Path) -> None:
    verdict = engine.decide("no:such:rule", TARGET, ADMIN)
    assert (verdict.outcome, verdict.reason) == (Outcome.DENIED, Reason.UNKNOWN_RULE)
    # oslo.policy's 'default' rule answers for names no rule defines.
    write(tmp_path / "policy.yaml", '"default": "role:admin"')
    engine.poll()
    assert engine.decide("no:such:rule", TARGET, ADMIN).allowed
    assert not engine.decide("no:such:rule", TARGET, MEMBER).allowed


def test_old_defaults_when_new_defaults_are_not_enforced(
    engine_at: Callable[..., PolicyEngine],
) -> None:
    # Nova's deprecated admin_or_owner is OR'd in: any role of the server's project will do.
    assert not engine_at().decide(PAUSE, TARGET, NO_ROLE).allowed
    assert engine_at(enforce_new_defaults=False).decide(PAUSE, TARGET, NO_ROLE).allowed


def test_deprecated_name_override_reaches_the_new_rule(
    engine: PolicyEngine, tmp_path: Path
) -> None:
    write(
        tmp_path / "policy.d" / "rescue.yaml", '"os_compute_api:os-rescue": "rule:context_is_admin"'
    )
    engine.poll()
    assert not engine.decide("os_compute_api:os-rescue", TARGET, MEMBER).allowed
    # oslo.policy behaviour: os-rescue is the deprecated name of os-unrescue.
    assert not engine.decide("os_compute_api:os-unrescue", TARGET, MEMBER).allowed
    assert engine.decide("os_compute_api:os-unrescue", TARGET, ADMIN).allowed


def test_evaluation_error_fails_closed(engine: PolicyEngine, tmp_path: Path) -> None:
    # project_id.x walks into the caller's project id string: oslo raises TypeError.
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "project_id.x:y or rule:context_is_admin"')
    engine.poll()
    verdict = engine.decide(PAUSE, TARGET, MEMBER)
    assert (verdict.outcome, verdict.reason) == (Outcome.DENIED, Reason.ERROR)
    with pytest.raises(TypeError):
        engine.loaded.enforcer.enforce(PAUSE, TARGET, MEMBER.policy_credentials())


# -- dry run ---------------------------------------------------------------------------


def test_dry_run_reports_would_deny(engine_at: Callable[..., PolicyEngine]) -> None:
    engine = engine_at(dry_run_rules=[PAUSE])
    verdict = engine.decide(PAUSE, TARGET, OTHER)
    assert verdict.outcome is Outcome.WOULD_DENY
    assert verdict.reason is Reason.POLICY
    assert verdict.allowed
    assert engine.decide(PAUSE, TARGET, MEMBER).outcome is Outcome.ALLOWED
    assert engine.decide(MIGRATE, TARGET, OTHER).outcome is Outcome.DENIED
    scoped = engine.decide(PAUSE, TARGET, SYSTEM_ADMIN)
    assert (scoped.outcome, scoped.reason) == (Outcome.WOULD_DENY, Reason.SCOPE)


def test_dry_run_list_follows_the_config(tmp_path: Path) -> None:
    conf = make_conf(tmp_path)
    engine = PolicyEngine(conf)
    assert engine.decide(PAUSE, TARGET, OTHER).outcome is Outcome.DENIED
    conf.set_override("dry_run_rules", [PAUSE], group="policy")
    engine.poll()  # the option is mutable; the poll picks it up, decisions never read conf
    assert engine.decide(PAUSE, TARGET, OTHER).outcome is Outcome.WOULD_DENY


def test_decide_all_picks_the_first_fatal_refusal(engine_at: Callable[..., PolicyEngine]) -> None:
    unlock = BY_KEY["unlock"]
    rules = rules_for(unlock, None, v("2.1"), "img", "admin", "p1", "p1")
    decision = engine_at().decide_all(rules, TARGET, MEMBER)
    assert [rule.name for rule, _ in decision.each] == [
        "os_compute_api:os-lock-server:unlock",
        "os_compute_api:os-lock-server:unlock:unlock_override",
    ]
    assert not decision.allowed
    assert decision.verdict.rule == "os_compute_api:os-lock-server:unlock:unlock_override"

    rebuild = BY_KEY["rebuild"]
    rules = rules_for(rebuild, {}, v("2.75"), "img", None, "p1", "p1", include_response_view=True)
    decision = engine_at().decide_all(rules, TARGET, MEMBER)
    assert decision.allowed  # the admin-only view rules refuse, but never decide
    assert decision.verdict.rule == "os_compute_api:servers:rebuild"
    assert any(not verdict.allowed for _, verdict in decision.each)

    dry = engine_at(dry_run_rules=["os_compute_api:os-lock-server:unlock:unlock_override"])
    unlock_rules = rules_for(unlock, None, v("2.1"), "img", "admin", "p1", "p1")
    decision = dry.decide_all(unlock_rules, TARGET, MEMBER)
    assert decision.allowed
    assert decision.verdict.outcome is Outcome.WOULD_DENY


def test_decide_all_gives_caller_rules_the_caller_target(engine: PolicyEngine) -> None:
    console = BY_KEY["os-getVNCConsole"]
    rules = rules_for(console, {"type": "novnc"}, v("2.1"), "img", None, "p2", "p1")
    server_target = {"project_id": "p1"}
    caller_target = {"project_id": "p2"}
    assert engine.decide_all(rules, server_target, OTHER, caller_target=caller_target).allowed
    assert not engine.decide_all(rules, server_target, OTHER).allowed


# -- reload ----------------------------------------------------------------------------


def test_reload_on_change(engine: PolicyEngine, tmp_path: Path) -> None:
    assert not engine.poll()  # nothing changed
    assert engine.decide(PAUSE, TARGET, MEMBER).allowed
    site = tmp_path / "policy.d" / "site.yaml"
    write(site, f'"{PAUSE}": "rule:context_is_admin"')
    assert engine.poll()
    assert not engine.decide(PAUSE, TARGET, MEMBER).allowed
    assert engine.reloads == 1
    assert not engine.poll()
    write(site, f'"{PAUSE}": "rule:project_reader_or_admin"')  # same size, new content
    assert engine.poll()
    assert engine.decide(PAUSE, TARGET, READER).allowed
    # policy.yaml is overridden by policy.d, which is read after it.
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "!"')
    assert engine.poll()
    assert engine.decide(PAUSE, TARGET, READER).allowed
    site.unlink()
    assert engine.poll()
    assert not engine.decide(PAUSE, TARGET, ADMIN).allowed
    (tmp_path / "policy.yaml").unlink()
    assert engine.poll()
    assert engine.decide(PAUSE, TARGET, MEMBER).allowed


def test_is_admin_follows_a_reload_for_the_same_credentials(
    engine: PolicyEngine, tmp_path: Path
) -> None:
    # The engine remembers a caller's subject per credentials object and policy
    # generation: a new policy must be asked again, for the very same object.
    assert engine.is_admin(ADMIN) and engine.is_admin(ADMIN)
    assert not engine.is_admin(MEMBER) and not engine.decide(MIGRATE, TARGET, MEMBER).allowed
    write(tmp_path / "policy.d" / "site.yaml", '"context_is_admin": "role:member"')
    assert engine.poll()
    assert engine.is_admin(MEMBER) and not engine.is_admin(READER)
    assert engine.decide(MIGRATE, TARGET, MEMBER).allowed  # rule:context_is_admin
    # An equal but distinct object is its own caller, decided alike.
    twin = Credentials("u-member", "p1", frozenset({"member", "reader"}))
    assert engine.is_admin(twin)


@pytest.mark.parametrize(
    "broken",
    [
        f'"{PAUSE}": [unclosed',  # YAML error
        f'"{PAUSE}": "role:admin and"',  # grammar
        f'"{PAUSE}": "admin"',  # not a check
        f'"{PAUSE}": "%(server.status)s:ACTIVE"',  # raises in oslo at every evaluation
        f'"{PAUSE}": "role:100%"',  # bad template
        f'"{PAUSE}": 5',
        '- "a list, not a mapping"',
        '"a": "rule:b"\n"b": "rule:a"',  # a cycle: oslo would recurse forever
    ],
)
def test_broken_file_keeps_last_good(engine: PolicyEngine, tmp_path: Path, broken: str) -> None:
    site = tmp_path / "policy.d" / "site.yaml"
    write(site, f'"{PAUSE}": "rule:context_is_admin"')
    assert engine.poll()
    assert engine.last_reload_ok
    write(site, broken)
    assert not engine.poll()
    assert engine.reload_failures == 1
    assert not engine.last_reload_ok
    assert engine.last_error
    # The last good policy still decides.
    assert not engine.decide(PAUSE, TARGET, MEMBER).allowed
    assert engine.decide(PAUSE, TARGET, ADMIN).allowed
    assert not engine.poll()  # the same broken content counts once
    assert engine.reload_failures == 1
    write(site, f'"{PAUSE}": "rule:project_reader_or_admin"')
    assert engine.poll()
    assert engine.last_reload_ok
    assert engine.reload_failures == 1
    assert engine.decide(PAUSE, TARGET, READER).allowed


def test_broken_file_at_start_refuses_to_start(tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "role:admin or"')
    with pytest.raises(PolicyLoadError) as caught:
        PolicyEngine(make_conf(tmp_path))
    assert "policy.yaml" in caught.value.problems[0]


def test_missing_policy_dir_means_nova_defaults(tmp_path: Path) -> None:
    engine = PolicyEngine(make_conf(tmp_path / "absent"))
    assert engine.decide(PAUSE, TARGET, MEMBER).allowed
    assert not engine.decide(PAUSE, TARGET, OTHER).allowed


def test_decide_never_touches_the_filesystem(
    engine: PolicyEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "rule:project_member_or_admin"')
    engine.poll()

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("file access during a decision")

    for name in ("stat", "lstat", "listdir", "scandir", "open"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(os.path, "getmtime", forbidden)
    for creds in PERSONAS.values():
        engine.decide(PAUSE, TARGET, creds)
        engine.is_admin(creds)
    # Stock oslo.policy (use_conf=True) would stat here; ours was frozen after loading.
    assert engine.loaded.enforcer.use_conf is False


async def test_maybe_reload_runs_off_the_loop(engine: PolicyEngine, tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "rule:context_is_admin"')
    assert await engine.maybe_reload()
    assert not engine.decide(PAUSE, TARGET, MEMBER).allowed


async def test_start_stop_reloads_in_the_background(
    engine_at: Callable[..., PolicyEngine], tmp_path: Path
) -> None:
    engine = engine_at(reload_interval=0.1)
    await engine.start()
    try:
        write(tmp_path / "policy.yaml", f'"{PAUSE}": "rule:context_is_admin"')
        await wait_until(lambda: engine.reloads, what="the reload")
        assert engine.reloads == 1
        assert not engine.decide(PAUSE, TARGET, MEMBER).allowed
        write(tmp_path / "policy.yaml", "{{{")
        await wait_until(lambda: engine.reload_failures, what="the failed reload")
        assert not engine.last_reload_ok
    finally:
        await engine.stop()
    assert engine._task is None
    await engine.stop()  # idempotent


# -- site rules on the flat target keys ------------------------------------------------


def _site(tmp_path: Path, rules: dict[str, str]) -> PolicyEngine:
    lines = "".join(f'"{name}": "{check}"\n' for name, check in rules.items())
    write(tmp_path / "policy.d" / "site.yaml", lines)
    return PolicyEngine(make_conf(tmp_path))


def _reboot_target(reboot_type: str, **server: Any) -> dict[str, Any]:
    return build_target(
        BY_KEY["reboot"],
        {"type": reboot_type},
        v("2.73"),
        project_id="p1",
        user_id="u-member",
        server=server,
    )


def test_flat_key_literal_on_the_left(tmp_path: Path) -> None:
    engine = _site(
        tmp_path,
        {
            "os_compute_api:servers:reboot": (
                "rule:project_member_or_admin and not 'HARD':%(action.type)s"
            ),
            "hard_reboot_requested": "'HARD':%(action.type)s",
            "server_is_active": "'ACTIVE':%(server.status)s",
            "server_is_locked": "True:%(server.locked)s",
            "no_task": "None:%(server.task_state)s",
            "at_2_73": "'2.73':%(microversion)s",
            "is_reboot": "'reboot':%(action)s",
        },
    )
    soft = _reboot_target("soft", status="ACTIVE", locked=True, task_state=None)
    hard = _reboot_target("hard", status="SHUTOFF", locked=False, task_state="rebooting")
    assert engine.decide("os_compute_api:servers:reboot", soft, MEMBER).allowed
    assert not engine.decide("os_compute_api:servers:reboot", hard, MEMBER).allowed  # 'hard' too
    assert engine.decide("hard_reboot_requested", hard, MEMBER).allowed
    assert engine.decide("server_is_active", soft, MEMBER).allowed
    assert not engine.decide("server_is_active", hard, MEMBER).allowed
    assert engine.decide("server_is_locked", soft, MEMBER).allowed
    assert not engine.decide("server_is_locked", hard, MEMBER).allowed
    assert engine.decide("no_task", soft, MEMBER).allowed
    assert not engine.decide("no_task", hard, MEMBER).allowed
    assert engine.decide("at_2_73", soft, MEMBER).allowed
    assert engine.decide("is_reboot", soft, MEMBER).allowed


def test_flat_key_missing_from_the_target(tmp_path: Path) -> None:
    engine = _site(
        tmp_path,
        {
            "positive": "'ACTIVE':%(server.status)s",
            "negated": "not 'ACTIVE':%(server.status)s",
            "present": "'':%(action.locked_reason).0s",
        },
    )
    bare = {"project_id": "p1"}
    assert not engine.decide("positive", bare, MEMBER).allowed
    assert engine.decide("negated", bare, MEMBER).allowed  # why site rules should allow-list
    assert not engine.decide("present", bare, MEMBER).allowed
    assert engine.decide("present", {"action.locked_reason": "maintenance"}, MEMBER).allowed


def test_key_first_form_does_not_work_in_oslo() -> None:
    # The documented pitfall, shown on a stock oslo.policy Enforcer: the left side is
    # literal_eval'd, never interpolated, so '%(server.status)s:ACTIVE' raises.
    enforcer = oslo.Enforcer(cfg.ConfigOpts(), use_conf=False)
    enforcer.set_rules(
        oslo.Rules.from_dict(
            {"key_first": "%(server.status)s:ACTIVE", "literal_first": "'ACTIVE':%(server.status)s"}
        )
    )
    target = {"server.status": "ACTIVE"}
    creds = {"roles": ["member"], "project_id": "p1"}
    assert enforcer.enforce("literal_first", target, creds)
    with pytest.raises(SyntaxError):
        enforcer.enforce("key_first", target, creds)


def test_build_target() -> None:
    target = build_target(
        BY_KEY["resize"],
        {"flavorRef": 6, "OS-DCF:diskConfig": "AUTO"},
        v("2.1"),
        project_id="p1",
        user_id=None,
        server={"status": "ACTIVE", "task_state": None, "unrelated": 1},
    )
    assert target == {
        "action": "resize",
        "microversion": "2.1",
        "project_id": "p1",
        "server.status": "ACTIVE",
        "server.task_state": None,
        "action.flavorRef": 6,
        "action.OS-DCF:diskConfig": "AUTO",
    }
    assert build_target(BY_KEY["pause"], None, v("2.1"), project_id=None, user_id=None) == {
        "action": "pause",
        "microversion": "2.1",
    }


# -- which rules apply -----------------------------------------------------------------


def _names(rules: list[PolicyRule]) -> list[str]:
    return [rule.name.rsplit(":", 1)[-1] for rule in rules]


def test_rules_for_trusted_certs() -> None:
    rebuild = BY_KEY["rebuild"]
    certs = {"imageRef": "i", "trusted_image_certificates": None}
    assert _names(rules_for(rebuild, certs, v("2.62"), "i", None, "p", "p")) == ["rebuild"]
    assert _names(rules_for(rebuild, certs, v("2.63"), "i", None, "p", "p")) == [
        "rebuild",
        "trusted_certs",
    ]
    assert _names(rules_for(rebuild, {"imageRef": "i"}, v("2.63"), "i", None, "p", "p")) == [
        "rebuild"
    ]


def test_rules_for_host() -> None:
    migrate, live = BY_KEY["migrate"], BY_KEY["os-migrateLive"]
    host = {"host": "cmp1"}
    assert _names(rules_for(migrate, host, v("2.55"), "i", None, "p", "p")) == ["migrate"]
    assert _names(rules_for(migrate, host, v("2.56"), "i", None, "p", "p")) == ["host"]
    assert _names(rules_for(migrate, None, v("2.56"), "i", None, "p", "p")) == ["migrate"]
    assert _names(rules_for(migrate, {"host": ""}, v("2.56"), "i", None, "p", "p")) == ["migrate"]
    body = {"host": None, "block_migration": "auto"}
    assert _names(rules_for(live, body, v("2.30"), "i", None, "p", "p")) == ["migrate_live"]
    body["host"] = "cmp1"
    assert _names(rules_for(live, body, v("2.30"), "i", None, "p", "p")) == ["host"]


def test_rules_for_unshelve_to_host() -> None:
    unshelve = BY_KEY["unshelve"]
    body = {"host": "cmp1"}
    assert _names(rules_for(unshelve, body, v("2.90"), "i", None, "p", "p")) == ["unshelve"]
    assert _names(rules_for(unshelve, body, v("2.91"), "i", None, "p", "p")) == [
        "unshelve",
        "unshelve_to_host",
    ]
    assert _names(rules_for(unshelve, None, v("2.91"), "i", None, "p", "p")) == ["unshelve"]


def test_rules_for_volume_backed() -> None:
    create_image = BY_KEY["createImage"]
    image = {"id": "img", "links": []}
    assert _names(rules_for(create_image, {}, v("2.1"), image, None, "p", "p")) == ["create_image"]
    assert _names(rules_for(create_image, {}, v("2.1"), "", None, "p", "p")) == [
        "create_image",
        "allow_volume_backed",
    ]


@pytest.mark.parametrize(
    ("locked_by", "caller", "override"),
    [
        (None, "p", False),
        ("owner", "p", False),
        ("admin", "p", True),
        ("admin", "other", False),
        ("owner", "other", True),
        ("owner", None, True),
    ],
)
def test_rules_for_unlock(locked_by: str | None, caller: str | None, override: bool) -> None:
    rules = rules_for(BY_KEY["unlock"], None, v("2.1"), "i", locked_by, caller, "p")
    assert ("unlock_override" in _names(rules)) is override


def test_rules_for_response_view_only_on_request() -> None:
    resize = BY_KEY["resize"]
    assert _names(rules_for(resize, {}, v("2.1"), "i", None, "p", "p")) == ["resize"]
    with_view = rules_for(resize, {}, v("2.1"), "i", None, "p", "p", include_response_view=True)
    assert [rule.when for rule in with_view] == [When.ALWAYS, When.RESPONSE_VIEW]


# -- the shipped site examples ---------------------------------------------------------


def _example_blocks() -> dict[str, str]:
    """Each example's rule lines, uncommented, keyed by the example's name."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in EXAMPLES.read_text().splitlines():
        marker = re.match(r"# \[example: ([\w-]+)\]", line)
        if marker:
            current = marker.group(1)
            blocks[current] = []
        elif current and line.startswith('#"'):
            blocks[current].append(line[1:])
    return {name: "\n".join(lines) + "\n" for name, lines in blocks.items()}


@pytest.fixture
def with_example(tmp_path: Path) -> Iterator[Callable[[str], PolicyEngine]]:
    def build(name: str) -> PolicyEngine:
        write(tmp_path / "policy.d" / "site.yaml", _example_blocks()[name])
        return PolicyEngine(make_conf(tmp_path))

    yield build


@pytest.fixture
def defaults(tmp_path: Path) -> PolicyEngine:
    return PolicyEngine(make_conf(tmp_path / "no-policy-files"))


def test_examples_are_all_commented(tmp_path: Path) -> None:
    assert set(_example_blocks()) == {
        "no-hard-reboot",
        "no-large-flavor-resize",
        "admin-only-rescue",
        "lock-needs-reason",
    }
    write(tmp_path / "policy.d" / "site-examples.yaml", EXAMPLES.read_text())
    engine = PolicyEngine(make_conf(tmp_path))
    assert not engine.loaded.enforcer.file_rules


def test_example_no_hard_reboot(
    with_example: Callable[[str], PolicyEngine], defaults: PolicyEngine
) -> None:
    reboot = "os_compute_api:servers:reboot"

    def target(kind: str, project: str) -> dict[str, Any]:
        return build_target(
            BY_KEY["reboot"], {"type": kind}, v("2.1"), project_id=project, user_id="u"
        )

    prod = Credentials("u", "prod-project-id", frozenset({"member"}))
    assert defaults.decide(reboot, target("HARD", "prod-project-id"), prod).allowed
    engine = with_example("no-hard-reboot")
    for spelling in ("HARD", "Hard", "hard"):
        assert not engine.decide(reboot, target(spelling, "prod-project-id"), prod).allowed
    assert engine.decide(reboot, target("SOFT", "prod-project-id"), prod).allowed
    assert engine.decide(reboot, target("HARD", "p1"), MEMBER).allowed  # other projects
    assert engine.decide(reboot, target("HARD", "prod-project-id"), ADMIN).allowed
    assert not engine.decide(reboot, target("SOFT", "prod-project-id"), OTHER).allowed


def test_example_no_large_flavor_resize(
    with_example: Callable[[str], PolicyEngine], defaults: PolicyEngine
) -> None:
    resize = "os_compute_api:servers:resize"

    def target(flavor: Any) -> dict[str, Any]:
        return build_target(
            BY_KEY["resize"], {"flavorRef": flavor}, v("2.1"), project_id="p1", user_id="u"
        )

    assert defaults.decide(resize, target("m1.xlarge"), MEMBER).allowed
    engine = with_example("no-large-flavor-resize")
    assert not engine.decide(resize, target("m1.xlarge"), MEMBER).allowed
    assert not engine.decide(resize, target(6), MEMBER).allowed  # integer flavorRef
    assert not engine.decide(resize, target("6"), MEMBER).allowed
    assert engine.decide(resize, target("m1.small"), MEMBER).allowed
    assert engine.decide(resize, target("m1.xlarge"), ADMIN).allowed
    assert not engine.decide(resize, target("m1.small"), OTHER).allowed


def test_example_admin_only_rescue(
    with_example: Callable[[str], PolicyEngine], defaults: PolicyEngine
) -> None:
    rescue, unrescue = "os_compute_api:os-rescue", "os_compute_api:os-unrescue"
    assert defaults.decide(rescue, TARGET, MEMBER).allowed
    engine = with_example("admin-only-rescue")
    assert not engine.decide(rescue, TARGET, MEMBER).allowed
    assert engine.decide(rescue, TARGET, ADMIN).allowed
    assert engine.decide(unrescue, TARGET, MEMBER).allowed  # the shielding second line


def test_example_lock_needs_reason(
    with_example: Callable[[str], PolicyEngine], defaults: PolicyEngine
) -> None:
    lock = "os_compute_api:os-lock-server:lock"

    def target(body: Any, version: str = "2.73") -> dict[str, Any]:
        return build_target(BY_KEY["lock"], body, v(version), project_id="p1", user_id="u")

    assert defaults.decide(lock, target(None), MEMBER).allowed
    engine = with_example("lock-needs-reason")
    assert engine.decide(lock, target({"locked_reason": "disk swap"}), MEMBER).allowed
    assert not engine.decide(lock, target(None), MEMBER).allowed
    assert not engine.decide(lock, target({}), MEMBER).allowed
    assert not engine.decide(lock, target(None, "2.1"), ADMIN).allowed
    assert not engine.decide(lock, target({"locked_reason": "x"}), OTHER).allowed


# -- the compiled rules decide exactly as oslo.policy does -------------------------------


def _environ(creds: Credentials) -> dict[str, str]:
    """The headers keystonemiddleware would hand Nova for this caller."""
    environ = {
        "HTTP_X_USER_ID": creds.user_id,
        "HTTP_X_ROLES": ",".join(sorted(creds.roles)),
        "HTTP_X_IS_ADMIN_PROJECT": str(creds.is_admin_project),
    }
    for header, value in (
        ("HTTP_X_PROJECT_ID", creds.project_id),
        ("HTTP_X_DOMAIN_ID", creds.domain_id),
        ("HTTP_OPENSTACK_SYSTEM_SCOPE", creds.system_scope),
    ):
        if value is not None:
            environ[header] = value
    return environ


@pytest.fixture(scope="module")
def nova_rules(shared_dir: Path) -> list[oslo.RuleDefault]:
    return nova_policy.nova_defaults(shared_dir)


@pytest.mark.parametrize("new_defaults", [True, False])
def test_defaults_decide_as_nova(
    tmp_path: Path, new_defaults: bool, nova_rules: list[oslo.RuleDefault]
) -> None:
    engine = PolicyEngine(make_conf(tmp_path, enforce_new_defaults=new_defaults))
    nova = nova_policy.nova_enforcer(tmp_path, nova_rules, enforce_new_defaults=new_defaults)
    targets = [TARGET, {"project_id": "p2"}, {"project_id": "p-admin"}, {}]
    for rule in DEFAULTS:
        for creds in PERSONAS.values():
            for target in targets:
                ours = engine.decide(rule.name, target, creds).allowed
                theirs = nova_policy.nova_decides(nova, _environ(creds), rule.name, target)
                assert ours is (theirs == nova_policy.ALLOW), (rule.name, creds, theirs)


def test_site_rules_decide_as_nova(tmp_path: Path, nova_rules: list[oslo.RuleDefault]) -> None:
    write(tmp_path / "policy.d" / "site.yaml", "".join(_example_blocks().values()))
    engine = PolicyEngine(make_conf(tmp_path))
    nova = nova_policy.nova_enforcer(tmp_path, nova_rules)
    nova_names = {rule.name for rule in nova_rules}
    for key in ("reboot", "resize", "rescue", "lock"):
        for body in (None, {"type": "HARD"}, {"flavorRef": 6}, {"locked_reason": "r"}):
            for project in ("p1", "prod-project-id"):
                target = build_target(BY_KEY[key], body, v("2.73"), project_id=project, user_id="u")
                for rule in engine.loaded.enforcer.file_rules:
                    assert rule in nova_names
                    for creds in PERSONAS.values():
                        ours = engine.decide(rule, target, creds).allowed
                        theirs = nova_policy.nova_decides(nova, _environ(creds), rule, target)
                        assert ours is (theirs == nova_policy.ALLOW), rule


_KEYS = st.sampled_from(["project_id", "server.status", "action.type", "missing"])
_WORDS = st.sampled_from(["p1", "p2", "ACTIVE", "HARD", "True", "None", "admin", "member"])


def _leaf() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            ["@", "!", "rule:r0", "rule:r1", "rule:undefined", "is_admin:True", "is_admin:1"]
        ),
        st.builds("role:{}".format, _WORDS),
        st.builds("role:%({})s".format, _KEYS),
        st.builds("'{}':%({})s".format, _WORDS, _KEYS),
        st.builds("project_id:%({})s".format, _KEYS),
        st.builds("project_id:{}".format, _WORDS),
        st.builds("roles:{}".format, _WORDS),
        st.builds("{}:%({})s".format, st.sampled_from(["True", "1", "None"]), _KEYS),
    )


_CHECKS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.builds("not {}".format, _leaf()),
        st.builds("({} and {})".format, inner, inner),
        st.builds("({} or {})".format, inner, inner),
        st.builds("({} or {} and {})".format, inner, inner, inner),
    ),
    max_leaves=8,
)
_TARGETS = st.dictionaries(_KEYS.filter(lambda key: key != "missing"), _WORDS)
_CREDS = st.fixed_dictionaries(
    {
        "roles": st.lists(st.sampled_from(["admin", "Member", "reader", "HARD"]), max_size=3),
        "project_id": _WORDS,
        # Nova's credentials always hold is_admin (None while context_is_admin is checked).
        "is_admin": st.sampled_from([True, False, None]),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    top=_CHECKS,
    r0=_CHECKS,
    r1=st.sampled_from(["@", "!", "role:admin"]),
    target=_TARGETS,
    creds=_CREDS,
)
def test_compiled_equals_oslo(
    top: str, r0: str, r1: str, target: dict[str, str], creds: dict[str, Any]
) -> None:
    # r0 may refer to itself through top; only acyclic sets are compared (cycles are refused).
    texts = {"top": top, "r0": r0, "r1": r1}
    enforcer = oslo.Enforcer(cfg.ConfigOpts(), use_conf=False)
    enforcer.set_rules(oslo.Rules.from_dict(texts), use_conf=False)
    compiler = Compiler(enforcer.rules, enforcer)
    try:
        pred = compiler.rule("top")
    except PolicyLoadError:
        return
    assert pred is not None
    roles = frozenset(role.lower() for role in creds["roles"])
    expected = bool(enforcer.enforce("top", target, dict(creds)))
    assert pred(target, dict(creds), roles, "top") is expected, texts


def test_load_policy_reports_every_problem(tmp_path: Path) -> None:
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "admin"\n"{MIGRATE}": "role:a or"')
    write(tmp_path / "policy.d" / "b.yaml", "{{")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(tmp_path)
    assert len(caught.value.problems) == 3


def test_files_changing_while_loaded_are_retried(
    engine: PolicyEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.policy.engine as module
    from gateway.policy.load import ChangedWhileLoading

    real = module.load_policy

    def racing(*args: Any, **kwargs: Any) -> Any:
        raise ChangedWhileLoading()

    write(tmp_path / "policy.yaml", f'"{PAUSE}": "rule:context_is_admin"')
    monkeypatch.setattr(module, "load_policy", racing)
    assert not engine.poll()
    assert (engine.reload_failures, engine.last_reload_ok) == (0, True)
    monkeypatch.setattr(module, "load_policy", real)
    assert engine.poll()  # not remembered as seen: read again on the next poll
    assert not engine.decide(PAUSE, TARGET, MEMBER).allowed
