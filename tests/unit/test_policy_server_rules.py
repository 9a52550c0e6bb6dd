"""Which rules read server facts (so that a decision on them needs current facts)."""

from __future__ import annotations

from pathlib import Path

from gateway.policy.load import load_policy


def write(directory: Path, text: str) -> Path:
    (directory / "policy.d").mkdir(parents=True, exist_ok=True)
    (directory / "policy.d" / "site.yaml").write_text(text)
    return directory


def test_nova_defaults_read_no_server_fact(tmp_path: Path) -> None:
    assert load_policy(tmp_path).server_rules == frozenset()


def test_a_rule_reading_server_keys_directly_or_through_a_named_rule(tmp_path: Path) -> None:
    loaded = load_policy(
        write(
            tmp_path,
            '"not_locked": "not \'True\':%(server.locked)s"\n'
            '"os_compute_api:os-pause-server:pause": "rule:project_member_or_admin and '
            'rule:not_locked"\n'
            '"os_compute_api:servers:reboot": "rule:project_member_or_admin and '
            "'HARD':%(action.type)s\"\n"
            '"os_compute_api:os-rescue": "role:%(server.flavor)s"\n',
        )
    )
    assert "os_compute_api:os-pause-server:pause" in loaded.server_rules
    assert "not_locked" in loaded.server_rules
    assert "os_compute_api:os-rescue" in loaded.server_rules
    assert "os_compute_api:servers:reboot" not in loaded.server_rules  # action.*, not server.*
    assert "os_compute_api:os-pause-server:unpause" not in loaded.server_rules
