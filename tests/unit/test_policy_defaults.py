"""Our policy defaults equal what Nova registers, for every rule the catalogue names.

The catalogue keeps no check strings of its own (it reads them from the registry), so the
registry is what is compared with Nova's registered defaults.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from oslo_policy.policy import DocumentedRuleDefault

from gateway.nova.catalogue import ACTIONS, SERVER_RESOURCE_ACTIONS, PolicyRule
from gateway.nova.policy_defaults import (
    ACTION_RULES,
    BASE_RULES,
    BY_NAME,
    DEFAULTS,
    OTHER_NOVA_RULES,
)
from gateway.policy.gateway_rules import GATEWAY_RULES
from tests.support.policy_corpus import BASE_RULES as NOVA_BASE_RULES


@pytest.fixture(scope="module")
def nova_rules(shared_dir: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((shared_dir / "nova" / "policy-defaults.json").read_text())
    return {row["name"]: row for row in rows}


def _referenced(check_str: str) -> set[str]:
    return set(re.findall(r"rule:([\w:.-]+)", check_str))


def test_the_catalogue_names_exactly_the_registered_action_rules() -> None:
    """No registered action rule is left unused, and the catalogue names no other."""
    specs = (*ACTIONS, *SERVER_RESOURCE_ACTIONS.values())
    named = {rule.name for spec in specs for rule in spec.policies}
    assert named == {rule.name for rule in ACTION_RULES}


def test_catalogue_rules_read_novas_defaults(nova_rules: dict[str, dict[str, Any]]) -> None:
    for spec in (*ACTIONS, *SERVER_RESOURCE_ACTIONS.values()):
        for rule in spec.policies:
            assert rule.default == nova_rules[rule.name]["check_str"], rule.name


def test_a_rule_without_a_registered_default_is_refused() -> None:
    with pytest.raises(ValueError, match="no registered default"):
        PolicyRule("os_compute_api:os-pause-server:pauses")


def test_gateway_rules_are_not_nova_rules(nova_rules: dict[str, dict[str, Any]]) -> None:
    assert not {rule.name for rule in GATEWAY_RULES} & (set(nova_rules) | set(BY_NAME))


def test_no_duplicate_names() -> None:
    names = [rule.name for rule in DEFAULTS]
    assert len(names) == len(set(names))


def test_base_rules_are_nova_base_rules(nova_rules: dict[str, dict[str, Any]]) -> None:
    expected = set(NOVA_BASE_RULES)  # written from nova/policies/base.py
    assert {rule.name for rule in BASE_RULES} == expected
    assert expected <= set(nova_rules)


def test_referenced_rules_are_defined() -> None:
    for rule in DEFAULTS:
        assert _referenced(rule.check_str) <= set(BY_NAME), rule.name
        if rule.deprecated_rule is not None:
            assert _referenced(rule.deprecated_rule.check_str) <= set(BY_NAME), rule.name


@pytest.mark.parametrize("rule", DEFAULTS, ids=lambda rule: rule.name)
def test_default_equals_nova(rule: Any, nova_rules: dict[str, dict[str, Any]]) -> None:
    nova = nova_rules[rule.name]
    assert rule.check_str == nova["check_str"]
    assert rule.scope_types == nova["scope_types"]
    assert rule.description == nova["description"]
    if isinstance(rule, DocumentedRuleDefault):
        ours = [(op["method"], op["path"]) for op in rule.operations]
        assert ours == [(op["method"], op["path"]) for op in nova["operations"]]
    else:
        assert "operations" not in nova  # Nova's base rules are plain RuleDefaults
    old = nova.get("deprecated_rule")
    if old is None:
        assert rule.deprecated_rule is None
    else:
        assert rule.deprecated_rule is not None
        assert (rule.deprecated_rule.name, rule.deprecated_rule.check_str) == (
            old["name"],
            old["check_str"],
        )


def test_other_nova_rules_cover_the_rest(nova_rules: dict[str, dict[str, Any]]) -> None:
    assert set(nova_rules) - set(BY_NAME) == OTHER_NOVA_RULES
