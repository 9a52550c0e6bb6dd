"""Checks tests/support/processes.py on tiny stand-in servers (no lab needed, ~2 s).

Owns the helper's contract (READY, early exit, deadline, SIGKILL fallback); must never start a lab.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.processes import ProcessStartError, free_port, start_server

ANNOUNCE = (
    "import time; print('booting'); print('READY http://127.0.0.1:1/x (pid)'); time.sleep(60)"
)
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('READY http://127.0.0.1:2/', flush=True); time.sleep(60)"
)


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def test_ready_line_gives_url_and_stop_terminates(tmp_path: Path) -> None:
    with start_server("announce", python(ANNOUNCE), ready_timeout=10, log_dir=tmp_path) as server:
        assert server.url == "http://127.0.0.1:1/x"
        assert server.running
    assert not server.running
    assert server.log_tail().splitlines()[1:] == ["booting", "READY http://127.0.0.1:1/x (pid)"]


def test_env_reaches_the_child(tmp_path: Path) -> None:
    code = "import os, time; print('READY ' + os.environ['WANT'], flush=True); time.sleep(60)"
    env = {"WANT": f"http://127.0.0.1:{free_port()}/"}
    with start_server("env", python(code), env=env, log_dir=tmp_path) as server:
        assert server.url == env["WANT"]


def test_early_exit_fails_fast_with_log(tmp_path: Path) -> None:
    code = "import sys; print('port busy'); sys.exit(3)"
    with pytest.raises(ProcessStartError, match=r"(?s)exited with code 3.*port busy"):
        start_server("early-exit", python(code), ready_timeout=30, log_dir=tmp_path)


def test_silence_past_the_deadline_fails_and_stops_the_child(tmp_path: Path) -> None:
    code = "import time; print('thinking', flush=True); time.sleep(60)"
    with pytest.raises(ProcessStartError, match=r"(?s)no READY line within 1s.*thinking"):
        start_server("silent", python(code), ready_timeout=1, log_dir=tmp_path)


def test_sigterm_ignored_then_sigkill(tmp_path: Path) -> None:
    server = start_server("stubborn", python(STUBBORN), log_dir=tmp_path)
    assert server.stop(timeout=0.5) == -9
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
