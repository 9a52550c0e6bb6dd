"""novasim's own action tables against ../shared/nova/nova_actions.json (read from Nova's
source): the 41 keys, each key's microversions and schema steps, its lock and state
checks and the rules that can refuse it. The schemas themselves are compared with Nova's
own decorators in tests/property/test_nova_oracle.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from novasim.action_schemas import SCHEMAS
from novasim.action_table import ACTIONS, Allowed, Lock
from novasim.effects import EFFECTS, UNSHELVE_TO_HOST
from novasim.microversion import NEWEST, OLDEST, Version, parse

Action = dict[str, Any]


@pytest.fixture(scope="module")
def nova_actions(shared_dir: Path) -> dict[str, Action]:
    document = json.loads((shared_dir / "nova" / "nova_actions.json").read_text())
    return {action["key"]: action for action in document["actions"]}


def _version(text: str | None, default: Version) -> Version:
    parsed = parse(text) if text else None
    return parsed or default


def test_every_key_nova_registers_and_no_other(nova_actions: dict[str, Action]) -> None:
    assert len(nova_actions) == 41
    assert set(ACTIONS) == set(nova_actions) == set(SCHEMAS)
    for key, gates in ACTIONS.items():
        # A removed action answers before any effect; every other one has an effect.
        assert (gates.removed is None) == (key in EFFECTS), key
    assert set(EFFECTS) <= set(ACTIONS)


def test_versions_of_each_action(nova_actions: dict[str, Action]) -> None:
    for key, gates in ACTIONS.items():
        action = nova_actions[key]
        assert gates.since == _version(action["min_version"], OLDEST), key
        assert gates.until == _version(action["max_version"], NEWEST), key


def _schema_steps(key: str) -> set[Version]:
    """Where the validation of a key changes: each registration's start, and where an
    action starts or goes on without a registered schema (nothing is then checked)."""
    gates, rows = ACTIONS[key], SCHEMAS[key]
    steps = {row.since for row in rows}
    if rows[0].since > gates.since:
        steps.add(gates.since)
    last = rows[-1].until
    if last is not None and last < gates.until:
        steps.add(last.next())
    return steps


def test_schema_steps_of_each_action(nova_actions: dict[str, Action]) -> None:
    for key in ACTIONS:
        ranges = [row["range"] for row in nova_actions[key]["schemas"]]
        documented = {
            _version(text.rstrip("+").split("-")[0], OLDEST) if text != "all" else OLDEST
            for text in ranges
        }
        assert _schema_steps(key) == documented, key


def _vm_states(allowed: Allowed | None) -> list[str] | None:
    return sorted(allowed.vm_states) if allowed and allowed.vm_states is not None else None


def _task_states(allowed: Allowed | None) -> list[str | None] | None:
    if allowed is None or allowed.task_states is None:
        return None
    return sorted(allowed.task_states, key=lambda task: task or "")


def test_lock_and_state_checks(nova_actions: dict[str, Action]) -> None:
    for key, gates in ACTIONS.items():
        action = nova_actions[key]
        assert (gates.lock is not Lock.UNCHECKED) == action["lock_checked"], key
        vm, task = action["allowed_vm_states"], action["allowed_task_states"]
        if isinstance(vm, dict):  # reboot: by the (upper-cased) type
            for kind in vm:
                allowed = gates.allowed({"type": kind.lower()})
                assert _vm_states(allowed) == sorted(vm[kind]), (key, kind)
                assert _task_states(allowed) == sorted(task[kind], key=lambda t: t or ""), key
            continue
        allowed = gates.allowed({})
        assert _vm_states(allowed) == (sorted(vm) if vm is not None else None), key
        if isinstance(task, list):
            assert _task_states(allowed) == sorted(task, key=lambda t: t or ""), key
        elif isinstance(task, str) and "except" in task:  # consoles: deleting, migrating
            assert allowed is not None and allowed.rejected_tasks == {"deleting", "migrating"}
        else:
            assert allowed is None or allowed.task_states is None, key
        launched = bool(action["must_have_launched"])
        assert (allowed is not None and allowed.must_have_launched) == launched, key


def test_rules_that_can_refuse(nova_actions: dict[str, Action]) -> None:
    """Every rule Nova may refuse an action with, with its default; no rule besides."""
    for key, gates in ACTIONS.items():
        documented = {
            (rule["name"], rule["default"])
            for rule in nova_actions[key]["policies"]
            if "non-fatal" not in rule["when"] and "non-fatally" not in rule["when"]
        }
        ours = {(rule.name, rule.check) for rule in gates.rules}
        if key == "unshelve":  # asked by the effect, inside the compute API
            ours.add((UNSHELVE_TO_HOST, "rule:context_is_admin"))
        assert ours == documented, key
