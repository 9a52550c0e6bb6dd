"""The gateway configurations bench.run compares: lean, and what an operator deploys.

Owns the files each gateway row starts with (configuration, rules, audit key); it must
never start a process (bench.run does) nor point anything off 127.0.0.1.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

REDIS_URL = "async+redis://127.0.0.1:6379/0"
# The operator row's limits: the shape of Nova's own historical rate limits (writes per
# verb, creates, and polling with changes-since; plain reads are not limited), per-action
# rules on top, and per-project overrides for many projects (the file's size must not
# matter). The benchmark's project p1 is a batch project whose limits the load never
# reaches: admitted calls are what is measured, each of them counted in Redis.
OVERRIDDEN_PROJECTS = 2000
RULES_HEAD = """\
rules:
  - name: reboots
    actions: [reboot]
    limit: 10 per minute
  - name: server-actions
    methods: [POST]
    path: /servers/*/action
    limit: 60 per minute
  - name: posts
    methods: [POST]
    limit: 120 per minute
  - name: creates
    methods: [POST]
    path: /servers
    limit: 120 per minute
  - name: puts
    methods: [PUT]
    limit: 120 per minute
  - name: deletes
    methods: [DELETE]
    limit: 120 per minute
    per: user
  - name: polling
    methods: [GET]
    path: /servers/detail
    limit: 120 per minute
costs:
  rebuild: 5
  evacuate: 5
overrides:
  p1:
    server-actions: 100000000 per minute
    posts: 100000000 per minute
"""


def rules_text(projects: int = OVERRIDDEN_PROJECTS) -> str:
    lines = [RULES_HEAD]
    for index in range(projects):
        lines.append(f"  project-{index:05d}:\n    server-actions: {600 + index} per minute\n")
    return "".join(lines)


def write_conf(path: Path, groups: Mapping[str, Mapping[str, str]]) -> Path:
    text = []
    for group, options in groups.items():
        text.append(f"[{group}]")
        text.extend(f"{name} = {value}" for name, value in options.items())
        text.append("")
    path.write_text("\n".join(text), encoding="utf-8")
    return path


def with_options(
    groups: dict[str, dict[str, str]], options: Sequence[str]
) -> dict[str, dict[str, str]]:
    """``group.name=value`` options (--gateway-option) laid over ``groups``."""
    for option in options:
        dotted, equals, value = option.partition("=")
        group, dot, name = dotted.partition(".")
        if not (group and name and dot and equals):
            raise SystemExit(f"--gateway-option wants group.name=value, not {option!r}")
        groups.setdefault(group, {})[name] = value
    return groups


def server_facts(rabbit_url: str | None, queue_prefix: str) -> dict[str, dict[str, str]]:
    """The mirror of server facts on the bus novasim publishes to (deployed gateways
    decide on it: an action reads nothing from Nova); nothing without a bus."""
    if rabbit_url is None:
        return {}
    return {
        "server_facts": {
            "notifications_url": rabbit_url,
            "topics": queue_prefix + "_topic",
            "queue_prefix": queue_prefix,
        }
    }


def lean(workdir: Path, options: Sequence[str], facts: Mapping[str, dict[str, str]]) -> Path:
    """The gateway with nothing optional: noauth identity, no audit, no limits (defaults
    otherwise: metrics on); the server-facts mirror when the run has a bus."""
    groups = {"identity": {"mode": "noauth", "allow_noauth": "true"}, **facts}
    return write_conf(workdir / "gateway-lean.conf", with_options(groups, options))


def operator(
    workdir: Path,
    keystone_url: str,
    key_prefix: str,
    options: Sequence[str],
    facts: Mapping[str, dict[str, str]],
) -> Path:
    """Keystone identity (its token cache warm after the first call), the audit trail to
    file (write-ahead and fsync as defaults), Redis-backed limits, metrics, and the
    server-facts mirror when the run has a bus."""
    home = Path(tempfile.mkdtemp(prefix="operator-", dir=workdir))  # one per gateway started
    audit = home / "audit"
    audit.mkdir()
    key = home / "audit.key"
    key.write_text(secrets.token_hex(32), encoding="ascii")
    key.chmod(0o600)
    rules = home / "rules.yaml"
    rules.write_text(rules_text(), encoding="utf-8")
    groups = {
        "identity": {
            "mode": "keystone",
            "keystone_url": keystone_url,
            "service_password": "bench",
        },
        "audit": {
            "enabled": "true",
            "sinks": "file",
            "hmac_key_file": str(key),
            "file_directory": str(audit),
        },
        "rate_limit": {
            "rules_file": str(rules),
            "storage_url": REDIS_URL,
            "key_prefix": key_prefix,
            # Counting is measured, not outages: a loaded machine's lag is not one.
            "storage_timeout": "1.0",
        },
        "metrics": {"enabled": "true"},
        **facts,
    }
    return write_conf(home / "gateway.conf", with_options(groups, options))


def forget_counters(key_prefix: str) -> int:
    """Delete the run's counters from Redis (its own prefix only)."""
    try:
        import redis
    except ImportError:
        return 0
    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{key_prefix}:*"))
        return int(client.delete(*keys)) if keys else 0
    except redis.RedisError:
        return 0
    finally:
        client.close()
