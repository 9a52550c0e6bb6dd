"""Logging: every line on stderr is JSON (libraries' records too), and request lines are
written by a thread with a bounded queue that drops and counts rather than block."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

from gateway.logs import RequestLines


def test_library_records_and_gateway_events_are_json_lines() -> None:
    program = """
import logging, structlog
from gateway import logs
logs.configure()
logging.getLogger("aiohttp.server").error("Error handling request %s", 7)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("oslo_messaging").exception("send failed")
structlog.get_logger().info("worker_ready", pid=1)
logging.getLogger("quiet").debug("not at INFO")
"""
    run = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    assert run.stdout == ""
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert [(line["event"], line["level"]) for line in lines] == [
        ("Error handling request 7", "error"),
        ("send failed", "error"),
        ("worker_ready", "info"),
    ]
    assert lines[0]["logger"] == "aiohttp.server"
    assert "ZeroDivisionError" in lines[1]["exception"]
    assert all(line["timestamp"].endswith("Z") for line in lines)


class BlockedStream(io.StringIO):
    """A stderr whose reader is stuck until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writing = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        assert self.release.wait(10)
        return super().write(text)


def test_request_lines_are_written_by_a_thread_and_dropped_when_stderr_lags() -> None:
    stream = BlockedStream()
    lines = RequestLines(capacity=5, stream=lambda: stream)
    lines.emit({"request_id": "req-0"})
    assert stream.writing.wait(10)  # the thread holds line 0 and waits on the reader
    for index in range(1, 9):
        lines.emit({"request_id": f"req-{index}"})  # never blocks the caller
    assert lines.dropped == 3  # five queued, three dropped
    stream.release.set()
    lines.close()
    written = [json.loads(line) for line in stream.getvalue().splitlines()]
    requests = [line["request_id"] for line in written if line["event"] == "request"]
    assert requests == [f"req-{index}" for index in range(6)]
    [report] = [line for line in written if line["event"] == "request_lines_dropped"]
    assert (report["dropped"], report["level"]) == (3, "warning")
    assert all(line["level"] in ("info", "warning") and "timestamp" in line for line in written)
