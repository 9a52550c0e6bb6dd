"""The gateway as a process: SIGTERM drains in-flight requests, SIGHUP reloads, workers."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.upstream import HOLD, FakeUpstream
from tests.support.gateway import run_gateway, start_gateway_process_async, with_noauth
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_for_value, wait_until

IN_FLIGHT = 5


async def start_gateway_process(
    upstream_url: str, tmp_path: Path, workers: int = 1
) -> ServerProcess:
    # The upstream runs on this event loop: the launch waits for READY off the loop.
    lab = await start_gateway_process_async(upstream_url, tmp_path, tmp_path, workers=workers)
    return lab.process


async def wait_for_log(process: ServerProcess, text: str, timeout: float = 10.0) -> None:
    await wait_until(lambda: text in process.log_path.read_text(), timeout, f"{text!r} logged")


async def connection_refused(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            await response.read()
    except aiohttp.ClientConnectorError:
        return True
    return False


async def test_sigterm_finishes_in_flight_requests_then_exits_zero(
    fake_upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    upstream, url = fake_upstream
    process = await start_gateway_process(url, tmp_path)
    api = process.url.removesuffix("/v2.1")
    try:
        before = len(upstream.received)
        session = aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"})
        held = [asyncio.create_task(session.get(f"{api}{HOLD}")) for _ in range(IN_FLIGHT)]
        await upstream.wait_for(before + IN_FLIGHT)
        process._popen.send_signal(signal.SIGTERM)
        await wait_for_log(process, "worker_draining")
        await wait_for_value(
            lambda: connection_refused(f"{api}/v2.1/servers"),
            bool,
            what="connections refused after SIGTERM",
        )
        upstream.release.set()
        responses = await asyncio.gather(*held)
        assert [response.status for response in responses] == [200] * IN_FLIGHT
        assert [await response.text() for response in responses] == ["done"] * IN_FLIGHT
        await session.close()
        code = await asyncio.to_thread(process._popen.wait, 15)
        assert code == 0
    finally:
        process.stop()


RENAME = {"server": {"name": "x" * 1000}}  # a JSON body of about 1 kB


async def test_sighup_reloads_configuration_without_restart(
    fake_upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    _, url = fake_upstream
    process = await start_gateway_process(url, tmp_path)
    api = process.url.removesuffix("/v2.1")
    try:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": "alice:p1"}) as session:
            async with session.post(f"{api}/v2.1/servers", json=RENAME) as response:
                assert response.status == 200
            (tmp_path / "gateway.conf").write_text(
                "[gateway]\nworkers = 1\n[limits]\nmax_request_body_size = 100\n"
                "[identity]\nmode = noauth\nallow_noauth = true\n"
            )
            process._popen.send_signal(signal.SIGHUP)
            await wait_for_log(process, "config_reloaded")
            async with session.post(f"{api}/v2.1/servers", json=RENAME) as response:
                assert response.status == 413
            assert process.running
    finally:
        assert process.stop() == 0


def children_of(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


async def test_workers_share_one_port(
    fake_upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    _, url = fake_upstream
    process = await start_gateway_process(url, tmp_path, workers=2)
    api = process.url.removesuffix("/v2.1")
    try:
        assert len(children_of(process.pid)) == 2
        statuses: list[Any] = []
        for _ in range(20):
            async with aiohttp.ClientSession(headers={"X-Auth-Token": "a:p1"}) as session:
                async with session.get(f"{api}/v2.1/servers") as response:
                    statuses.append(response.status)
        assert statuses == [200] * 20
    finally:
        assert process.stop() == 0


def test_a_configuration_that_cannot_work_exits_2_without_restarting(tmp_path: Path) -> None:
    """A broken policy fails every worker the same way: exit 2 with the reason, at once."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policy.yaml").write_text('"os_compute_api:os-pause-server:pause": [unclosed\n')
    sections = with_noauth({"policy": {"policy_dir": policies}})
    for workers in ("1", "2"):
        result = run_gateway(
            tmp_path, sections, "--upstream-url", "http://127.0.0.1:9/v2.1", "--workers", workers
        )
        assert result.returncode == 2, result.stderr
        assert "cannot start" in result.stderr and "policy.yaml" in result.stderr
