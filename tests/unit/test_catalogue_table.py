"""The README's action table is generated from the catalogue and must not go stale."""

from __future__ import annotations

from pathlib import Path

from gateway.nova.catalogue import ACTIONS
from gateway.nova.catalogue_table import END, START, render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_action_table_is_current() -> None:
    text = README.read_text()
    assert START in text and END in text
    current = text[text.index(START) : text.index(END) + len(END)]
    assert current == render(), (
        "README action table is stale: python -m gateway.nova.catalogue_table"
    )


def test_every_action_has_a_row() -> None:
    table = render()
    assert len(ACTIONS) == 41
    for spec in ACTIONS:
        assert f"| `{spec.key}` |" in table
