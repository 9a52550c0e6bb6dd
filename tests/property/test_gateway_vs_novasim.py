"""The gateway's catalogue against novasim's own tables, in process: for every action key,
at every boundary microversion of either table, valid bodies, every certain mutation and
odd values drawn from novasim's schemas get the same verdict and message from both.

The two implementations share no code (novasim imports nothing of the gateway), so a
version range or schema changed in one of them makes this fail without the real Nova:
the mutation check of the catalogue. tests/integration/test_action_sweep.py asks the
same over HTTP, through the whole gateway.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.nova.catalogue import BY_KEY
from gateway.nova.faults import NOT_FOUND, Fault
from gateway.nova.types import Version
from gateway.nova.validation import validate_action
from novasim import faults as sim_faults
from novasim import microversion as sim_microversion
from novasim.action_table import ACTIONS
from novasim.actions import admit
from tests.oracle.sweep import SweepCase, thorough_cases

VALID_BODIES_PER_RANGE = 3
Verdict = tuple[int | None, str]


def gateway_verdict(case: SweepCase) -> Verdict:
    spec, version = BY_KEY[case.key], Version.parse(case.version)
    if not spec.supports(version):
        return 404, NOT_FOUND  # the pipeline's version gate, before validation
    try:
        validate_action(spec, version, case.body)
    except Fault as fault:
        return fault.status, fault.message
    return None, ""


def novasim_verdict(case: SweepCase) -> Verdict:
    version = sim_microversion.parse(case.version)
    assert version is not None
    try:
        admit(case.key, version, case.body)
    except sim_faults.Fault as fault:
        return fault.status, fault.message
    return None, ""


@pytest.fixture(scope="module")
def cases() -> list[SweepCase]:
    return thorough_cases(VALID_BODIES_PER_RANGE)


@pytest.fixture(scope="module")
def novasim_verdicts(cases: list[SweepCase]) -> list[Verdict]:
    return [novasim_verdict(case) for case in cases]


def test_both_implementations_know_the_same_41_keys() -> None:
    assert set(BY_KEY) == set(ACTIONS)
    assert len(ACTIONS) == 41


def test_the_sweep_reaches_every_key_and_every_kind_of_verdict(
    cases: list[SweepCase], novasim_verdicts: list[Verdict]
) -> None:
    assert {case.key for case in cases} == set(ACTIONS)
    verdicts = Counter(status for status, _ in novasim_verdicts)
    assert verdicts[None] > 1000 and verdicts[400] > 1000 and verdicts[404] > 100, verdicts


def test_gateway_and_novasim_give_the_same_verdict_and_message(
    cases: list[SweepCase], novasim_verdicts: list[Verdict]
) -> None:
    differing = [
        f"{case.describe()}\n  gateway: {ours}\n  novasim: {theirs}"
        for case, theirs in zip(cases, novasim_verdicts, strict=True)
        if (ours := gateway_verdict(case)) != theirs
    ]
    assert not differing, f"{len(differing)} of {len(cases)} differ; first:\n" + "\n".join(
        differing[:6]
    )
