"""The README's architecture section matches the tree: every package and module under
gateway/ is named there, and nothing named there is missing from the tree.

Read as the section is written: the layer diagram names the top-level packages and modules
(``gateway.x``, then bare names after ``|`` or ``,``); each table row names modules by path
(``gateway/web/app.py``; a bare ``demo.py`` after it lives in the same folder) or a package
(``gateway/nova/``) whose modules are the backticked names outside parentheses in its row.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.test_docs import README, REPO, section

GATEWAY = REPO / "gateway"
ARCHITECTURE = section(README, "### Architecture")


def tree_modules() -> set[str]:
    """Every module and package under gateway/, as ``gateway/a/b.py`` or ``gateway/a/``."""
    found: set[str] = set()
    for path in GATEWAY.rglob("*.py"):
        if path.name.startswith("__") or "__pycache__" in path.parts:
            continue
        found.add(path.relative_to(REPO).as_posix())
    for path in GATEWAY.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            found.add(path.relative_to(REPO).as_posix() + "/")
    return found


def top_level() -> set[str]:
    return {
        name.removeprefix("gateway/").removesuffix(".py").rstrip("/")
        for name in tree_modules()
        if name.count("/") == 1 or (name.endswith("/") and name.count("/") == 2)
    }


def diagram_names() -> set[str]:
    block = re.findall(r"```\n(.*?)```", ARCHITECTURE, re.DOTALL)[0]  # the first: layers
    names: set[str] = set()
    for line in block.splitlines():
        first_column = re.split(r"\s{2,}", line.strip())[0]
        for part in re.split(r"[|,]", first_column):
            if part.strip():
                names.add(part.strip().removeprefix("gateway."))
    return names


def _outside_parentheses(text: str) -> str:
    kept, depth = [], 0
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def table_names() -> set[str]:
    names: set[str] = set()
    for row in re.findall(r"^\| `gateway/.*\|$", ARCHITECTURE, re.MULTILINE):
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        folder = ""
        for entry in re.findall(r"`([^`]+)`", cells[0]):
            if entry.endswith("/"):
                for module in re.findall(r"`(\w+)`", _outside_parentheses(cells[1])):
                    names.add(f"{entry}{module}.py")
                names.add(entry)
                continue
            path = entry if "/" in entry else f"{folder}{entry}"
            folder = path.rsplit("/", 1)[0] + "/"
            names.add(path)
            if folder != "gateway/":  # a package named through its modules' paths
                names.add(folder)
    return names


def test_the_layer_diagram_names_every_top_level_package_and_module() -> None:
    assert diagram_names() == top_level()


def test_the_table_names_every_module_and_nothing_else() -> None:
    named, tree = table_names(), tree_modules()
    assert not tree - named, f"in the tree, not in the README: {sorted(tree - named)}"
    assert not named - tree, f"in the README, not in the tree: {sorted(named - tree)}"


def test_the_reading_finds_what_it_should() -> None:
    """The parser itself: a row of each kind is read as intended."""
    assert {"gateway/web/app.py", "gateway/nova/catalogue.py", "gateway/demo.py"} <= table_names()
    assert {"web", "nova", "pipeline"} <= diagram_names()
    assert Path(GATEWAY / "nova" / "catalogue.py").is_file()
