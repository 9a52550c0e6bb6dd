"""A bounded record of every request the simulator received, for tests to inspect.

Owns the ring buffer and the JSON shape of a record; it must never change a request
nor hold more than its bound (the oldest record is dropped first).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass
class RecordedRequest:
    """What arrived on the wire (``path`` is the raw path with its query string)."""

    method: str
    path: str
    raw_headers: tuple[tuple[bytes, bytes], ...]  # as received; decoded on demand
    body: bytes
    time: float
    request_id: str
    status: int | None = None  # filled in once the answer is decided

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Header pairs in arrival order, repeated names kept (latin-1, as HTTP/1.1)."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw_headers]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    def to_json(self) -> dict[str, Any]:
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "method": self.method,
            "path": self.path,
            "headers": [list(pair) for pair in self.headers],
            "body": text if text is not None else base64.b64encode(self.body).decode(),
            "body_encoding": "utf-8" if text is not None else "base64",
            "time": self.time,
            "request_id": self.request_id,
            "status": self.status,
        }

    @staticmethod
    def decode_body(record: dict[str, Any]) -> bytes:
        """The body bytes of a record as ``to_json`` rendered it."""
        if record["body_encoding"] == "base64":
            try:
                return base64.b64decode(record["body"], validate=True)
            except binascii.Error as exc:
                raise ValueError("record body is not valid base64") from exc
        return str(record["body"]).encode("utf-8")


class Recorder:
    """The last ``capacity`` requests, oldest first."""

    def __init__(self, capacity: int) -> None:
        self._records: deque[RecordedRequest] = deque(maxlen=max(capacity, 0))

    def record(
        self,
        method: str,
        path: str,
        raw_headers: tuple[tuple[bytes, bytes], ...],
        body: bytes,
        request_id: str,
    ) -> RecordedRequest:
        entry = RecordedRequest(method, path, raw_headers, body, time.time(), request_id)
        self._records.append(entry)
        return entry

    def records(self) -> list[RecordedRequest]:
        return list(self._records)

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
