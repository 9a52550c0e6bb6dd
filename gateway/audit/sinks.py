"""Where sealed audit lines go: an append-only file set, or oslo.messaging notifications.

Owns the blocking I/O of each sink (append, fsync, rotate; publish); it must never run on
the event loop, nor drop or reorder a line (``write`` stores all, or says how many it did).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway.tls.messaging import RabbitTLS, messaging_conf

FSYNC_POLICIES = ("never", "interval", "every-record")
FILE_SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Sealed:
    """One record ready for a sink: its sealed form and its exact line."""

    record: Mapping[str, Any]
    line: str
    event_type: str


class SinkError(Exception):
    """A write failed after ``written`` of the given lines were stored."""

    def __init__(self, message: str, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


class Sink(Protocol):
    """A blocking destination for sealed lines, driven by one writer thread."""

    name: str
    batch_size: int

    def write(self, batch: Sequence[Sealed]) -> None:
        """Store every line in order, or raise SinkError saying how many were stored."""
        ...

    def tick(self) -> None:
        """Periodic upkeep between writes (interval fsync); may raise SinkError."""
        ...

    def close(self) -> None: ...


class FileSink:
    """Append-only JSON-lines files, one set per process, rotated by size and age.

    Files are never renamed: each new file gets the next index, so a reader (or
    ``audit verify``) sees the chain continue from one file into the next. If the
    current file stops being the one at its path (moved, deleted, replaced), the next
    write starts a new file rather than write into a file nobody will find.
    """

    name = "file"
    batch_size = 512

    def __init__(
        self,
        directory: Path,
        stem: str,
        *,
        fsync: str = "interval",
        fsync_interval: float = 1.0,
        rotate_bytes: int = 0,
        rotate_seconds: float = 0.0,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, not {fsync!r}")
        self.directory = directory
        self.stem = stem  # e.g. audit-<host>-<pid>-<start>: the process's own file set
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.index = 0
        self.path: Path | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._size = 0
        self._opened = 0.0
        self._dirty = False
        self._last_sync = time.monotonic()
        self.files_opened = 0

    # -- files -------------------------------------------------------------------------

    def _open_next(self) -> None:
        self._close_current()
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        index = self.index
        while True:
            index += 1
            path = self.directory / f"{self.stem}-{index:06d}{FILE_SUFFIX}"
            try:
                # O_EXCL: a file of ours is never appended to by a second writer.
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o640
                )
            except FileExistsError:
                continue
            break
        self.index = index
        self._fd = fd
        self.path = path
        status = os.fstat(fd)
        self._identity = (status.st_dev, status.st_ino)
        self._size = 0
        self._opened = time.monotonic()
        self.files_opened += 1
        if self.fsync != "never":
            self._sync_directory()

    def _sync_directory(self) -> None:
        # The new file's name must survive a crash too, not only its contents.
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _close_current(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self.fsync != "never" and self._dirty:
                os.fsync(fd)
        finally:
            self._dirty = False
            os.close(fd)

    def _still_ours(self) -> bool:
        """Is the path still our open file? (logrotate or an operator may have moved it)"""
        if self.path is None or self._identity is None:
            return False
        try:
            status = os.stat(self.path)
        except OSError:
            return False
        return (status.st_dev, status.st_ino) == self._identity

    def _due_for_rotation(self) -> bool:
        if self.rotate_bytes and self._size >= self.rotate_bytes:
            return True
        return bool(self.rotate_seconds) and time.monotonic() - self._opened >= self.rotate_seconds

    # -- Sink --------------------------------------------------------------------------

    def write(self, batch: Sequence[Sealed]) -> None:
        written = 0
        while written < len(batch):
            next_size = len(batch[written].line) + 1
            try:
                if (
                    self._fd is None
                    or self._due_for_rotation()
                    or (self._size and self._full(next_size))
                    or not self._still_ours()
                ):
                    self._open_next()
            except OSError as exc:
                self._abandon()
                raise SinkError(
                    f"cannot open an audit file in {self.directory}: {exc}", written
                ) from exc
            # As many lines as fit under rotate_bytes (at least one) go to this file.
            end = written + 1
            size = next_size
            while end < len(batch) and not self._full(size + len(batch[end].line) + 1):
                size += len(batch[end].line) + 1
                end += 1
            self._append(batch[written:end], written)
            written = end

    def _full(self, extra: int) -> bool:
        return bool(self.rotate_bytes) and self._size + extra > self.rotate_bytes

    def _append(self, lines: Sequence[Sealed], already: int) -> None:
        assert self._fd is not None
        data = "".join(item.line + "\n" for item in lines).encode("ascii")
        start = self._size
        try:
            view = memoryview(data)
            while view:
                count = os.write(self._fd, view)
                view = view[count:]
            if self.fsync == "every-record":
                os.fsync(self._fd)
                self._last_sync = time.monotonic()
            else:
                self._dirty = True
        except OSError as exc:
            # Take back a partial write so the retry does not leave half a line behind.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            self._abandon()
            raise SinkError(f"cannot append to {self.path}: {exc}", already) from exc
        self._size += len(data)

    def tick(self) -> None:
        if self.fsync != "interval" or not self._dirty or self._fd is None:
            return
        if time.monotonic() - self._last_sync < self.fsync_interval:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # Data that did not reach the disk may be gone from the page cache too
            # (Linux clears the error): report it; the chain shows what was lost.
            self._abandon()
            raise SinkError(f"fsync of {self.path} failed: {exc}") from exc
        self._dirty = False
        self._last_sync = time.monotonic()

    def _abandon(self) -> None:
        fd, self._fd = self._fd, None
        self._dirty = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        self._close_current()


def file_stem(host: str, pid: int, started: float | None = None) -> str:
    """``audit-<host>-<pid>-<UTC start>-<random>``: one file set (and chain) per process.

    The random part keeps two chains apart even if a pid comes back within a second.
    """
    moment = datetime.fromtimestamp(time.time() if started is None else started, UTC)
    safe_host = "".join(char if char.isalnum() or char in ".-" else "_" for char in host)
    return f"audit-{safe_host}-{pid}-{moment.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


class MessagingSink:
    """oslo.messaging notifications (RabbitMQ), as keystonemiddleware's audit notifier.

    oslo.messaging's notifier drivers log a failed send and carry on; an audit sink
    must know, so this sends through the transport the way the ``messagingv2`` driver
    does (same envelope, topic ``<topic>.info``) but lets the error reach the writer,
    which retries. Every call blocks: only the writer thread may make it.
    """

    name = "messaging"
    batch_size = 1

    def __init__(
        self,
        transport_url: str,
        topics: Sequence[str],
        publisher_id: str,
        *,
        driver: str = "messagingv2",
        exchange: str | None = None,
        config_files: Sequence[str] = (),
        config_dirs: Sequence[str] = (),
    ) -> None:
        with warnings.catch_warnings():
            # oslo.messaging imports eventlet (deprecated) through oslo.service; it is
            # never used here: sends happen in a plain thread.
            warnings.simplefilter("ignore")
            import oslo_messaging  # type: ignore[import-untyped]
        self._messaging = oslo_messaging
        # The gateway's own files: [oslo_messaging_rabbit] (TLS above all) as in nova.conf.
        conf = messaging_conf(config_files, config_dirs)
        RabbitTLS.of(conf, transport_url).check("the audit trail's messaging sink")
        self._transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self._topics = list(topics)
        self._exchange = exchange or None  # None: the transport's control exchange
        self._publisher_id = publisher_id
        self._version = 2.0 if driver == "messagingv2" else 1.0
        # (chain, seq) of the line being published, and the topics that already have it.
        self._done: tuple[tuple[Any, Any], set[str]] = ((None, None), set())
        self._lock = threading.Lock()

    def write(self, batch: Sequence[Sealed]) -> None:
        for position, item in enumerate(batch):
            try:
                self._publish(item)
            except Exception as exc:
                raise SinkError(f"notification not delivered: {exc}", written=position) from exc

    def _publish(self, item: Sealed) -> None:
        record = item.record
        message = {
            "message_id": str(uuid.uuid4()),
            "publisher_id": self._publisher_id,
            "event_type": item.event_type,
            "priority": "INFO",
            "payload": dict(record),
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
        context = {
            "request_id": _request_id(record),
            "global_request_id": _global_request_id(record),
        }
        marker = (record.get("chain"), record.get("seq"))
        with self._lock:
            if self._done[0] != marker:
                self._done = (marker, set())
            for topic in self._topics:
                if topic in self._done[1]:
                    continue  # a retry must not publish twice to a topic that got it
                target = self._messaging.Target(exchange=self._exchange, topic=f"{topic}.info")
                # retry=0: fail fast and let the writer back off (and fail closed).
                self._transport._send_notification(
                    target, context, message, version=self._version, retry=0
                )
                self._done[1].add(topic)

    def tick(self) -> None:
        return None

    def close(self) -> None:
        self._transport.cleanup()


def _request_id(record: Mapping[str, Any]) -> Any:
    initiator = record.get("initiator")
    if isinstance(initiator, Mapping) and "request_id" in initiator:
        return initiator["request_id"]  # CADF
    return record.get("request_id")


def _global_request_id(record: Mapping[str, Any]) -> Any:
    initiator = record.get("initiator")
    if isinstance(initiator, Mapping) and "global_request_id" in initiator:
        return initiator["global_request_id"]
    return record.get("global_request_id")
