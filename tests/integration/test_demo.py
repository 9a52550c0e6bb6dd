"""The README's demo, run as a newcomer would: every printed curl line answers as promised.

Runs ``nova-gateway --config-file etc/demo.conf`` (on free ports), then the printed lines.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.support.processes import ServerProcess, free_port, repo_root, start_server
from tests.support.waiting import wait_until_blocking

EXPECTED = re.compile(r"\((\d{3})\)\s*$")


def demo_lines(process: ServerProcess) -> list[str]:
    """The printed instructions, once the relay has copied them all into the log."""
    wait_until_blocking(
        lambda: "logs one JSON line" in process.log_path.read_text(), what="the demo's lines"
    )
    lines = process.log_path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("nova-gateway demo:"))
    return [line for line in lines[start:] if not line.startswith("{")]


def steps(lines: list[str]) -> list[tuple[int, str]]:
    """(expected status, curl line) for every curl line preceded by a '(NNN)' comment."""
    found = []
    for previous, line in itertools.pairwise(lines):
        match = EXPECTED.search(previous)
        if line.startswith("curl ") and match:
            found.append((int(match.group(1)), line))
    return found


@pytest.fixture
def demo(tmp_path: Path) -> ServerProcess:
    if shutil.which("curl") is None:
        skip_or_fail("curl is not installed: the demo's printed lines cannot be run")
    argv = [
        sys.executable,
        "-m",
        "gateway",
        "--config-file",
        str(repo_root() / "etc/demo.conf"),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--admin-listen",
        f"127.0.0.1:{free_port()}",
    ]
    # Run from an empty directory, as a newcomer's checkout would be: demo-data/ lands here.
    return start_server("demo", argv, cwd=tmp_path, ready_timeout=60)


def test_demo_lines_answer_as_printed(demo: ServerProcess, tmp_path: Path) -> None:
    try:
        lines = demo_lines(demo)
        planned = steps(lines)
        assert len(planned) >= 9, lines
        for expected, line in planned:
            result = subprocess.run(
                shlex.split(line), capture_output=True, text=True, timeout=30, check=True
            )
            status = int(result.stdout.split()[1])
            assert status == expected, f"{line}\n{result.stdout}"
        metrics = next(line for line in lines if "/metrics" in line and line.startswith("curl"))
        scraped = subprocess.run(
            metrics, shell=True, capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert 'decision="deny"' in scraped and 'decision="allow"' in scraped
        verify = next(line for line in lines if "audit verify" in line)
        command = shlex.split(verify)
        result = subprocess.run(
            [sys.executable, "-m", "gateway", *command[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        query = shlex.split(next(line for line in lines if "audit query" in line))
        denials = subprocess.run(
            [sys.executable, "-m", "gateway", *query[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert denials.returncode == 0, denials.stdout + denials.stderr
        assert " deny " in denials.stdout and "verified intact" in denials.stdout
        records = "".join(path.read_text() for path in (tmp_path / "demo-data/audit").iterdir())
        assert "alice:p1" not in records and "carol:p1:reader" not in records
    finally:
        assert demo.stop() == 0
