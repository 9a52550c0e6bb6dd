"""Differential: the gateway's PolicyEngine against a stock oslo.policy Enforcer, as Nova calls it.

Random policy files (every check kind, is_admin, deprecated names, policy.d overriding
policy.yaml, both enforce_new_defaults modes, remote checks, rules at the depth bound),
random targets and Keystone tokens. The gateway decides on its compiled rules with the
credentials its keystone identity builds; the reference is oslo.policy's own Enforcer on
the same files, with Nova's defaults, Nova's IsAdminCheck and Nova's RequestContext
(tests/support/nova_policy.py), independent of the gateway's compiler. Both call one
decision point on loopback, which records what it is sent: the sequences must be equal.
Seeded and bounded (a few seconds); the long run is tests/oracle/policy_differential.py.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from oslo_policy import policy as oslo

from gateway import config
from gateway.identity.keystone import credentials_from_token
from gateway.nova.policy_defaults import DEFAULTS
from gateway.policy.engine import PolicyEngine, PolicyLoadError
from gateway.policy.files import MAX_RULE_DEPTH
from tests.support import nova_policy
from tests.support.decision_point import DecisionPoint, decision_point
from tests.support.policy_corpus import Corpus

CASES_PER_POLICY = 40
REMOTE_TIMEOUT = 0.3


@pytest.fixture(scope="module")
def nova_rules(shared_dir: Path) -> list[oslo.RuleDefault]:
    return nova_policy.nova_defaults(shared_dir)


@pytest.fixture(scope="module")
def point() -> Iterator[DecisionPoint]:
    with decision_point(delay=2 * REMOTE_TIMEOUT) as running:
        yield running


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="policy-differential-") as directory:
        yield Path(directory)


@settings(
    max_examples=30,
    derandomize=True,  # seeded: the same policies in every run
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@given(rng=st.randoms(use_true_random=False))
def test_gateway_decides_as_oslo_as_nova_calls_it(
    rng: random.Random,
    nova_rules: list[oslo.RuleDefault],
    point: DecisionPoint,
    workdir: Path,
) -> None:
    nova_names = {rule.name for rule in nova_rules}
    enforced = tuple(sorted(rule.name for rule in DEFAULTS if rule.name in nova_names))
    corpus = Corpus(rng, enforced, remote_url=point.url, slow=0.01)
    policy = corpus.policy(deep_levels=(MAX_RULE_DEPTH - 1, MAX_RULE_DEPTH))
    directory = policy.write(Path(tempfile.mkdtemp(dir=workdir)))
    conf = config.make_conf()
    conf.set_override("policy_dir", str(directory), group="policy")
    conf.set_override("enforce_new_defaults", policy.enforce_new_defaults, group="policy")
    conf.set_override("remote_timeout", REMOTE_TIMEOUT, group="policy")
    try:
        engine = PolicyEngine(conf)
    except PolicyLoadError as exc:
        # Refused files: rules referring to each other in a cycle (oslo recurses until it
        # raises), or nested past the bound through a reference. Nothing is decided.
        assert "cycle" in str(exc) or "levels deep" in str(exc), exc
        return
    nova = nova_policy.nova_enforcer(
        directory,
        nova_rules,
        enforce_new_defaults=policy.enforce_new_defaults,
        oslo_policy_options={"remote_timeout": REMOTE_TIMEOUT},
    )
    cases = [
        (rng.choice(enforced), corpus.target(), corpus.token()) for _ in range(CASES_PER_POLICY)
    ]
    point.take()
    ours = [
        engine.decide(rule, target, credentials_from_token(token)).allowed
        for rule, target, token in cases
    ]
    asked_gateway = point.take()
    theirs = [
        nova_policy.nova_decides(nova, nova_policy.keystone_environ(token), rule, target)
        for rule, target, token in cases
    ]
    asked_nova = point.take()
    for case, allowed, verdict in zip(cases, ours, theirs, strict=True):
        assert allowed is (verdict == nova_policy.ALLOW), (case, verdict, policy)
    assert asked_gateway == asked_nova
