"""The processes a benchmark starts: spawn on loopback, wait until ready, stop by PID.

Owns the lifetime of the children it started, and only those; it must never signal a
process it did not start, nor leave one running when the run ends (even on error).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"
READY_RE = re.compile(r"^READY (https?://\S+)", re.MULTILINE)
STOP_GRACE_SECONDS = 8.0


class StartError(RuntimeError):
    """A child exited or did not become ready in time; the message carries its log tail."""


def free_port() -> int:
    """A loopback TCP port that is free right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` right now."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                rest = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(rest[2]) == pgid:
            members.append(int(entry))
    return members


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """``argv`` run under ``taskset -c cpus`` (children inherit the affinity)."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


@dataclass
class Child:
    """One started process; it leads its own process group (pgid == pid)."""

    name: str
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        out, err = tail(self.stdout), tail(self.stderr)
        return f"--- {self.name} stdout\n{out}\n--- {self.name} stderr\n{err}"


class Children:
    """Every process the run started; ``stop_all`` ends them by PID, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._children: list[Child] = []

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> Child:
        stdout = self._log_dir / f"{name}.out"
        stderr = self._log_dir / f"{name}.err"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            # Files, not pipes: a chatty child (access logs) must never block on a full pipe.
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        child = Child(name, process, stdout, stderr)
        self._children.append(child)
        return child

    def wait_ready_line(self, child: Child, timeout: float) -> str:
        """The URL of the child's ``READY <url>`` line; StartError if it dies or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                match = READY_RE.search(child.stdout.read_text(encoding="utf-8", errors="replace"))
                if match is not None:
                    return match.group(1)
            if not child.alive():
                raise StartError(
                    f"{child.name} exited ({child.process.returncode})\n{child.logs()}"
                )
            time.sleep(0.05)
        raise StartError(f"{child.name} printed no READY line in {timeout:.0f} s\n{child.logs()}")

    def wait_port(self, child: Child, port: int, timeout: float) -> None:
        """Until a TCP connect to ``port`` succeeds; StartError if the child dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise StartError(
                    f"{child.name} exited ({child.process.returncode})\n{child.logs()}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((LOOPBACK, port)) == 0:
                    return
            time.sleep(0.05)
        raise StartError(
            f"{child.name} did not listen on {port} in {timeout:.0f} s\n{child.logs()}"
        )

    def stop(self, child: Child) -> None:
        """SIGTERM to the child's PID, then SIGKILL to its own group if it or a member lingers."""
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=STOP_GRACE_SECONDS)
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=STOP_GRACE_SECONDS)
        # Workers left behind: members of the group this child led (start_new_session),
        # each killed by its own PID.
        for pid in group_members(child.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def stop_all(self) -> None:
        while self._children:
            self.stop(self._children.pop())
