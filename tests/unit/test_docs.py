"""The README and docs/operations.md say what the code and the deployment files do: the
rate-limit example loads, every alert named exists and has a runbook entry, every
dependency is in the table, and every link inside the runbook reaches a heading."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway.ratelimit.rules import parse_rules

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
OPERATIONS = (REPO / "docs" / "operations.md").read_text()
ALERT_NAME = re.compile(r"\bNovaGateway[A-Za-z]+\b")


def section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of the same level."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.search(rf"\n{re.escape(level)} ", text[start:])
    return text[start : start + following.start()] if following else text[start:]


def alerts() -> list[str]:
    document = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yaml").read_text())
    return [rule["alert"] for group in document["groups"] for rule in group["rules"]]


def test_the_readme_rate_limit_example_is_a_rules_file_the_gateway_loads() -> None:
    (example,) = re.findall(r"```yaml\n(.*?)```", section(README, "## Rate limits"), re.DOTALL)
    rules = parse_rules(yaml.safe_load(example), "README example")
    assert [rule.name for rule in rules.rules] == ["reboots", "actions"]
    assert rules.cost("rebuild") == 5
    project = "0c4e8b1e3f2a4d5c9b7a6e5d4c3b2a10"
    assert rules.limit_for(rules.rules[0], project) is None  # unlimited
    override = rules.limit_for(rules.rules[1], project)
    assert override is not None and override.amount == 600


def test_every_alert_the_docs_name_exists() -> None:
    defined = set(alerts())
    for name, text in (("README.md", README), ("docs/operations.md", OPERATIONS)):
        named = set(ALERT_NAME.findall(text))
        assert named <= defined, f"{name} names alerts that alerts.yaml lacks: {named - defined}"
    assert "nova_gateway_ratelimit" not in README  # the old, wrong name


def test_every_alert_has_one_runbook_entry_in_the_files_order() -> None:
    entries = re.findall(r"^### (\S+)$", section(OPERATIONS, "## Alerts"), re.MULTILINE)
    assert entries == alerts(), "docs/operations.md, 'Alerts': one '### <alert>' per rule"
    for name in entries:
        entry = section(OPERATIONS, f"### {name}")
        for part in ("**Fires:**", "**Users see:**", "**Do:**"):
            assert part in entry, f"{name}: {part} missing"


def test_the_dependency_table_names_every_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [
        *project["dependencies"],
        *(text for extra in project["optional-dependencies"].values() for text in extra),
    ]
    table = section(README, "## Dependencies and why")
    listed = {
        canonicalize_name(name)
        for row in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE)
        for name in re.findall(r"[A-Za-z][\w.-]*", re.sub(r"\(.*?\)|≥ \S+", "", row))
    }
    missing = [text for text in declared if canonicalize_name(Requirement(text).name) not in listed]
    assert not missing, f"README 'Dependencies and why' lacks {missing}"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("name", ["docs/operations.md", "README.md"])
def test_links_within_a_document_reach_a_heading(name: str) -> None:
    text = (REPO / name).read_text()
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links <= anchors, links - anchors


def test_files_the_runbook_names_exist() -> None:
    named = set(re.findall(r"`((?:deploy|docs|scripts|tests|etc)/[\w./-]+)`", OPERATIONS))
    named |= set(re.findall(r"`((?:deploy|docs|scripts|tests|etc)/[\w./-]+)`", README))
    missing = sorted(path for path in named if not (REPO / path).exists())
    assert not missing, missing
