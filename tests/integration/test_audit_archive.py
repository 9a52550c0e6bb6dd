"""deploy/systemd/nova-gateway-audit-archive: finished audit files move to the archive only
after the whole trail verifies, a running worker's newest file stays, and archive plus
live files still verify together afterwards (also once the worker wrote on)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gateway.audit import chain
from gateway.audit.chain import ChainReport
from gateway.audit.ledger import expand
from tests.support.audit import (
    audit_overrides,
    read_records,
    send,
    simulator,
    write_key,
)
from tests.support.gateway import base_url, running_gateway
from tests.support.processes import repo_root
from tests.support.waiting import wait_until

SCRIPT = repo_root() / "deploy" / "systemd" / "nova-gateway-audit-archive"
TWO_DAYS = 2 * 86400


def run(*argv: str, minutes: int = 1440) -> subprocess.CompletedProcess[str]:
    # The script calls `nova-gateway` from PATH, as the systemd unit sets it.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "ARCHIVE_AFTER_MINUTES": str(minutes)}
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, env=env, timeout=60)


def verify(key: Path, *directories: Path) -> list[ChainReport]:
    """What `nova-gateway audit verify DIR...` checks, in this process."""
    return chain.verify(chain.read_files(expand(map(str, directories)), chain.load_key(key)))


def age(directory: Path, seconds: float) -> None:
    for path in directory.glob("*.jsonl"):
        stamp = time.time() - seconds
        os.utime(path, (stamp, stamp))


def chains(directory: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        found.setdefault(path.name.rsplit("-", 1)[0], []).append(path.name)
    return found


async def test_archive_moves_finished_files_and_the_trail_still_verifies(tmp_path: Path) -> None:
    live, archive = tmp_path / "audit", tmp_path / "audit-archive"
    key = write_key(tmp_path)
    # Small files: every few records start the next file of the chain.
    options = audit_overrides(live, key, file_rotate_bytes=3000)
    async with simulator() as sim:
        async with running_gateway(sim.url, options) as stopped:
            for _ in range(8):
                assert (await send(base_url(stopped), "GET", "/v2.1/flavors")).status == 200
        # This gateway stopped cleanly (its chain is closed); the next one keeps running.
        async with running_gateway(sim.url, options) as running:
            for _ in range(8):
                assert (await send(base_url(running), "GET", "/v2.1/flavors")).status == 200
            # Records are written by the trail's threads: wait until all 16 are on disk.
            await wait_until(
                lambda: sum(r["event"] == "request" for r in read_records(live)) == 16,
                what="the running gateway's records",
            )
            before = chains(live)
            assert len(before) == 2 and all(len(files) > 2 for files in before.values())
            closed_chain, open_chain = _closed_and_open(before, live)

            fresh = run(str(live), str(archive), str(key))  # nothing is a day old yet
            assert fresh.returncode == 0, fresh.stderr
            assert "moved 0 file(s)" in fresh.stdout and chains(live) == before

            age(live, TWO_DAYS)
            moved = run(str(live), str(archive), str(key))
            assert moved.returncode == 0, moved.stderr
            left, archived = chains(live), chains(archive)
            assert closed_chain not in left  # closed: every file went
            assert archived[closed_chain] == before[closed_chain]
            assert left[open_chain] == before[open_chain][-1:]  # the newest stays
            assert archived[open_chain] == before[open_chain][:-1]
            assert f"moved {sum(map(len, archived.values()))} file(s)" in moved.stdout

            for _ in range(4):  # the running worker writes on, into its newest file
                assert (await send(base_url(running), "GET", "/v2.1/flavors")).status == 200
        together = verify(key, archive, live)
        assert [report.problem for report in together] == [None, None]
        assert all(report.closed and report.first_seq == 1 for report in together)

    # An altered record anywhere: nothing moves, and the unit fails.
    age(live, TWO_DAYS)
    first = archive / sorted(chains(archive)[open_chain])[0]
    first.write_text(first.read_text().replace('"GET"', '"PUT"', 1))
    unmoved = chains(live)
    assert len(unmoved[open_chain]) > 1  # rotated on: these would move if it verified
    refused = run(str(live), str(archive), str(key))
    assert refused.returncode == 1
    assert "does not verify; nothing moved" in refused.stderr
    assert chains(live) == unmoved


def _closed_and_open(before: dict[str, list[str]], live: Path) -> tuple[str, str]:
    closed = [
        chain
        for chain, files in before.items()
        if '"event":"chain_closed"' in (live / files[-1]).read_text()
    ]
    assert len(closed) == 1, before
    (open_chain,) = set(before) - set(closed)
    return closed[0], open_chain
