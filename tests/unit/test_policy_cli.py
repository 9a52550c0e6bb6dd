"""``nova-gateway policy check|sample|lint``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from oslo_policy.policy import parse_file_contents

from gateway.nova.policy_defaults import DEFAULTS
from gateway.policy.cli import main, sample_text

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICIES = REPO_ROOT / "policies"


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def empty_dir(tmp_path: Path) -> Path:
    (tmp_path / "policy.d").mkdir()
    return tmp_path


def site(policy_dir: Path, text: str, name: str = "site.yaml") -> Path:
    path = policy_dir / "policy.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return policy_dir


# -- sample ----------------------------------------------------------------------------


def test_sample_lists_every_default_commented() -> None:
    code, text = run("sample")
    assert code == 0
    assert text == sample_text()
    assert parse_file_contents(text) == {}  # everything is a comment
    for rule in DEFAULTS:
        assert f'#"{rule.name}": "{rule.check_str}"' in text
    assert "# POST  /servers/{server_id}/action (reboot)" in text
    assert "# Intended scope(s): project" in text


def test_shipped_policy_yaml_is_the_sample() -> None:
    assert (POLICIES / "policy.yaml").read_text(encoding="utf-8") == sample_text()


def test_sample_output_file(tmp_path: Path) -> None:
    target = tmp_path / "policy.yaml"
    assert run("sample", "--output", str(target)) == (0, "")
    assert target.read_text(encoding="utf-8") == sample_text()


# -- check -----------------------------------------------------------------------------


def test_check_member_pause_allowed(empty_dir: Path) -> None:
    code, out = run(
        "check", "--policy-dir", str(empty_dir), "--project", "p1", "--roles", "member",
        "--action", "pause",
    )  # fmt: skip
    assert code == 0
    assert "ALLOW" in out
    assert "decided by: os_compute_api:os-pause-server:pause -> allowed" in out


def test_check_other_project_denied(empty_dir: Path) -> None:
    code, out = run(
        "check", "--policy-dir", str(empty_dir), "--project", "p2", "--roles", "member",
        "--server-project", "p1", "--action", "pause",
    )  # fmt: skip
    assert code == 1
    assert "DENY (policy)" in out
    assert "-> denied" in out


def test_check_system_scope_denied_by_scope(empty_dir: Path) -> None:
    code, out = run(
        "check", "--policy-dir", str(empty_dir), "--system-scope", "all", "--roles", "admin",
        "--server-project", "p1", "--action", "os-resetState", "--body", '{"state": "active"}',
    )  # fmt: skip
    assert code == 1
    assert "DENY (scope)" in out
    assert "context_is_admin: yes" in out


def test_check_unlock_of_admin_lock_needs_override(empty_dir: Path) -> None:
    base = ["check", "--policy-dir", str(empty_dir), "--project", "p1", "--action", "unlock"]
    code, out = run(*base, "--roles", "member", "--locked-by", "admin")
    assert code == 1
    assert "decided by: os_compute_api:os-lock-server:unlock:unlock_override -> denied" in out
    code, out = run(*base, "--roles", "member", "--locked-by", "owner")
    assert code == 0
    assert "unlock_override" not in out


def test_check_conditions_pick_the_rules(empty_dir: Path) -> None:
    base = ["check", "--policy-dir", str(empty_dir), "--project", "p1", "--roles", "member"]
    code, out = run(*base, "--action", "createImage", "--body", '{"name": "x"}', "--volume-backed")
    assert code == 0
    assert "create_image:allow_volume_backed" in out
    code, out = run(*base, "--action", "createImage", "--body", '{"name": "x"}')
    assert "allow_volume_backed" not in out
    code, out = run(
        *base, "--action", "migrate", "--microversion", "2.56", "--body", '{"host": "cmp1"}'
    )
    assert code == 1
    assert "migrate:host" in out
    code, out = run(
        *base, "--action", "migrate", "--microversion", "2.55", "--body", '{"host": "h"}'
    )
    assert "migrate:host" not in out
    code, out = run(
        *base, "--action", "rebuild", "--microversion", "2.75",
        "--body", '{"rebuild": {"imageRef": "i", "trusted_image_certificates": null}}',
    )  # fmt: skip
    assert code == 0  # the admin-only response-view rules are shown but never decide
    assert "rebuild:trusted_certs" in out
    assert "[response view only: never refuses]" in out
    assert "decided by: os_compute_api:servers:rebuild:trusted_certs -> allowed" in out


def test_check_site_rule_on_body_and_server(tmp_path: Path) -> None:
    site(
        tmp_path,
        '"os_compute_api:servers:reboot": '
        "\"rule:project_member_or_admin and not 'HARD':%(action.type)s\"\n"
        '"os_compute_api:os-pause-server:pause": '
        "\"rule:project_member_or_admin and 'ACTIVE':%(server.status)s\"\n",
    )
    base = ["check", "--policy-dir", str(tmp_path), "--project", "p1", "--roles", "member"]
    assert run(*base, "--action", "reboot", "--body", '{"type": "hard"}')[0] == 1
    assert run(*base, "--action", "reboot", "--body", '{"type": "SOFT"}')[0] == 0
    assert run(*base, "--action", "pause", "--server-status", "ACTIVE")[0] == 0
    code, out = run(*base, "--action", "pause", "--server-status", "PAUSED", "-v")
    assert code == 1
    assert '"server.status": "PAUSED"' in out


def test_check_dry_run_from_config_file(empty_dir: Path, tmp_path: Path) -> None:
    conf = tmp_path / "gateway.conf"
    conf.write_text(
        f"[policy]\npolicy_dir = {empty_dir}\n"
        "dry_run_rules = os_compute_api:os-pause-server:pause\n"
    )
    code, out = run(
        "check", "--config-file", str(conf), "--project", "p2", "--roles", "member",
        "--server-project", "p1", "--action", "pause",
    )  # fmt: skip
    assert code == 0
    assert "WOULD DENY (policy)" in out
    assert "allowed (dry run: would deny)" in out


def test_check_removed_action_has_no_rule(empty_dir: Path) -> None:
    code, out = run("check", "--policy-dir", str(empty_dir), "--action", "resetNetwork")
    assert code == 0
    assert "Nova answers 410" in out


@pytest.mark.parametrize(
    "extra",
    [
        ["--action", "nope"],
        ["--action", "pause", "--body", "{not json"],
        ["--action", "pause", "--microversion", "2.x"],
        ["--action", "addFixedIp", "--microversion", "2.44"],
        [],  # --action is required
    ],
)
def test_check_usage_errors(empty_dir: Path, extra: list[str]) -> None:
    code, _ = run("check", "--policy-dir", str(empty_dir), *extra)
    assert code == 2


def test_check_broken_policy_is_a_usage_error(tmp_path: Path) -> None:
    site(tmp_path, '"os_compute_api:os-pause-server:pause": "role:admin or"')
    code, _ = run("check", "--policy-dir", str(tmp_path), "--action", "pause")
    assert code == 2


def test_check_refuses_a_mode_nova_cannot_run(
    empty_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "gateway.conf"
    conf.write_text(f"[policy]\npolicy_dir = {empty_dir}\nenforce_scope = false\n")
    for command in ("check", "lint"):
        extra = ["--action", "pause"] if command == "check" else []
        assert run(command, "--config-file", str(conf), *extra)[0] == 2
        assert "enforce_scope: false is not supported" in capsys.readouterr().err


def test_check_is_admin_and_role_spelling(tmp_path: Path) -> None:
    site(
        tmp_path,
        '"os_compute_api:os-pause-server:pause": "roles:Member and not is_admin:True"',
    )
    base = ("check", "--policy-dir", str(tmp_path), "--project", "p1", "--action", "pause")
    assert run(*base, "--roles", "Member")[0] == 0
    assert run(*base, "--roles", "member")[0] == 1  # a generic check compares as written
    code, out = run(*base, "--roles", "Member,admin")
    assert code == 1 and "context_is_admin: yes" in out


# -- lint ------------------------------------------------------------------------------


def test_lint_shipped_policies_are_clean() -> None:
    code, out = run("lint", "--policy-dir", str(POLICIES))
    assert code == 0, out
    assert out.startswith("0 error(s)")


def test_lint_uncommented_examples_are_clean(tmp_path: Path) -> None:
    text = (POLICIES / "policy.d" / "site-examples.yaml").read_text()
    uncommented = "\n".join(
        line[1:] if line.startswith('#"') else line for line in text.splitlines()
    )
    code, out = run("lint", "--policy-dir", str(site(tmp_path, uncommented)))
    assert code == 0, out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"os_compute_api:os-pause-server:pausee": "@"', "unknown rule name"),
        ('"os_compute_api:os-pause-server:pause": "role:admin and"', "cannot parse"),
        ('"os_compute_api:os-pause-server:pause": "admin"', "is not a check"),
        ('"os_compute_api:os-pause-server:pause": "!"', "can never match: '!'"),
        ('"os_compute_api:os-pause-server:pause": "role:"', "'role:' names no role"),
        ('"os_compute_api:os-pause-server:pause": "rule:nothing"', "rule:nothing is not defined"),
        ('"os_compute_api:os-pause-server:pause": "role:a and !"', "can never match"),
        ('"os_compute_api:os-pause-server:pause":', "empty check string"),
        (
            '"os_compute_api:os-pause-server:pause": "%(server.status)s:ACTIVE"',
            "put the literal first",
        ),
        ('"os_compute_api:os-pause-server:pause": "\'ACTIVE\':%(server.state)s"', "never set"),
        ('"os_compute_api:os-pause-server:pause": [unclosed', "YAML error"),
        ('"a": "rule:b"\n"b": "rule:a"', "cycle"),
        (
            '"os_compute_api:os-pause-server:pause": "role:admin or rule:os_compute_api:'
            'os-keypairs:index"',
            "rule:os_compute_api:os-keypairs:index is Nova's rule of an API the gateway",
        ),
    ],
)
def test_lint_errors(tmp_path: Path, text: str, message: str) -> None:
    code, out = run("lint", "--policy-dir", str(site(tmp_path, text)))
    assert code == 1
    assert message in out
    assert "error:" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"os_compute_api:servers:create": "role:admin"', "another API: the gateway ignores it"),
        ('"os_compute_api:os-pause-server:pause": "rule:project_member_or_admin"', "same as Nova"),
        ('"os_compute_api:os-deferred-delete": "role:admin"', "deprecated name of"),
        ('"os_compute_api:os-rescue": "role:admin"', "os_compute_api:os-unrescue"),
        ('"compute:servers:resize:cross_cell": "!"', "same as Nova"),  # Nova's own '!'
        (
            '"admins": "role:admin"\n"os_compute_api:os-pause-server:pause": "rule:admins"',
            "0 error(s), 0 note(s)",
        ),
    ],
)
def test_lint_notes_do_not_fail(tmp_path: Path, text: str, message: str) -> None:
    code, out = run("lint", "--policy-dir", str(site(tmp_path, text)))
    assert code == 0, out
    assert message in out


def test_lint_reports_later_file_overrides(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text('"os_compute_api:os-pause-server:pause": "role:a"')
    site(tmp_path, '"os_compute_api:os-pause-server:pause": "role:b"', "z.yaml")
    code, out = run("lint", "--policy-dir", str(tmp_path))
    assert code == 0
    assert "policy.d/z.yaml: os_compute_api:os-pause-server:pause: note: overrides" in out


def test_lint_missing_dir(tmp_path: Path) -> None:
    assert run("lint", "--policy-dir", str(tmp_path / "absent"))[0] == 1
