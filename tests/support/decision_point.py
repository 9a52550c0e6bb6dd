"""A remote policy decision point on loopback, as oslo.policy's ``http:`` check calls one.

Owns a threaded HTTP server that answers by the posted rule name and records every
request; it must never decide by anything but the rule name (``/slow...`` paths only
answer late).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_RECORDED = 1_000_000  # bounded: the long differential sends a few hundred thousand


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a caller that timed out has hung up: nothing to report


@dataclass(frozen=True)
class Asked:
    """One request, as the decision point read it."""

    path: str
    content_type: str
    rule: Any
    target: Any
    credentials: Any


def by_rule_name(rule: str | None) -> bool:
    """A fixed answer per rule name (two in three allowed): no state, same for every caller."""
    return rule is not None and zlib.crc32(rule.encode()) % 3 != 0


class DecisionPoint:
    """``http://127.0.0.1:<port>/...``: answers ``True``/``False`` by rule name.

    Paths starting with ``/slow`` are answered after ``delay`` seconds (to exceed a
    remote_timeout).
    """

    def __init__(
        self, answer: Callable[[str | None], bool] = by_rule_name, delay: float = 2.0
    ) -> None:
        self.answer = answer
        self.delay = delay
        self.asked: list[Asked] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The ``//host:port`` part that follows ``http:`` in a check string."""
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # bound to "127.0.0.1": the socket reports a str
        return f"//{host}:{port}"

    def take(self) -> list[Asked]:
        """What was asked since the last take, in order."""
        with self._lock:
            asked, self.asked = self.asked, []
        return asked

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._released.set()  # slow answers stop waiting
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _record(self, asked: Asked) -> None:
        with self._lock:
            if len(self.asked) < MAX_RECORDED:
                self.asked.append(asked)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        point = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8")
                content_type = self.headers.get("Content-Type", "")
                if content_type.startswith("application/json"):
                    fields = json.loads(body)
                else:  # oslo's default: each field JSON-encoded, the whole form-encoded
                    fields = {key: json.loads(values[0]) for key, values in parse_qs(body).items()}
                rule = fields.get("rule")
                point._record(
                    Asked(
                        self.path,
                        content_type,
                        rule,
                        fields.get("target"),
                        fields.get("credentials"),
                    )
                )
                if self.path.startswith("/slow"):
                    point._released.wait(point.delay)
                answer = b"True" if point.answer(rule) else b"False"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read .asked

        return Handler


@contextmanager
def decision_point(
    answer: Callable[[str | None], bool] = by_rule_name, delay: float = 2.0
) -> Iterator[DecisionPoint]:
    point = DecisionPoint(answer, delay)
    point.start()
    try:
        yield point
    finally:
        point.stop()
