"""constraints.txt pins every dependency pyproject.toml declares, and this environment runs
exactly those pins (the image and CI install against the same file)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate it with ./scripts/constraints"


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml: runtime, each extra, and the build backend."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    texts = [
        *project["project"]["dependencies"],
        *(text for extra in project["project"]["optional-dependencies"].values() for text in extra),
        *project["build-system"]["requires"],
    ]
    return [Requirement(text) for text in texts]


def pins() -> dict[str, Version]:
    pinned: dict[str, Version] = {}
    for number, line in enumerate((REPO / "constraints.txt").read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        name, sep, version = text.partition("==")
        assert sep and name and version, f"constraints.txt:{number}: {line!r} is not NAME==VERSION"
        key = canonicalize_name(name)
        assert key not in pinned, f"constraints.txt:{number}: {name} is pinned twice"
        pinned[key] = Version(version)
    return pinned


def test_every_declared_dependency_has_a_pin_that_satisfies_it() -> None:
    pinned = pins()
    requirements = declared()
    assert len(requirements) > 20
    missing = [str(r) for r in requirements if canonicalize_name(r.name) not in pinned]
    assert not missing, f"no pin in constraints.txt for {missing}: {REGENERATE}"
    for requirement in requirements:
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"constraints.txt pins {requirement.name}=={version}, outside {requirement}: "
            + REGENERATE
        )


def test_this_environment_runs_the_pinned_versions() -> None:
    pinned = pins()
    installed: dict[str, Version] = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in importlib.metadata.distributions()
    }
    # The runtime dependencies and the test tools are all installed by scripts/venv.sh.
    wanted = {canonicalize_name(r.name) for r in declared() if r.name != "setuptools"}
    assert wanted <= installed.keys(), wanted - installed.keys()
    differ = {
        name: (str(installed[name]), str(version))
        for name, version in pinned.items()
        if name in installed and installed[name] != version
    }
    assert not differ, f"installed vs pinned: {differ} (scripts/venv.sh installs the pins)"
