"""Differential test: the gateway's verdict AND message equal real Nova's, body for body;
so do novasim's, whose tables are its own.

Thousands of hypothesis-generated bodies (valid, mutated, odd values; every action, every
schema range, the versions at and just outside each boundary) go to ONE run of
tests/oracle/nova_validate.py under Nova's own virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from gateway.nova import schemas
from gateway.nova.catalogue import (
    ACTIONS,
    BY_KEY,
    MAX_VERSION,
    MIN_VERSION,
    ActionSpec,
    SchemaRange,
)
from gateway.nova.faults import NOT_FOUND, Fault
from gateway.nova.types import Version, v
from gateway.nova.validation import validate_action
from novasim import action_schemas as sim_schemas
from novasim import actions as sim_actions
from novasim import faults as sim_faults
from novasim import microversion as sim_microversion
from novasim import parameter_types as sim_types
from novasim.action_table import ACTIONS as SIM_ACTIONS
from tests.conftest import skip_or_fail
from tests.oracle.bodies import (
    Node,
    examples,
    mutations,
    neighbours,
    nodes,
    odd_values,
    range_versions,
    replaced,
    valid_body,
    versions_in,
)
from tests.support.labs import lab_home
from tests.unit.test_validation import CASES, UUID

ORACLE = Path(__file__).resolve().parent.parent / "oracle" / "nova_validate.py"
CASES_PER_RANGE = 50
ORACLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Case:
    action: str
    version: str
    body: Any

    def request(self) -> dict[str, Any]:
        return {"action": self.action, "version": self.version, "body": self.body}


Verdict = tuple[bool, int | None, str]


# --- locating Nova --------------------------------------------------------------------


def nova_python() -> Path:
    """$REALNOVA_PYTHON, else the python of $REALNOVA_HOME's (or the default) venv."""
    override = os.environ.get("REALNOVA_PYTHON")
    return Path(override) if override else lab_home("realnova") / "venv" / "bin" / "python"


@pytest.fixture(scope="module")
def oracle_python() -> Path:
    python = nova_python()
    if not python.exists():
        skip_or_fail(
            f"Nova's virtualenv python not found at {python}: run ../shared/realnova/setup.sh "
            "or set REALNOVA_HOME / REALNOVA_PYTHON"
        )
    return python


def ask_nova(
    python: Path, requests: list[Mapping[str, Any]], oracle: Path = ORACLE
) -> list[dict[str, Any]]:
    """One subprocess for the whole batch; one JSON answer per request line."""
    payload = "".join(json.dumps(request) + "\n" for request in requests)
    done = subprocess.run(
        [str(python), str(oracle)],
        input=payload,
        capture_output=True,
        text=True,
        timeout=ORACLE_TIMEOUT,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(requests), done.stderr[-4000:]
    return answers


# --- the corpus -----------------------------------------------------------------------


def boundary_versions(schema_range: SchemaRange) -> st.SearchStrategy[Version]:
    low, high = range_versions(schema_range)
    return st.sampled_from([low, high, *neighbours(schema_range)]) | versions_in(schema_range)


@st.composite
def cases(draw: st.DrawFn, spec: ActionSpec, schema_range: SchemaRange) -> Case:
    schema = schema_range.schema
    assert schema is not None
    body = draw(valid_body(spec, schema, full=draw(st.booleans())))
    how = draw(st.sampled_from(["valid", "mutated", "odd value", "odd value"]))
    if how == "mutated":
        options = list(mutations(body, schema))
        body = draw(st.sampled_from(options)).body if options else body
    elif how == "odd value":
        places = [node for node in nodes(schema, body) if node.path]
        place = draw(st.sampled_from(places)) if places else Node((spec.key,), {}, None)
        body = replaced(body, place.path, draw(st.sampled_from(odd_values(place.schema))))
    version = draw(boundary_versions(schema_range))
    return Case(spec.key, str(version), body)


def unvalidated_ranges(spec: ActionSpec) -> list[SchemaRange]:
    """Where Nova has no schema (migrate < 2.56, unlock >= 2.73): any value must pass."""
    gaps = []
    if spec.schemas and spec.schemas[0].min_version > MIN_VERSION:
        end = Version(2, spec.schemas[0].min_version.minor - 1)
        gaps.append(SchemaRange(MIN_VERSION, end, {}))
    last = spec.schemas[-1].max_version if spec.schemas else None
    if last is not None and (spec.max_version is None or last < spec.max_version):
        gaps.append(SchemaRange(Version(2, last.minor + 1), spec.max_version, {}))
    return gaps


# Rare by chance, so always asked: crashes inside Nova's validator, top-level extra keys.
PINNED: list[Case] = [
    Case("rebuild", "2.57", {"rebuild": {"imageRef": UUID, "user_data": "é"}}),
    Case("rebuild", "2.57", {"rebuild": {"imageRef": UUID, "user_data": "\ud800"}}),
    Case("rebuild", "2.1", {"rebuild": {"imageRef": UUID, "personality": [{"contents": "é"}]}}),
    Case("reboot", "2.1", {"reboot": {"type": "HARD"}, "x": 1}),
    Case("addSecurityGroup", "2.1", {"addSecurityGroup": {"name": "default"}, "x": 1}),
    Case("os-getConsoleOutput", "2.1", {"os-getConsoleOutput": {"length": "1" * 5000}}),
    Case("os-getConsoleOutput", "2.1", {"os-getConsoleOutput": {"length": 10**400}}),
]


def build_corpus() -> list[Case]:
    corpus = [Case(action, version, {action: value}) for action, version, value, _ in CASES]
    corpus.extend(PINNED)
    for spec in ACTIONS:
        for schema_range in (*spec.schemas, *unvalidated_ranges(spec)):
            if schema_range.schema is not None:
                corpus.extend(examples(cases(spec, schema_range), CASES_PER_RANGE))
    return corpus


# --- our side -------------------------------------------------------------------------


def our_verdict(case: Case) -> Verdict:
    spec, version = BY_KEY[case.action], v(case.version)
    if not spec.supports(version):
        return (False, 404, NOT_FOUND)  # the pipeline's version gate, before validation
    body = json.loads(json.dumps(case.body))  # exactly the object Nova decodes
    try:
        validate_action(spec, version, body)
    except Fault as fault:
        return (False, fault.status, fault.message)
    return (True, None, "")


def novasim_verdict(case: Case) -> Verdict:
    version = sim_microversion.parse(case.version)
    assert version is not None
    body = json.loads(json.dumps(case.body))
    try:
        sim_actions.admit(case.action, version, body)
    except sim_faults.Fault as fault:
        return (False, fault.status, fault.message)
    return (True, None, "")


# --- the tests ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(oracle_python: Path) -> list[Case]:
    return build_corpus()  # only worth building when Nova is there to answer


@pytest.fixture(scope="module")
def nova(oracle_python: Path, corpus: list[Case]) -> dict[str, Any]:
    answers = ask_nova(oracle_python, [{"dump": "schemas"}, *(case.request() for case in corpus)])
    return {"dump": answers[0], "verdicts": answers[1:]}


def test_corpus_is_large_and_mixed(corpus: list[Case], nova: dict[str, Any]) -> None:
    assert len(corpus) >= 2500
    verdicts = nova["verdicts"]
    assert {answer["status"] for answer in verdicts} >= {None, 400, 404, 500}
    for spec in ACTIONS:
        seen = {
            answer["ok"]
            for case, answer in zip(corpus, verdicts, strict=True)
            if case.action == spec.key
        }
        assert True in seen, f"no accepted body for {spec.key}"


def assert_verdicts_are_novas(
    corpus: list[Case], nova: dict[str, Any], judge: Callable[[Case], Verdict]
) -> None:
    mismatches = []
    for case, answer in zip(corpus, nova["verdicts"], strict=True):
        theirs: Verdict = (answer["ok"], answer["status"], answer["message"])
        ours = judge(case)
        if ours != theirs:
            mismatches.append(f"{case.request()}\n  nova: {theirs}\n  {judge.__name__}: {ours}")
    assert not mismatches, f"{len(mismatches)} differ; first:\n" + "\n".join(mismatches[:8])


def test_verdicts_and_messages_equal_novas(corpus: list[Case], nova: dict[str, Any]) -> None:
    assert_verdicts_are_novas(corpus, nova, our_verdict)


def _novas_schema_at(rows: list[list[Any]], version: Version) -> str | None:
    """Nova's Schemas.__call__: the first registered range matching the version."""
    for low, high, schema in rows:
        if (low is None or v(low) <= version) and (high is None or version <= v(high)):
            return json.dumps(schema)
    return None


def _our_schema_at(spec: ActionSpec, version: Version) -> str | None:
    schema_range = spec.schema_for(version)
    return None if schema_range is None else json.dumps(schema_range.schema)


def test_schemas_equal_novas_decorators_in_value_and_key_order(nova: dict[str, Any]) -> None:
    """At every version the action exists, the same schema (json.dumps keeps key order)."""
    dumped = nova["dump"]["actions"]
    assert set(dumped) == set(BY_KEY)
    for spec in ACTIONS:
        rows = dumped[spec.key]["schemas"]
        for minor in range(MIN_VERSION.minor, MAX_VERSION.minor + 1):
            version = Version(2, minor)
            if spec.supports(version):
                theirs = _novas_schema_at(rows, version)
                assert _our_schema_at(spec, version) == theirs, f"{spec.key} at {version}"


def test_action_versions_equal_novas_api_version(nova: dict[str, Any]) -> None:
    for spec in ACTIONS:
        bounds = nova["dump"]["actions"][spec.key]["api_version"]
        low, high = bounds if bounds is not None else (None, None)
        assert (low or str(MIN_VERSION)) == str(spec.min_version), spec.key
        assert high == (str(spec.max_version) if spec.max_version else None), spec.key


def test_regexes_built_like_novas(nova: dict[str, Any]) -> None:
    assert nova["dump"]["name_regex"] == schemas.VALID_NAME_REGEX
    assert nova["dump"]["name_reason"] == schemas.VALID_NAME_REASON
    assert nova["dump"]["description_regex"] == schemas.VALID_DESCRIPTION_REGEX


# --- novasim against the same oracle ------------------------------------------------------


def test_novasim_verdicts_and_messages_equal_novas(
    corpus: list[Case], nova: dict[str, Any]
) -> None:
    assert_verdicts_are_novas(corpus, nova, novasim_verdict)


def test_novasim_schemas_equal_novas_decorators(nova: dict[str, Any]) -> None:
    """At every version an action exists, novasim's schema is Nova's, key order included."""
    dumped = nova["dump"]["actions"]
    assert set(dumped) == set(SIM_ACTIONS)
    for key, gates in SIM_ACTIONS.items():
        for minor in range(gates.since.minor, gates.until.minor + 1):
            at = sim_microversion.Version(2, minor)
            registered = sim_schemas.registered_at(key, at)
            ours = None if registered is None else json.dumps(registered.checker.schema)
            assert ours == _novas_schema_at(dumped[key]["schemas"], Version(2, minor)), (key, at)


def test_novasim_action_versions_equal_novas(nova: dict[str, Any]) -> None:
    for key, gates in SIM_ACTIONS.items():
        bounds = nova["dump"]["actions"][key]["api_version"]
        low, high = bounds if bounds is not None else (None, None)
        assert str(gates.since) == (low or str(sim_microversion.OLDEST)), key
        assert str(gates.until) == (high or str(sim_microversion.NEWEST)), key


def test_novasim_regexes_built_like_novas(nova: dict[str, Any]) -> None:
    assert nova["dump"]["name_regex"] == sim_types.NAME_REGEX
    assert nova["dump"]["name_reason"] == sim_types.NAME_REASON
    assert nova["dump"]["description_regex"] == sim_types.DESCRIPTION_REGEX
