"""README.md, "TLS": the example run as a new operator would, from the repository root:
openssl makes a CA and a certificate, the demo serves HTTPS, curl verifies it against
that CA (and refuses it without). Free ports replace the example's defaults, and the
text the README shows is compared with what the block prints (``...`` is any text)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import skip_or_fail
from tests.support.doc_blocks import matches, steps
from tests.support.processes import free_port, repo_root

README = repo_root() / "README.md"
START, END = "<!-- tls-example:start -->", "<!-- tls-example:end -->"
DEFAULT = re.compile(r'"\$\{(\w+):=([^}]*)\}"')


@contextlib.contextmanager
def stopping_leftovers(directory: Path) -> Iterator[None]:
    """A demo the block failed to stop (it stops it itself when it passes)."""
    try:
        yield
    finally:
        for pid_file in directory.rglob("gateway.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().split()[0])
                if str(directory).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGTERM)


def test_the_readme_tls_example_serves_https_that_curl_verifies(tmp_path: Path) -> None:
    for tool in ("openssl", "curl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            skip_or_fail(f"{tool} is not installed (the README's TLS example uses it)")
    text = README.read_text()
    [step] = steps(text, START, END)
    assert step.expected is not None
    defaults = dict(DEFAULT.findall(step.commands))
    assert set(defaults) == {"GATEWAY_PORT", "ADMIN_PORT"}
    chosen = {name: str(free_port()) for name in defaults}
    expected = step.expected
    for name, default in defaults.items():
        expected = expected.replace(f":{default}", f":{chosen[name]}")
    env = {**os.environ, **chosen, "TMPDIR": str(tmp_path)}  # mktemp -d lands here
    with stopping_leftovers(tmp_path):
        run = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + step.commands],
            cwd=repo_root(),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}{run.stderr}"
    assert matches(expected, run.stdout), f"printed:\n{run.stdout}\nREADME:\n{expected}"
    assert not list(tmp_path.glob("tmp.*")), "the example removes its directory"
