"""`audit replay`: recorded requests re-decided under a candidate policy, changes printed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import cli as audit_cli
from tests.support.audit import Answer, audit_overrides, send, simulator, write_key
from tests.support.gateway import base_url, running_gateway

pytestmark = pytest.mark.filterwarnings("ignore:Invalid uuid")

PAUSE = "os_compute_api:os-pause-server:pause"
UNPAUSE = "os_compute_api:os-pause-server:unpause"
REBOOT = "os_compute_api:servers:reboot"


async def record_traffic(tmp_path: Path, record_format: str) -> tuple[Path, list[Answer]]:
    """Nova's defaults decide: alice pauses (allow), carol unpauses (deny), alice hard
    reboots (allow), a malformed reboot never reaches policy."""
    trail = tmp_path / f"trail-{record_format}"
    current = tmp_path / "current-policy"
    current.mkdir(exist_ok=True)
    overrides = audit_overrides(trail, write_key(tmp_path), file_format=record_format)
    overrides["policy.policy_dir"] = str(current)
    answers: list[Answer] = []
    async with simulator() as sim, running_gateway(sim.url, overrides) as listeners:
        base = base_url(listeners)
        action = f"/v2.1/servers/{sim.seeded('p1')}/action"
        answers.append(await send(base, "POST", action, body={"pause": None}))
        answers.append(
            await send(base, "POST", action, body={"unpause": None}, token="carol:p1:reader")
        )
        answers.append(await send(base, "POST", action, body={"unpause": None}))
        answers.append(await send(base, "POST", action, body={"reboot": {"type": "HARD"}}))
        answers.append(await send(base, "POST", action, body={"reboot": {"type": "COLD"}}))
    assert [answer.status for answer in answers] == [202, 403, 202, 202, 400]
    return trail, answers


def candidate(tmp_path: Path, rules: dict[str, str]) -> Path:
    directory = tmp_path / "candidate"
    directory.mkdir(exist_ok=True)
    (directory / "policy.yaml").write_text(
        "".join(f'"{name}": "{check}"\n' for name, check in rules.items())
    )
    return directory


def replay(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return audit_cli.main(["replay", *argv], out=out), out.getvalue()


@pytest.mark.parametrize("record_format", ["json", "cadf"])
async def test_replay_prints_the_decisions_that_would_change(
    tmp_path: Path, record_format: str
) -> None:
    trail, _ = await record_traffic(tmp_path, record_format)
    policy = candidate(
        tmp_path,
        {
            PAUSE: "role:admin",  # alice's pause would now be refused
            UNPAUSE: "role:reader",  # carol's unpause would now pass
            REBOOT: "'SOFT':%(action.type)s",  # a site rule on a body field
        },
    )
    code, out = replay("--policy", str(policy), str(trail))
    assert code == 1
    changes = out.strip().splitlines()
    summary = changes.pop()
    assert summary == "4 decision(s) replayed, 3 would change, 1 record(s) never reached policy"
    assert any("pause@2.1 " in line and f"allow -> deny ({PAUSE})" in line for line in changes)
    assert any("user=carol" in line and "deny -> allow" in line for line in changes)
    assert any("reboot@2.1" in line and f"allow -> deny ({REBOOT})" in line for line in changes)
    assert len(changes) == 3


async def test_replay_under_the_same_policy_changes_nothing(tmp_path: Path) -> None:
    trail, _ = await record_traffic(tmp_path, "json")
    code, out = replay("--policy", str(tmp_path / "current-policy"), str(trail))
    assert code == 0
    assert out.strip() == "4 decision(s) replayed, 0 would change, 1 record(s) never reached policy"


async def test_replay_json_output_and_dry_run_rules(tmp_path: Path) -> None:
    trail, _ = await record_traffic(tmp_path, "json")
    policy = candidate(tmp_path, {PAUSE: "role:admin"})
    out = io.StringIO()
    code = audit_cli.main(["replay", "--policy", str(policy), "--json", str(trail)], out=out)
    [change] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 1
    assert change | {"request_id": None, "time": None} == {
        "before": "allow", "after": "deny", "rule": PAUSE, "request_id": None, "time": None,
    }  # fmt: skip
    code, text = replay("--policy", str(policy), "--dry-run-rules", PAUSE, str(trail))
    assert code == 1 and f"allow -> would_deny ({PAUSE})" in text


def test_replay_refuses_a_broken_policy(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "policy.yaml").write_text('"os_compute_api:os-pause-server:pause": "role:admin or"\n')
    (tmp_path / "empty.jsonl").write_text("")
    code, _ = replay("--policy", str(broken), str(tmp_path / "empty.jsonl"))
    assert code == 2


def test_replay_skips_lines_that_are_not_records(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text('not json\n{"event": "chain_opened"}\n')
    policy = candidate(tmp_path, {})
    code, out = replay("--policy", str(policy), str(path))
    assert code == 0 and "0 decision(s) replayed" in out
    assert "not a JSON record, skipped" in capsys.readouterr().err
