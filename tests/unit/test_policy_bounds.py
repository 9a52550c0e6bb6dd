"""Hostile policy files: depth and size bounds, refused at start and at reload, counted.

A rule nested deeper than MAX_RULE_DEPTH (directly or through rule: references), one that
may evaluate more than MAX_RULE_CHECKS checks, an oversized or absurdly nested file: each
is refused with a message naming the rule (or the file), never a bare RecursionError.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_policy import _checks, _parser

from gateway.identity.credentials import Credentials
from gateway.policy import engine as engine_module
from gateway.policy.engine import PolicyEngine, PolicyLoadError, load_policy
from gateway.policy.files import (
    MAX_FILE_BYTES,
    MAX_RULE_CHECKS,
    MAX_RULE_DEPTH,
    MAX_YAML_NESTING,
    parser_nesting,
)
from tests.unit.test_policy import make_conf, write

PAUSE = "os_compute_api:os-pause-server:pause"
MEMBER = Credentials("u", "p1", frozenset({"member", "reader"}))
ADMIN = Credentials("a", "p9", frozenset({"admin"}))
TARGET = {"project_id": "p1", "user_id": "u"}


def nots(levels: int, leaf: str = "role:member") -> str:
    """A check string exactly ``levels`` checks deep."""
    return "not " * (levels - 1) + leaf


def chain(levels: int, top: str = PAUSE, leaf: str = "role:member") -> str:
    """YAML lines making ``top`` exactly ``levels`` deep through rule: references."""
    names = [f"link_{i}" for i in range(levels - 1)]
    lines = [f'"{top}": "rule:{names[0]}"']
    lines += [f'"{here}": "rule:{after}"' for here, after in itertools.pairwise(names)]
    lines.append(f'"{names[-1]}": "{leaf}"')
    return "\n".join(lines) + "\n"


def refusal(policy_dir: Path) -> str:
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    return str(caught.value)


@pytest.mark.parametrize("form", ["not", "chain"])
def test_depth_bound_is_exact(tmp_path: Path, form: str) -> None:
    for levels, loads in ((MAX_RULE_DEPTH, True), (MAX_RULE_DEPTH + 1, False)):
        text = f'"{PAUSE}": "{nots(levels)}"\n' if form == "not" else chain(levels)
        write(tmp_path / "policy.yaml", text)
        if loads:
            loaded = load_policy(tmp_path)
            expected = levels % 2 == 1  # an even number of 'not' leaves role:member as is
            member = {"roles": ["member"], "is_admin": False}
            assert loaded.predicates[PAUSE](TARGET, member, frozenset({"member"}), PAUSE) is (
                expected if form == "not" else True
            )
        else:
            problem = refusal(tmp_path)
            assert f"nested more than {MAX_RULE_DEPTH} levels deep" in problem
            assert "policy.yaml" in problem


def test_depth_counts_through_novas_own_rules(tmp_path: Path) -> None:
    # project_member_or_admin -> project_member_api -> role:member adds three levels.
    write(tmp_path / "policy.yaml", chain(MAX_RULE_DEPTH - 2, leaf="rule:project_member_or_admin"))
    problem = refusal(tmp_path)
    assert problem.startswith(f"policy.yaml: {PAUSE}: nested more than {MAX_RULE_DEPTH}")
    assert "rule:project_member_or_admin -> rule:project_member_api" in problem


@pytest.mark.parametrize(
    "text",
    [
        f'"{PAUSE}": "{nots(10_000)}"\n',
        chain(1_000),  # 10 000 too: tests/oracle/policy_differential.py (YAML is slow)
        f'"{PAUSE}": "{"(" * 10_000}role:member{")" * 10_000}"\n',
        f'"{PAUSE}": "{"not (" * 3_000}role:member{")" * 3_000}"\n',
    ],
    ids=["not", "chain", "parentheses", "not-parentheses"],
)
def test_ten_thousand_deep_is_refused_at_start_naming_the_rule(tmp_path: Path, text: str) -> None:
    write(tmp_path / "policy.yaml", text)
    with pytest.raises(PolicyLoadError) as caught:
        PolicyEngine(make_conf(tmp_path))
    problem = str(caught.value)
    assert "levels deep" in problem
    assert problem.startswith(
        ("policy.yaml: os_compute_api:os-pause-server:pause:", "policy.yaml: link_")
    )


def test_ten_thousand_deep_reload_keeps_the_policy_and_counts(tmp_path: Path) -> None:
    site = tmp_path / "policy.d" / "site.yaml"
    write(site, f'"{PAUSE}": "rule:context_is_admin"')
    engine = PolicyEngine(make_conf(tmp_path))
    for hostile in (f'"{PAUSE}": "{nots(10_000)}"\n', chain(1_000)):
        write(site, hostile)
        assert not engine.poll()
        assert not engine.last_reload_ok
        assert engine.last_error is not None and "levels deep" in engine.last_error
        assert not engine.decide(PAUSE, TARGET, MEMBER).allowed  # the last good policy
        assert engine.decide(PAUSE, TARGET, ADMIN).allowed
    assert engine.reload_failures == 2
    assert not engine.poll()  # the same broken files count once
    assert engine.reload_failures == 2


def test_evaluation_size_is_bounded(tmp_path: Path) -> None:
    # Each level refers twice to the next: 2**20 checks for one decision, in 20 levels.
    lines = [f'"fan_{i}": "rule:fan_{i + 1} or rule:fan_{i + 1}"' for i in range(20)]
    lines += ['"fan_20": "role:nobody"', f'"{PAUSE}": "rule:fan_0"']
    write(tmp_path / "policy.yaml", "\n".join(lines) + "\n")
    problem = refusal(tmp_path)
    assert f"may evaluate more than {MAX_RULE_CHECKS} checks" in problem
    assert "policy.yaml: fan_" in problem


def test_evaluation_size_bound_is_exact(tmp_path: Path) -> None:
    # A hundred references to a rule of a hundred checks: exactly MAX_RULE_CHECKS.
    assert MAX_RULE_CHECKS == 100 * 100
    hundred = " or ".join(f"'p{i}':%(project_id)s" for i in range(100))
    refs = " or ".join(["rule:hundred"] * 100)
    write(tmp_path / "policy.yaml", f'"hundred": "{hundred}"\n"{PAUSE}": "{refs}"\n')
    load_policy(tmp_path)
    write(tmp_path / "policy.yaml", f'"hundred": "{hundred}"\n"{PAUSE}": "{refs} or @"\n')
    assert f"policy.yaml: {PAUSE}: may evaluate more than" in refusal(tmp_path)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    padding = "# " + "x" * 1000 + "\n"
    write(tmp_path / "policy.yaml", padding * (MAX_FILE_BYTES // len(padding) + 1))
    assert f"policy.yaml: larger than {MAX_FILE_BYTES} bytes" in refusal(tmp_path)


def test_deeply_nested_yaml_is_refused_before_yaml_reads_it(tmp_path: Path) -> None:
    # PyYAML would scan this in quadratic time, then overflow the stack composing it.
    write(tmp_path / "policy.yaml", f'"{PAUSE}": {"[" * 100_000}{"]" * 100_000}\n')
    assert f"nested more than {MAX_YAML_NESTING} deep" in refusal(tmp_path)
    # Three levels are all the legacy list form needs.
    write(tmp_path / "policy.yaml", f'{{"{PAUSE}": [["role:admin"], ["role:member"]]}}\n')
    load_policy(tmp_path)


def test_checks_are_counted_before_parsing(tmp_path: Path) -> None:
    many = " or ".join(["@"] * (MAX_RULE_CHECKS + 1))
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "{many}"\n')
    assert f"holds more than {MAX_RULE_CHECKS} checks" in refusal(tmp_path)
    # The list form, a thousand aliases of a list of a thousand checks (10**6).
    aliased = "[" + ", ".join(["*row"] * 999) + "]"
    write(
        tmp_path / "policy.yaml",
        f'"row": &row [{", ".join(["role:a"] * 1000)}]\n"{PAUSE}": [*row, {aliased[1:]}\n',
    )
    assert f"{PAUSE}: holds more than {MAX_RULE_CHECKS} checks" in refusal(tmp_path)


@pytest.mark.parametrize(
    "failure", [RecursionError("deep"), MemoryError(), OSError("disk"), ValueError("odd")]
)
def test_reload_failure_of_any_kind_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    engine = PolicyEngine(make_conf(tmp_path))

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(engine_module, "load_policy", failing)
    write(tmp_path / "policy.yaml", f'"{PAUSE}": "!"')
    assert not engine.poll()
    assert (engine.reload_failures, engine.last_reload_ok) == (1, False)
    assert engine.last_error == repr(failure)
    assert not engine.poll()
    assert engine.reload_failures == 1
    assert engine.decide(PAUSE, TARGET, MEMBER).allowed  # Nova's defaults still decide


# -- the parser guard ----------------------------------------------------------------------


def _depth(check: _checks.BaseCheck) -> int:
    if isinstance(check, _checks.AndCheck | _checks.OrCheck):
        return 1 + max(_depth(part) for part in check.rules)
    if isinstance(check, _checks.NotCheck):
        return 1 + _depth(check.rule)
    return 1


_LEAVES = st.sampled_from(["@", "!", "role:a", "'x':%(k)s", "rule:r"])
_TEXTS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.builds("not {}".format, inner),
        st.builds("({} and {})".format, inner, inner),
        st.builds("({} or {})".format, inner, inner),
        st.builds("{} or {} and {}".format, inner, inner, inner),
        st.builds("(({}))".format, inner),
    ),
    max_leaves=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS)
def test_parser_nesting_bounds_the_parsed_depth(text: str) -> None:
    # The guard runs before oslo's recursive parser: it must never under-estimate.
    assert parser_nesting(text) >= _depth(_parser.parse_rule(text))
