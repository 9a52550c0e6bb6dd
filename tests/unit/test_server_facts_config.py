"""[server_facts] and [server_lookup]: what the gateway refuses, and which store it builds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway import config
from gateway.nova.catalogue import BY_KEY, SERVER_RESOURCE_ACTIONS, FactsEffect
from gateway.servers.lookup import ServerReader
from gateway.web.app import build_facts_store, build_feed


def load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "gateway.conf"
    path.write_text(text)
    return config.load(["--config-file", str(path)])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("notifications_url = rabbit://h/\nmax_lag = 0.2\nheartbeat_interval = 0.5", "max_lag"),
        ("notifications_url = rabbit://h/\nqueue_prefix = amq.mine", "queue_prefix"),
        ("notifications_url = rabbit://h/\ntopics = ", "topics"),
        ("size = 0", "size"),
    ],
)
def test_invalid_server_facts_name_the_option(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(config.ConfigError, match=named):
        load(tmp_path, f"[server_facts]\n{text}\n")


def reader() -> ServerReader:
    return ServerReader(lambda: None, "http://nova/v2.1", _token, lambda: None)  # type: ignore[arg-type, return-value]


async def _token() -> str:
    return "t"


def test_no_bus_builds_the_cache_and_a_bus_the_mirror(tmp_path: Path) -> None:
    conf = load(tmp_path, "[server_lookup]\ncache_size = 7\n")
    assert build_feed(conf) is None
    plain = build_facts_store(conf, reader(), None)
    assert plain.feed is None and plain.settings.size == 7
    conf = load(tmp_path, "[server_facts]\nnotifications_url = rabbit://u:p@h:5672/\nsize = 9\n")
    mirror = build_facts_store(conf, reader(), build_feed(conf))
    assert mirror.feed is not None and mirror.settings.size == 9
    assert mirror.feed.queue.startswith("nova-gateway-facts.")


def test_an_unusable_bus_url_stops_the_start(tmp_path: Path) -> None:
    conf = load(tmp_path, "[server_facts]\nnotifications_url = kafka://h:9092/\n")
    with pytest.raises(config.ConfigError, match="notifications_url"):
        build_feed(conf)


def test_only_the_read_only_actions_leave_the_facts_as_they_were() -> None:
    # Nova's compute API changes no vm/task state, lock or image for these (consoles,
    # addresses, security groups, crash dump, a rename); every other action does.
    unchanged = {
        "trigger_crash_dump", "resetNetwork", "injectNetworkInfo", "os-getConsoleOutput",
        "addFloatingIp", "removeFloatingIp", "addFixedIp", "removeFixedIp",
        "os-getVNCConsole", "os-getSPICEConsole", "os-getSerialConsole", "os-getRDPConsole",
        "addSecurityGroup", "removeSecurityGroup",
    }  # fmt: skip
    assert {k for k, spec in BY_KEY.items() if spec.facts_effect is FactsEffect.NONE} == unchanged
    assert BY_KEY["lock"].facts_effect is FactsEffect.LOCK
    assert BY_KEY["unlock"].facts_effect is FactsEffect.UNLOCK
    assert SERVER_RESOURCE_ACTIONS["DELETE"].facts_effect is FactsEffect.STATE
    assert SERVER_RESOURCE_ACTIONS["PUT"].facts_effect is FactsEffect.NONE
