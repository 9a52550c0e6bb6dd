"""Policy in a running gateway: hostile files refused at start and at reload (seen in
/metrics, the last good policy in force), remote checks decided off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import SimUpstream
from tests.support.api_client import action_status
from tests.support.decision_point import DecisionPoint, decision_point
from tests.support.gateway import admin_url, base_url, run_gateway, with_noauth
from tests.support.waiting import wait_until
from tests.unit.test_policy import write

PAUSE = "os_compute_api:os-pause-server:pause"
DEEP = f'"{PAUSE}": "{"not " * 9_999}role:member"\n'


async def post_pause(gateway: str, server_id: str, token: str) -> int:
    return await action_status(gateway, server_id, {"pause": None}, token)


async def scrape(admin: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{admin}/metrics") as response:
        text = await response.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("nova_gateway_policy")
    }


async def wait_for(admin: str, expected: dict[str, float], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = await scrape(admin)
        if all(seen.get(name) == value for name, value in expected.items()):
            return
        assert time.monotonic() < deadline, (expected, seen)
        await asyncio.sleep(0.05)


async def test_deep_rule_reload_is_refused_and_counted(
    novasim_upstream: SimUpstream, start_gateway: Any, tmp_path: Path
) -> None:
    site = tmp_path / "policy.d" / "site.yaml"
    write(site, f'"{PAUSE}": "rule:context_is_admin"\n')
    listeners = await start_gateway(
        novasim_upstream.url,
        policy__policy_dir=str(tmp_path),
        policy__reload_interval=0.1,
        metrics__sample_interval=0.1,
    )
    api, admin = base_url(listeners), admin_url(listeners)
    server = novasim_upstream.make_server(project_id="p1", user_id="alice")
    await wait_for(admin, {"nova_gateway_policy_last_reload_ok": 1})
    write(site, DEEP)
    await wait_for(
        admin,
        {
            "nova_gateway_policy_reload_failures_total": 1,
            "nova_gateway_policy_last_reload_ok": 0,
        },
    )
    assert "levels deep" in (listeners.gate.policy.last_error or "")
    # The last good policy decides: members may not pause, admins may.
    assert await post_pause(api, server, "alice:p1") == 403
    assert await post_pause(api, server, "admin:admin") == 202
    assert novasim_upstream.actions_received(server) == [b'{"pause": null}']


def test_deep_rule_at_start_exits_2_naming_the_rule(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    write(policies / "policy.yaml", DEEP)
    sections = with_noauth({"policy": {"policy_dir": policies}})
    result = run_gateway(tmp_path, sections, "--upstream-url", "http://127.0.0.1:9/v2.1")
    assert result.returncode == 2, result.stderr
    assert f"cannot start: policy.yaml: {PAUSE}: nests 'not' and parentheses" in result.stderr
    assert "Traceback" not in result.stderr


def test_enforce_scope_false_exits_2(tmp_path: Path) -> None:
    result = run_gateway(tmp_path, {"policy": {"enforce_scope": "false"}})
    assert result.returncode == 2, result.stderr
    assert "invalid configuration: [policy] enforce_scope: false is not supported" in (
        result.stderr
    )


@pytest.fixture
def point() -> Iterator[DecisionPoint]:
    with decision_point(lambda rule: rule == PAUSE, delay=3.0) as running:
        yield running


async def test_remote_check_decides_off_the_loop(
    novasim_upstream: SimUpstream, start_gateway: Any, tmp_path: Path, point: DecisionPoint
) -> None:
    write(
        tmp_path / "policy.yaml",
        f'"project_member_or_admin": "http:{point.url}/check"\n'
        f'"os_compute_api:os-pause-server:unpause": "http:{point.url}/slow"\n',
    )
    listeners = await start_gateway(
        novasim_upstream.url, policy__policy_dir=str(tmp_path), policy__remote_timeout=1.0
    )
    api, admin = base_url(listeners), admin_url(listeners)
    server = novasim_upstream.make_server(project_id="p1", user_id="alice")
    # The decision point answers by the enforced rule: pause yes (forwarded).
    assert await post_pause(api, server, "alice:p1") == 202
    (asked,) = point.take()
    assert (asked.rule, asked.target["project_id"]) == (PAUSE, "p1")
    assert asked.credentials["roles"] == ["member", "reader"]
    assert asked.credentials["is_admin"] is False
    # A slow decision point: the answer is a refusal after remote_timeout, and the
    # gateway answers other requests meanwhile.
    started = time.monotonic()
    slow = asyncio.ensure_future(
        action_status(api, server, {"unpause": None}, "alice:p1"),
    )
    await wait_until(lambda: point.asked, what="the slow decision point to be asked")
    async with aiohttp.ClientSession() as session, session.get(f"{admin}/healthz") as response:
        assert response.status == 200
    assert time.monotonic() - started < 0.9  # before the decision point gave up
    assert (await slow) == 403
    assert time.monotonic() - started >= 1.0
    assert novasim_upstream.actions_received(server) == [b'{"pause": null}']
