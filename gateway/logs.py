"""Process-wide structured logging: JSON lines on stderr through structlog, and the
writer thread of the request lines.

Owns the logging configuration; it must never log request secrets (callers pass only
redacted fields), nor let a slow stderr reader stall the event loop with request lines.
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)
_JSON = structlog.processors.JSONRenderer()


def configure(level: str = "INFO") -> None:
    # Libraries' stdlib records (aiohttp's server errors, oslo.messaging, oslo.policy)
    # become JSON lines of the same shape as the gateway's own, with the logger's name.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _TIMESTAMP,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _JSON,
            ],
        )
    )
    logging.basicConfig(level=level, handlers=[handler])
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _TIMESTAMP,
            structlog.processors.format_exc_info,
            _JSON,
        ],
        # Resolve sys.stderr when a logger is made, not at configure time, so a replaced
        # stderr (a daemoniser, a test's capture) is honoured.
        logger_factory=_stderr_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=False,
    )


HTTP_SERVER_LOGGER = "gateway.http"


class DropRequestBytes(logging.Filter):
    """aiohttp's HTTP parser errors quote the raw request, tokens included, in their text
    (a bare-LF request line quotes every header): keep the event, drop the quote."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "malformed HTTP request refused (%s %s)"
            record.args = (error.code, type(error).__name__)
            record.exc_info = None
            record.exc_text = None
        return True


EXIT_USAGE = 2  # argparse's own status for bad arguments


def command_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.Namespace | int:
    """A subcommand's arguments, with log lines sent to stderr (WARNING and up) so that
    its stdout holds only its answer; the exit status instead after --help or bad ones."""
    configure("WARNING")
    try:
        return parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on bad arguments
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE


def http_server_logger() -> logging.Logger:
    """The logger of the API listener's HTTP server, without request bytes in it."""
    logger = logging.getLogger(HTTP_SERVER_LOGGER)
    if not any(isinstance(existing, DropRequestBytes) for existing in logger.filters):
        logger.addFilter(DropRequestBytes())
    return logger


def _render(event: dict[str, Any]) -> str:
    """A line exactly as structlog renders the gateway's own events."""
    return str(_JSON(None, event["level"], _TIMESTAMP(None, event["level"], event)))


class RequestLines:
    """One JSON line per answered request, written to stderr by a thread of its own.

    The event loop renders a line and queues it (microseconds); the thread writes. The
    queue is bounded: while stderr's reader lags that far behind, lines are dropped and
    counted, and the count is written as a ``request_lines_dropped`` line once it keeps up.
    """

    _STOP = object()

    def __init__(
        self,
        capacity: int = 10000,
        stream: Callable[[], IO[str]] = lambda: sys.stderr,
    ) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._stream = stream
        self.dropped = 0
        self._reported = 0
        self._thread = threading.Thread(target=self._write, name="request-lines", daemon=True)
        self._thread.start()

    def emit(self, fields: Mapping[str, Any]) -> None:
        line = _render({**fields, "event": "request", "level": "info"})
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop the thread."""
        try:
            self._queue.put(self._STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _write(self) -> None:
        while True:
            lines = [self._queue.get()]
            while len(lines) < 256:  # one write for what queued up meanwhile
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = self._STOP in lines
            text = "".join(f"{line}\n" for line in lines if isinstance(line, str))
            dropped = self.dropped
            if dropped != self._reported:
                report = {
                    "dropped": dropped - self._reported,
                    "hint": "stderr is read too slowly; the audit trail has every call",
                    "event": "request_lines_dropped",
                    "level": "warning",
                }
                text += _render(report) + "\n"
                self._reported = dropped
            try:
                stream = self._stream()
                stream.write(text)
                stream.flush()
            except (OSError, ValueError):
                pass  # stderr is gone (closed pipe): nothing else to tell it to
            if stop:
                return
