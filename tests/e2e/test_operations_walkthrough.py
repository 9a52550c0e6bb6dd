"""docs/operations.md, "Try it on one machine", run as an operator would: every shell block
in order, in one environment, each printed output compared with the text the document
shows after it (a ``...`` stands for any text within a line).

Two gateway processes with Sentinel-backed limits in front of the real Nova: the test is
what keeps the runbook true. Ports are the document's unless taken; then free ones are
used, and the expected texts follow them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.support.doc_blocks import matches, steps
from tests.support.processes import free_port, repo_root, shared_dir

DOC = repo_root() / "docs" / "operations.md"
START, END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
DEFAULT = re.compile(r'"\$\{(\w+):=([^}]*)\}"')
BLOCK_TIMEOUT = 180.0  # a cold realnova start included


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ports(text: str) -> dict[str, str]:
    """The document's default ports, each replaced by a free one if it is taken."""
    chosen: dict[str, str] = {}
    for name, value in DEFAULT.findall(text):
        numbers = value.split()
        chosen[name] = " ".join(
            number if port_free(int(number)) else str(free_port()) for number in numbers
        )
    return chosen


@contextlib.contextmanager
def stopping_leftovers(directory: Path) -> Iterator[None]:
    """Whatever the walkthrough left running (it stops everything itself when it passes)."""
    try:
        yield
    finally:
        for pid_file in directory.rglob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().split()[0])
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                # Only processes this walkthrough started: their command names LAB.
                if str(directory).encode() in command or b"redis" in command:
                    os.kill(pid, signal.SIGKILL)


def test_the_operations_walkthrough_runs_as_written(tmp_path: Path) -> None:
    if not (shared_dir() / "realnova" / "run").is_file():
        skip_or_fail(f"realnova not found under {shared_dir()}")
    for tool in ("redis-server", "redis-cli", "curl", "openssl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip_or_fail(f"{tool} is not installed (the walkthrough uses it)")
    text = DOC.read_text()
    chosen = ports(text)
    defaults = dict(DEFAULT.findall(text))
    state = tmp_path / "state.sh"
    env = {
        **os.environ,
        **chosen,
        "TMPDIR": str(tmp_path),  # where `mktemp -d` makes LAB
        "NOVA_GATEWAY_SHARED": str(shared_dir()),
    }
    with stopping_leftovers(tmp_path):
        for number, step in enumerate(steps(text, START, END), 1):
            script = (
                "set -euo pipefail\nset -a\n"
                f"if [ -f {state} ]; then . {state}; fi\n"
                f"{step.commands}\n"
                f"export -p >{state}\n"
            )
            started = time.monotonic()
            run = subprocess.run(
                ["bash", "-c", script],
                cwd=repo_root(),
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
            )
            where = f"block {number} ({time.monotonic() - started:.1f} s):\n{step.commands}"
            assert run.returncode == 0, f"{where}\nexit {run.returncode}\n{run.stdout}{run.stderr}"
            if step.expected is not None:
                expected = step.expected
                for name, value in chosen.items():
                    for default, actual in zip(defaults[name].split(), value.split(), strict=True):
                        expected = expected.replace(default, actual)
                assert matches(expected, run.stdout), (
                    f"{where}\nprinted:\n{run.stdout}\nthe document says:\n{expected}"
                )
    assert not list(tmp_path.glob("tmp.*")), "the walkthrough removes its LAB at the end"
