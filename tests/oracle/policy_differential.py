"""The policy differential: the gateway's PolicyEngine against Nova's own code, call for call.

Nova decides in its own virtualenv (tests/oracle/nova_policy.py: keystonemiddleware's
headers, Nova's RequestContext and context.can, oslo.policy 6 as Nova 34 calls it); the
gateway decides in-process on the same files, targets and Keystone tokens (its keystone
identity path builds the credentials). Both call the same decision point on loopback,
which answers by rule name and records what it was sent: the two sequences must match.

    .venv/bin/python -m tests.oracle.policy_differential --decisions 100000 [--seed 1]

Nova's defaults for every role and scope, random policies (every check kind, remote
checks, deprecated names, both enforce_new_defaults modes), then deep rules around and
far beyond the gateway's bound. Exit status 1 on any allow-versus-deny difference.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import config, logs
from gateway.identity.keystone import credentials_from_token
from gateway.nova.policy_defaults import DEFAULTS
from gateway.policy.engine import PolicyEngine, PolicyLoadError
from gateway.policy.files import MAX_RULE_DEPTH
from tests.conftest import shared_path
from tests.support.decision_point import DecisionPoint, decision_point
from tests.support.policy_corpus import DEFAULT_TARGETS, Corpus, Policy, role_tokens

ORACLE = Path(__file__).resolve().parent / "nova_policy.py"
REMOTE_TIMEOUT = 0.5  # both sides; the decision point's /slow answers after 1 s
CASES_PER_POLICY = 100
DEEP_LEVELS = (MAX_RULE_DEPTH - 1, MAX_RULE_DEPTH, MAX_RULE_DEPTH + 1, 340, 1000, 10_000)


def nova_rule_names() -> frozenset[str]:
    rows = json.loads((shared_path() / "nova" / "policy-defaults.json").read_text())
    return frozenset(row["name"] for row in rows)


def enforced_rules() -> tuple[str, ...]:
    """Rules both register (the gateway enforces only Nova's names it knows)."""
    nova = nova_rule_names()
    return tuple(sorted(rule.name for rule in DEFAULTS if rule.name in nova))


class NovaOracle:
    """One long-lived process in Nova's virtualenv, one JSON line per policy."""

    def __init__(self, python: Path) -> None:
        self._process = subprocess.Popen(
            [str(python), str(ORACLE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        assert line, "the Nova oracle exited"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


Case = tuple[str, dict[str, Any], dict[str, Any]]  # rule, target, token


@dataclass
class Tally:
    decisions: int = 0
    allowed: int = 0
    nova_errors: int = 0  # Nova raised (a 500); the gateway must deny
    differences: list[dict[str, Any]] = field(default_factory=list)
    remote_calls: int = 0
    remote_mismatches: list[dict[str, Any]] = field(default_factory=list)
    policies: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # why the gateway refused a file
    refusal_examples: dict[str, str] = field(default_factory=dict)
    nova_on_refused: Counter[str] = field(default_factory=Counter)  # Nova, same file
    by_phase: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "allowed": self.allowed,
            "nova_raised_gateway_denied": self.nova_errors,
            "allow_deny_differences": len(self.differences),
            "remote_calls_compared": self.remote_calls,
            "remote_payload_mismatches": len(self.remote_mismatches),
            "policies": self.policies,
            "policies_refused_by_gateway": dict(self.refused),
            "refusal_examples": self.refusal_examples,
            "nova_on_refused_policies": dict(self.nova_on_refused),
            "decisions_by_phase": dict(self.by_phase),
            "seconds": round(self.seconds, 1),
            "examples": self.differences[:5] + self.remote_mismatches[:3],
        }


def _gateway(policy_dir: Path, enforce_new_defaults: bool) -> PolicyEngine:
    conf = config.make_conf()
    conf.set_override("policy_dir", str(policy_dir), group="policy")
    conf.set_override("enforce_new_defaults", enforce_new_defaults, group="policy")
    conf.set_override("remote_timeout", REMOTE_TIMEOUT, group="policy")
    return PolicyEngine(conf)


def _refusal(exc: PolicyLoadError) -> str:
    text = str(exc)
    for reason in ("cycle", "levels deep", "checks in one decision", "larger than"):
        if reason in text:
            return reason
    return "other"


class Differential:
    def __init__(self, oracle: NovaOracle, point: DecisionPoint, workdir: Path) -> None:
        self.oracle = oracle
        self.point = point
        self.workdir = workdir
        self.tally = Tally()
        self._serial = 0

    def compare(self, policy: Policy, cases: list[Case], phase: str) -> None:
        self._serial += 1
        directory = policy.write(self.workdir / f"policy-{self._serial}")
        self.tally.policies += 1
        self.point.take()
        try:
            engine = _gateway(directory, policy.enforce_new_defaults)
        except PolicyLoadError as exc:
            reason = _refusal(exc)
            self.tally.refused[reason] += 1
            self.tally.refusal_examples.setdefault(reason, str(exc)[:300])
            answer = self._ask_nova(directory, policy, cases)
            verdicts = answer.get("verdicts") or []
            outcome = answer["loaded"].split(":")[0] if not verdicts else _summary(verdicts)
            self.tally.nova_on_refused[f"depth {policy.depth}: {outcome}"] += 1
            shutil.rmtree(directory, ignore_errors=True)
            return
        ours = [
            engine.decide(rule, target, credentials_from_token(token))
            for rule, target, token in cases
        ]
        asked_gateway = self.point.take()
        answer = self._ask_nova(directory, policy, cases)
        asked_nova = self.point.take()
        shutil.rmtree(directory, ignore_errors=True)
        assert answer["loaded"] == "ok", (answer["loaded"], policy)
        for (rule, target, token), verdict, nova in zip(
            cases, ours, answer["verdicts"], strict=True
        ):
            self.tally.decisions += 1
            self.tally.by_phase[phase] += 1
            self.tally.allowed += verdict.allowed
            self.tally.nova_errors += nova.startswith("error")
            if verdict.allowed != (nova == "allow"):
                self.tally.differences.append(
                    {
                        "rule": rule,
                        "target": target,
                        "token": token,
                        "gateway": f"{verdict.outcome.value} {verdict.reason}",
                        "nova": nova,
                        "policy": {"main": policy.main, "site": policy.site},
                    }
                )
        self.tally.remote_calls += len(asked_nova)
        if asked_gateway != asked_nova:
            pairs = zip(asked_gateway, asked_nova, strict=False)
            first = next(
                (i for i, (ours, theirs) in enumerate(pairs) if ours != theirs),
                min(len(asked_gateway), len(asked_nova)),
            )
            self.tally.remote_mismatches.append(
                {
                    "at": first,
                    "gateway": asked_gateway[first : first + 1],
                    "nova": asked_nova[first : first + 1],
                    "counts": [len(asked_gateway), len(asked_nova)],
                }
            )

    def _ask_nova(self, directory: Path, policy: Policy, cases: list[Case]) -> dict[str, Any]:
        return self.oracle.ask(
            {
                "policy_dir": str(directory),
                "enforce_new_defaults": policy.enforce_new_defaults,
                "oslo_policy": {"remote_timeout": REMOTE_TIMEOUT},
                "cases": [
                    {"rule": rule, "target": target, "token": token}
                    for rule, target, token in cases
                ],
            }
        )


def _remote_policies(url: str) -> list[dict[str, str]]:
    """Remote checks where operators put them: in the base rules every action refers to."""
    return [
        {"project_member_or_admin": f"http:{url}/check"},
        {
            "context_is_admin": f"http:{url}/admin or role:admin",
            "project_reader_api": f"http:{url}/%(project_id)s and role:reader",
            "os_compute_api:os-pause-server:pause": f"http:{url}/slow or rule:context_is_admin",
        },
    ]


def _summary(verdicts: Iterable[str]) -> str:
    counts = Counter(v.split(":")[0] for v in verdicts)
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))


def run(
    python: Path,
    *,
    decisions: int,
    seed: int = 1,
    every: int = 1,
    deep: tuple[int, ...] = DEEP_LEVELS,
) -> Tally:
    """Nova's defaults (every ``every``-th rule and persona), ``decisions`` random ones,
    then the deep rules; returns the tally (differences listed in it)."""
    started = time.monotonic()
    rng = random.Random(seed)
    enforced = enforced_rules()
    oracle = NovaOracle(python)
    workdir = Path(tempfile.mkdtemp(prefix="policy-differential-"))
    try:
        with decision_point(delay=2 * REMOTE_TIMEOUT) as point:
            differential = Differential(oracle, point, workdir)
            corpus = Corpus(rng, enforced, remote_url=point.url, slow=0.01)
            tokens = role_tokens()[::every]
            for new_defaults in (True, False):
                cases = [
                    (rule, dict(target), token)
                    for rule in enforced[::every]
                    for token in tokens
                    for target in DEFAULT_TARGETS
                ]
                for start in range(0, len(cases), 2000):
                    differential.compare(
                        Policy(enforce_new_defaults=new_defaults),
                        cases[start : start + 2000],
                        "nova defaults",
                    )
            for rules in _remote_policies(point.url):
                policy = Policy(site=rules)
                cases = [(rng.choice(enforced), corpus.target(), corpus.token()) for _ in range(50)]
                differential.compare(policy, cases, "remote checks")
            random_target = differential.tally.decisions + decisions
            while differential.tally.decisions < random_target:
                policy = corpus.policy(deep_levels=(MAX_RULE_DEPTH - 1, MAX_RULE_DEPTH))
                cases = [
                    (rng.choice(enforced), corpus.target(), corpus.token())
                    for _ in range(CASES_PER_POLICY)
                ]
                differential.compare(policy, cases, "random policies")
            for levels in deep:
                for chained in (False, True):
                    # On Nova's defaults alone, so the rule nests exactly that deep.
                    policy = Policy()
                    corpus.deep_rule(policy, levels, chained=chained)
                    cases = [(policy.deep_rule, corpus.target(), corpus.token()) for _ in range(20)]
                    differential.compare(policy, cases, "deep rules")
    finally:
        oracle.close()
        shutil.rmtree(workdir, ignore_errors=True)
    differential.tally.seconds = time.monotonic() - started
    return differential.tally


def main(argv: list[str] | None = None) -> int:
    from tests.property.test_nova_oracle import nova_python

    parser = argparse.ArgumentParser(prog="python -m tests.oracle.policy_differential")
    parser.add_argument("--decisions", type=int, default=100_000, help="random decisions")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logs.configure("CRITICAL")  # refusals and failing checks are expected by the thousand
    tally = run(nova_python(), decisions=args.decisions, seed=args.seed)
    print(json.dumps(tally.report(), indent=2, default=str))
    return 1 if tally.differences or tally.remote_mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
