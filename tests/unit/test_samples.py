"""Nova's own api-samples request bodies validate at every microversion they document.

Reads ``nova/samples`` from the shared reference folder (never copied into the repo);
INDEX.md maps each file to its action and first microversion.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.nova.catalogue import BY_KEY, MAX_VERSION, MIN_VERSION
from gateway.nova.faults import Fault
from gateway.nova.types import Version, v
from gateway.nova.validation import validate_action
from tests.conftest import shared_path

_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<what>[^|]+) \| (?P<version>[^|]+) \|$")
_VERSION = re.compile(r"\d+\.\d+")
_SUPPORTED_RANGE = re.compile(r"action valid (\d+\.\d+)[–-](\d+\.\d+)")


@dataclass(frozen=True)
class Sample:
    file: str
    action: str
    first: Version
    last: Version  # until the next vX.Y/ sample of the same file name, or the action's end
    action_end: Version | None  # the last version INDEX.md says the action exists

    @property
    def id(self) -> str:
        return f"{self.file}@{self.first}-{self.last}"


def _request_rows(index: str) -> list[tuple[str, str, Version, Version | None]]:
    rows = []
    for line in index.splitlines():
        match = _ROW.match(line.strip())
        if match is None or "(request" not in match["what"] or "NOT an action" in match["what"]:
            continue
        action = match["what"].split()[0]
        first = v(_VERSION.findall(match["version"])[0])
        end = _SUPPORTED_RANGE.search(match["version"])
        rows.append((match["file"], action, first, v(end.group(2)) if end else None))
    return rows


def _series_key(file: str) -> tuple[str, str]:
    """Samples of one series share a folder and file name; vX.Y/ only sets the version."""
    parts = file.split("/")
    return parts[0], parts[-1]


def load_samples(samples_dir: Path) -> list[Sample]:
    rows = _request_rows((samples_dir / "INDEX.md").read_text(encoding="utf-8"))
    starts: dict[tuple[str, str], list[Version]] = {}
    for file, _, first, _ in rows:
        starts.setdefault(_series_key(file), []).append(first)
    samples = []
    for file, action, first, action_end in rows:
        later = [start for start in starts[_series_key(file)] if start > first]
        spec_end = BY_KEY[action].max_version or MAX_VERSION
        last = Version(first.major, min(later).minor - 1) if later else spec_end
        samples.append(Sample(file, action, first, min(last, spec_end), action_end))
    return samples


def _samples_dir() -> Path:
    return shared_path() / "nova" / "samples"


SAMPLES = load_samples(_samples_dir()) if (_samples_dir() / "INDEX.md").is_file() else []


def versions_to_try(sample: Sample) -> list[Version]:
    """The documented version, its neighbours inside the range, the middle and the end."""
    low, high = sample.first.minor, sample.last.minor
    minors = {low, min(low + 1, high), (low + high) // 2, max(high - 1, low), high}
    return [Version(sample.first.major, minor) for minor in sorted(minors)]


@pytest.fixture(scope="module")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "nova" / "samples"


def test_index_lists_request_samples_for_most_actions(samples_dir: Path) -> None:
    assert len(SAMPLES) >= 60
    assert len({sample.action for sample in SAMPLES}) >= 38


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.id for sample in SAMPLES])
def test_sample_validates_across_its_range(samples_dir: Path, sample: Sample) -> None:
    body = json.loads((samples_dir / sample.file).read_text(encoding="utf-8"))
    assert list(body) == [sample.action], "the sample's only key is the action INDEX.md names"
    spec = BY_KEY[sample.action]
    for version in versions_to_try(sample):
        assert spec.supports(version), f"{sample.action} should exist at {version}"
        validate_action(spec, version, body)


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample.id for sample in SAMPLES])
def test_action_ends_where_the_index_says(sample: Sample) -> None:
    spec = BY_KEY[sample.action]
    if sample.action_end is not None:
        assert spec.max_version == sample.action_end
        assert spec.supports(sample.action_end)
        assert not spec.supports(Version(2, sample.action_end.minor + 1))
    if sample.first > MIN_VERSION and sample.first == spec.min_version:
        assert not spec.supports(Version(2, sample.first.minor - 1))


def test_versioned_samples_need_their_version(samples_dir: Path) -> None:
    """A sample that uses a newer field is refused one version before its folder."""
    needs_version = {
        "servers/v2.19/server-action-rebuild.json": "2.18",  # description
        "servers/v2.57/server-action-rebuild.json": "2.56",  # user_data
        "servers/v2.94/server-action-rebuild.json": "2.93",  # an FQDN hostname
        "os-evacuate/v2.14/server-evacuate-req.json": "2.13",  # onSharedStorage required
        "os-migrate-server/v2.25/live-migrate-server.json": "2.24",  # 'auto'
        "os-shelve/v2.91/os-unshelve-host.json": "2.90",  # host
    }
    by_file = {sample.file: sample for sample in SAMPLES}
    for file, earlier in needs_version.items():
        body = json.loads((samples_dir / file).read_text(encoding="utf-8"))
        with pytest.raises(Fault) as refused:
            validate_action(BY_KEY[by_file[file].action], v(earlier), body)
        assert refused.value.status == 400
