"""novasim is an independent implementation of Nova: no module of it imports the gateway,
none reads the shared reference material, and the import-layer check says so in CI.

Why it matters: the fast suites judge the gateway by novasim's answers; a simulator that
took the gateway's tables would agree with any mistake in them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support.processes import repo_root

NOVASIM = repo_root() / "novasim"
SOURCES = sorted(NOVASIM.glob("*.py"))

# Imports every novasim module and builds an app, with the shared material out of reach.
_PROBE = """
import importlib, json, pkgutil, sys
import novasim
for module in pkgutil.iter_modules(novasim.__path__):
    importlib.import_module("novasim." + module.name)
from novasim import SimConfig, create_app
from novasim.actions import admit
from novasim.microversion import Version
create_app(SimConfig(seed=1))
admit("pause", Version(2, 1), {"pause": None})
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "gateway")))
"""


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_novasim_module_imports_the_gateway() -> None:
    assert len(SOURCES) > 20
    offenders = [path.name for path in SOURCES if "gateway" in _imported_roots(path)]
    assert not offenders


def test_no_novasim_module_reads_the_shared_material() -> None:
    offenders = [
        path.name
        for path in SOURCES
        if "../shared" in path.read_text() or "NOVA_GATEWAY_SHARED" in path.read_text()
    ]
    assert not offenders


def test_running_novasim_loads_nothing_of_the_gateway(tmp_path: Path) -> None:
    """Dynamic imports included: a fresh interpreter, away from the repository."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tmp_path,
        env={"PYTHONPATH": str(repo_root()), "NOVA_GATEWAY_SHARED": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_the_import_layer_check_forbids_it() -> None:
    """The CI contract exists (lint-imports enforces it): novasim must not import gateway."""
    settings = tomllib.loads((repo_root() / "pyproject.toml").read_text())
    contracts = settings["tool"]["importlinter"]["contracts"]
    assert any(
        contract["type"] == "forbidden"
        and contract["source_modules"] == ["novasim"]
        and "gateway" in contract["forbidden_modules"]
        for contract in contracts
    )
