"""The gateway's route table against Nova's own router (its mapper, in Nova's virtualenv).

Owns the proof that the methods the gateway forwards per path are exactly those Nova's
router routes: the table equals the installed Nova's ROUTE_LIST, and thousands of paths
(every template, with and without a project id, and generated ones) match alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

from gateway.nova.route_table import ROUTES, served_methods
from tests.oracle.bodies import examples
from tests.property.test_nova_oracle import ask_nova, oracle_python  # noqa: F401

ORACLE = Path(__file__).resolve().parent.parent / "oracle" / "nova_routes.py"
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
# Values for a template's variables: plain, hex (a project id's shape), a word the table
# also has as a literal, a dotted name (no format suffix is stripped), an action name.
SAMPLES = ("x", "0a1b-ff", "detail", "x.json", "action")
PREFIXES = ("", "/0a1b-ff", "/ABC", "/p1")  # project ids: hex ones route, others do not
SUFFIXES = ("", "/", "/x")
GENERATED_PATHS = 600


def _instance(template: str, sample: str) -> str:
    """The template with every variable filled with ``sample``."""
    return "/".join(sample if part.startswith("{") else part for part in template.split("/"))


def _corpus(templates: list[str]) -> list[str]:
    # Each template behind each prefix and with each suffix, the samples taking turns.
    samples = itertools.cycle(SAMPLES)
    templated = [
        prefix + _instance(path, next(samples)) + suffix
        for path in templates
        for prefix, suffix in itertools.product(PREFIXES, SUFFIXES)
    ]
    # Random paths from the templates' vocabulary (their literals, the samples, empty
    # segments), any length up to beyond the longest template.
    literals = sorted({part for path in templates for part in path.split("/") if "{" not in part})
    segment = st.sampled_from([*literals, *SAMPLES, "ABC", ""])
    generated = examples(
        st.lists(segment, min_size=1, max_size=8).map(lambda parts: "/" + "/".join(parts)),
        GENERATED_PATHS,
    )
    return sorted({*templated, *generated})


@dataclass(frozen=True)
class NovasRouter:
    routes: list[tuple[str, Any]]  # ROUTE_LIST as Nova has it
    routed: dict[str, set[str]]  # path -> the methods Nova's mapper routes there


@pytest.fixture(scope="module")
def nova(oracle_python: Path) -> NovasRouter:  # noqa: F811
    """One run of Nova's mapper: its route list, and its verdict on every corpus path
    (built from the gateway's templates; any template Nova has and the gateway lacks
    fails the first test)."""
    paths = _corpus([path for path, _ in ROUTES])
    questions: list[Mapping[str, Any]] = [
        {"dump": "routes"},
        *({"path": path, "methods": METHODS} for path in paths),
    ]
    dump, *answers = ask_nova(oracle_python, questions, ORACLE)
    routed = {path: set(answer["routed"]) for path, answer in zip(paths, answers, strict=True)}
    return NovasRouter([(path, methods) for path, methods in dump["routes"]], routed)


def test_table_is_novas_route_list(nova: NovasRouter) -> None:
    """Every template and its methods, in Nova's order (the redirect '' → '/' aside:
    /v2.1 without a slash is the version document, never the router)."""
    novas = [(path, sorted(methods)) for path, methods in nova.routes if path != ""]
    ours = [(path, sorted(methods.split())) for path, methods in ROUTES]
    assert ours == novas


def test_routing_equals_novas(nova: NovasRouter) -> None:
    differ = [
        (path, sorted(routed), sorted(served_methods(path) & set(METHODS)))
        for path, routed in nova.routed.items()
        if served_methods(path) & set(METHODS) != routed
    ]
    assert differ == []
    routed_pairs = sum(len(methods) for methods in nova.routed.values())
    assert len(nova.routed) > 2000 and routed_pairs > 500  # a real mix of routed and not
