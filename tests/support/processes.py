"""Starts and stops loopback servers that announce themselves with a ``READY <url>`` line.

Owns the child processes it started, and only those; must never sleep to guess readiness.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

READY_RE = re.compile(r"^READY (https?://\S+)")
LOOPBACK = "127.0.0.1"
_EOF = object()
_RUNNING: dict[int, ServerProcess] = {}


class ProcessStartError(RuntimeError):
    """The server exited or stayed silent past its deadline; the message carries its log tail."""


def repo_root() -> Path:
    """The project's root directory (this file is ``<root>/tests/support/processes.py``)."""
    return Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared reference directory: ``$NOVA_GATEWAY_SHARED`` or ``<root>/../shared``."""
    configured = os.environ.get("NOVA_GATEWAY_SHARED")
    return Path(configured) if configured else repo_root().parent / "shared"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 80) -> str:
    """The last ``lines`` lines of a text file, or a note that it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class _LineRelay(threading.Thread):
    """Copies the child's stdout into its log file (closing it at EOF) and queues the READY url."""

    def __init__(self, stream: IO[str], log: IO[str]) -> None:
        super().__init__(daemon=True, name="line-relay")
        self._stream = stream
        self._log = log
        self.events: queue.Queue[object] = queue.Queue()

    def run(self) -> None:
        announced = False
        try:
            for line in self._stream:
                self._log.write(line)
                self._log.flush()
                match = None if announced else READY_RE.match(line)
                if match is not None:
                    announced = True
                    self.events.put(match.group(1))
        finally:
            self._log.close()
            self.events.put(_EOF)


@dataclass(eq=False)
class ServerProcess:
    """A running server: where it answers, its PID, its log; ``stop()`` ends it."""

    name: str
    url: str
    pid: int
    log_path: Path
    startup_seconds: float
    _popen: subprocess.Popen[str] = field(repr=False)
    _relay: _LineRelay = field(repr=False)

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self._popen.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        """The end of everything the process wrote to stdout and stderr."""
        return tail(self.log_path, lines)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL its process group; the exit code."""
        _RUNNING.pop(self.pid, None)
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.pid)
                self._popen.wait(5.0)
        self._relay.join(2.0)
        return self._popen.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (we made it with start_new_session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _open_log(name: str, log_dir: Path | None) -> IO[str]:
    directory = log_dir if log_dir is not None else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    return tempfile.NamedTemporaryFile(
        "w", prefix=f"{name}-", suffix=".log", dir=directory, delete=False, encoding="utf-8"
    )


def _await_ready(relay: _LineRelay, timeout: float) -> str | None:
    """The READY url, or None if the stream ended or the deadline passed first."""
    try:
        event = relay.events.get(timeout=timeout)
    except queue.Empty:
        return None
    return event if isinstance(event, str) else None


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_timeout: float = 60.0,
    log_dir: Path | None = None,
) -> ServerProcess:
    """Start ``argv`` (``env`` overrides os.environ) and wait for ``READY <url>`` on its stdout.

    Raises ProcessStartError, with the log tail, if the process exits first or
    ``ready_timeout`` seconds pass; the process is stopped in that case.
    """
    log = _open_log(name, log_dir)
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    started = time.monotonic()
    popen = subprocess.Popen(
        list(argv),
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    assert popen.stdout is not None
    relay = _LineRelay(popen.stdout, log)
    relay.start()
    url = _await_ready(relay, ready_timeout)
    server = ServerProcess(
        name, url or "", popen.pid, Path(log.name), time.monotonic() - started, popen, relay
    )
    if url is None:
        _fail_start(server, ready_timeout)
    _RUNNING[server.pid] = server
    return server


def _fail_start(server: ServerProcess, ready_timeout: float) -> None:
    server._relay.join(0.5)
    if not server._relay.is_alive():
        # Its output ended: the process is exiting; reap it so the message says so.
        with contextlib.suppress(subprocess.TimeoutExpired):
            server._popen.wait(5.0)
    exited = not server.running
    code = server.stop(timeout=5.0)
    why = f"exited with code {code}" if exited else f"no READY line within {ready_timeout:.0f}s"
    raise ProcessStartError(
        f"{server.name} {why}; log {server.log_path}, last lines:\n{server.log_tail(40)}"
    )


@atexit.register
def _stop_leftovers() -> None:
    """Last resort if a test session dies without running its fixture finalizers."""
    for server in list(_RUNNING.values()):
        server.stop(timeout=5.0)


@contextlib.contextmanager
def novasim_process(seed: int = 1) -> Iterator[tuple[str, str]]:
    """novasim as its own process (seeded): its /v2.1 URL and the id of a p1 server."""
    process = start_server(
        "novasim",
        [sys.executable, "-m", "novasim", "--host", LOOPBACK, "--port", "0", "--seed", str(seed)],
        ready_timeout=30,
    )
    try:
        root = process.url.removesuffix("/v2.1")
        with urllib.request.urlopen(f"{root}/_sim/seed", timeout=10) as answer:
            seeded = json.load(answer)["servers"]
        yield process.url, next(server for project, server in seeded if project == "p1")
    finally:
        process.stop()
