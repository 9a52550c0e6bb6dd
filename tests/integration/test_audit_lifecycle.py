"""The audit trail of a gateway process: SIGTERM answers the in-flight requests, flushes
their records and closes every worker's chain; `nova-gateway audit verify` then passes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.integration.upstream import HOLD, FakeUpstream
from tests.support.audit import read_records, write_key
from tests.support.gateway import start_gateway_process_async, with_noauth
from tests.support.waiting import wait_until

IN_FLIGHT = 4


async def test_sigterm_flushes_every_record_and_closes_each_worker_chain(
    fake_upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake_upstream
    trail = tmp_path / "trail"
    key_file = write_key(tmp_path)
    sections = with_noauth(
        {"audit": {"enabled": True, "hmac_key_file": key_file, "file_directory": trail}}
    )
    lab = await start_gateway_process_async(url, tmp_path, tmp_path, sections, workers=2)
    process = lab.process
    api = process.url.removesuffix("/v2.1")
    try:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
            for _ in range(10):
                async with session.get(f"{api}/v2.1/servers") as response:
                    assert response.status == 200
            before = len(upstream.received)
            held = [asyncio.create_task(session.get(f"{api}{HOLD}")) for _ in range(IN_FLIGHT)]
            await upstream.wait_for(before + IN_FLIGHT)
            process._popen.send_signal(signal.SIGTERM)
            await wait_until(
                lambda: process.log_path.read_text().count("worker_draining") == 2,
                timeout=20,
                what="both workers draining",
            )
            upstream.release.set()
            answers = await asyncio.gather(*held)
            assert [answer.status for answer in answers] == [200] * IN_FLIGHT
        assert await asyncio.to_thread(process._popen.wait, 30) == 0
    finally:
        process.stop()
    records = read_records(trail)
    requests = [record for record in records if record["event"] == "request"]
    assert len(requests) == 10 + IN_FLIGHT
    assert sum(record["request"]["path"] == HOLD for record in requests) == IN_FLIGHT
    closed = [record for record in records if record["event"] == "chain_closed"]
    assert len({record["chain"] for record in records}) == len(closed) == 2  # one per worker
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "verify", "--key-file", str(key_file),
         str(trail)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("closed") == 2
