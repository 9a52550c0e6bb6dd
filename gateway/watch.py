"""Files watched for change: one way to tell a changed file, one polling loop.

Owns how the policy files, the JWT key files and the listeners' certificates are noticed
to have changed; it must never read a file's content, nor stat on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# (path, inode, size, mtime_ns) for a file, (path,) for one that is missing.
FileMark = tuple[str, int, int, int] | tuple[str]
Marks = tuple[FileMark, ...]


def mark(path: str | Path) -> FileMark:
    """What tells a changed file apart cheaply. A Kubernetes secret or ConfigMap volume
    swaps a symlink (the inode changes); editors, certbot and cert-manager rewrite (size
    and mtime change). Blocking: one stat()."""
    name = str(path)
    try:
        status = os.stat(name)
    except OSError:
        return (name,)
    return (name, status.st_ino, status.st_size, status.st_mtime_ns)


def marks(paths: Iterable[str | Path]) -> Marks:
    """The marks of ``paths`` in their order; a file added, removed or renamed shows too."""
    return tuple(mark(path) for path in paths)


def missing(file_mark: FileMark) -> bool:
    return len(file_mark) == 1


class FileWatcher:
    """Tells when a set of files changed since it last looked; the set itself may be
    recomputed each time (a policy.d directory gains and loses files)."""

    def __init__(self, paths: Callable[[], Iterable[str | Path]], known: Marks = ()) -> None:
        self._paths = paths
        self.known = known

    def look(self) -> Marks | None:
        """Blocking: the new marks when something changed, else None. The new marks are
        remembered before the caller reads the files, so a half-written file is tried
        again only once it changes again, not at every look."""
        current = marks(self._paths())
        if current == self.known:
            return None
        self.known = current
        return current

    async def changed(self) -> Marks | None:
        """``look`` in a worker thread: a stat round on a slow volume must not stall the loop."""
        return await asyncio.to_thread(self.look)


async def every(interval: float, step: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``step`` every ``interval`` seconds until cancelled; a failing step is logged
    and the loop goes on (a watcher must outlive any surprise in what it triggers)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await step()
        except Exception:
            log.exception("file watch step failed", watcher=name)
