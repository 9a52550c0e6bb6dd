"""Running one load generator (wrk, or the fixed-rate generator) and reading its result.

Owns the generator's command line, its deadline and its CPU use (from wait4); it must
never aim at anything but loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import LOOPBACK, pinned

DEADLINE_SLACK_SECONDS = 20.0
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LoadResult:
    """What the generator reported (its JSON line) and the CPU it used itself."""

    report: dict[str, Any]
    cpu_seconds: float


class LoadError(RuntimeError):
    """The generator failed, overran its deadline or printed no result."""


def _run(argv: list[str], marker: str, seconds: float, log: Path) -> LoadResult:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    deadline = time.monotonic() + seconds + DEADLINE_SLACK_SECONDS
    status = None
    usage = None
    try:
        while time.monotonic() < deadline:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode is None or usage is None:
        raise LoadError(f"{argv[0]} overran its deadline")
    text = log.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():
        if line.startswith(marker):
            report: dict[str, Any] = json.loads(line[len(marker) :])
            return LoadResult(report, usage.ru_utime + usage.ru_stime)
    raise LoadError(f"{argv[0]} exited {process.returncode} without a result:\n{text[-1500:]}")


def run_wrk(
    wrk: str, script: Path, port: int, connections: int, seconds: float, cpus: str | None, log: Path
) -> LoadResult:
    argv = pinned(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "-s",
            str(script),
            f"http://{LOOPBACK}:{port}",
        ],
        cpus,
    )
    return _run(argv, "WRKJSON ", seconds, log)


def run_openloop(
    scenario: str,
    server_ids: list[str],
    port: int,
    rate: float,
    seconds: float,
    connections: int,
    cpus: str | None,
    log: Path,
) -> LoadResult:
    argv = pinned(
        [
            sys.executable,
            "-m",
            "bench.openloop",
            "--port",
            str(port),
            "--scenario",
            scenario,
            "--rate",
            f"{rate:g}",
            "--seconds",
            f"{seconds:g}",
            "--connections",
            str(connections),
            *[arg for server_id in server_ids for arg in ("--server", server_id)],
        ],
        cpus,
    )
    return _run(argv, "OPENLOOPJSON ", seconds, log)
