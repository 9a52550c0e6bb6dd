"""The one file watcher: what tells a changed file, and the loop that outlives a failure."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.watch import FileWatcher, every, mark, marks, missing


def test_a_mark_changes_with_content_inode_and_presence(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    assert mark(path) == (str(path),) and missing(mark(path))
    path.write_bytes(b"one")
    first = mark(path)
    assert not missing(first)
    stat = os.stat(path)
    assert first == (str(path), stat.st_ino, 3, stat.st_mtime_ns)
    path.write_bytes(b"three")  # rewritten in place: size (and mtime) change
    assert mark(path) != first
    replacement = tmp_path / "cert.tmp"
    replacement.write_bytes(b"three")
    before = mark(path)
    os.replace(replacement, path)  # a secret volume's swap: a new inode
    assert mark(path) != before
    assert marks([path, tmp_path / "gone"]) == (mark(path), (str(tmp_path / "gone"),))


def test_the_watcher_reports_each_change_once(tmp_path: Path) -> None:
    directory = tmp_path / "policy.d"
    directory.mkdir()
    watcher = FileWatcher(lambda: sorted(directory.iterdir()))
    assert watcher.look() is None  # no files, nothing known: unchanged
    (directory / "a.yaml").write_text("x")
    seen = watcher.look()
    assert seen is not None and [entry[0] for entry in seen] == [str(directory / "a.yaml")]
    assert watcher.look() is None
    (directory / "b.yaml").write_text("y")  # a file added
    assert watcher.look() is not None
    (directory / "a.yaml").unlink()  # a file removed
    assert watcher.look() is not None
    assert watcher.look() is None


async def test_changed_looks_off_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    watcher = FileWatcher(lambda: [path], known=marks([path]))
    assert await watcher.changed() is None
    path.write_text("key")
    assert await watcher.changed() == marks([path])


async def test_every_goes_on_after_a_failing_step() -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise RuntimeError("a surprise in what the watcher triggers")

    task = asyncio.create_task(every(0.001, step, "test"))
    try:
        await asyncio.wait_for(third.wait(), timeout=5)
    finally:
        task.cancel()
    assert calls[:3] == [0, 1, 2]
