"""Differential against Nova's own code: the gateway's policy decisions equal Nova 34's.

A short run of tests/oracle/policy_differential.py (Nova's policy, context and
keystonemiddleware in Nova's virtualenv; remote checks through one decision point on
loopback; rules at and beyond the depth bound). The long run (100 000 decisions and more)
is ``python -m tests.oracle.policy_differential``; README "Policy" has its numbers.
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.files import MAX_RULE_DEPTH
from tests.conftest import skip_or_fail
from tests.oracle.policy_differential import run
from tests.property.test_nova_oracle import nova_python


def test_gateway_decides_as_nova(shared_dir: Path) -> None:
    python = nova_python()
    if not python.exists():
        skip_or_fail(f"Nova's virtualenv python not found at {python}: run realnova/setup.sh")
    tally = run(
        python,
        decisions=200,
        seed=7,
        every=8,
        deep=(MAX_RULE_DEPTH, MAX_RULE_DEPTH + 1, 1_000),
    )
    report = tally.report()
    assert tally.differences == [], report
    assert tally.remote_mismatches == [], report
    assert tally.remote_calls >= 50, report
    assert tally.by_phase["deep rules"] == 2 * 20  # only the rules within the bound decide
    # Beyond the bound the gateway refuses the file, naming the rule.
    assert tally.refused["levels deep"] >= 4, report
