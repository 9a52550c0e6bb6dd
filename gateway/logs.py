"""Process-wide structured logging: JSON lines on stderr through structlog.

Owns the logging configuration; it must never log request secrets (callers pass only
redacted fields).
"""

from __future__ import annotations

import logging
import sys

import structlog
from aiohttp.http_exceptions import HttpProcessingError


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure(level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
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


def http_server_logger() -> logging.Logger:
    """The logger of the API listener's HTTP server, without request bytes in it."""
    logger = logging.getLogger(HTTP_SERVER_LOGGER)
    if not any(isinstance(existing, DropRequestBytes) for existing in logger.filters):
        logger.addFilter(DropRequestBytes())
    return logger
