"""Real Redis topologies on loopback for failover tests: a primary, a replica and three
sentinels (or a small Redis Cluster), each a redis-server process of this test's own.

Owns the processes it started, by PID, and their temporary directory; must never touch
the shared Redis on 6379, and never sleeps to guess readiness (it polls with deadlines).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from tests.support.processes import LOOPBACK, free_port

SERVICE = "nova-gateway-counters"


def redis_server() -> str | None:
    return shutil.which("redis-server")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


@dataclass(eq=False)
class RedisProcess:
    """One redis-server (data node or sentinel) on 127.0.0.1:port."""

    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(LOOPBACK, self.port, socket_timeout=timeout, decode_responses=True)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the crash of a primary (no goodbye to clients or replicas)."""
        if self.running:
            self.popen.send_signal(signal.SIGCONT)  # a frozen process must die too
            self.popen.kill()
            self.popen.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: a primary that hangs (its sockets accept, nothing answers)."""
        self.popen.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        if self.running:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def _start(name: str, directory: Path, argv: Sequence[str]) -> RedisProcess:
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv), cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    port = int(argv[argv.index("--port") + 1])
    process = RedisProcess(name, port, popen, log_path)
    try:
        wait_for(lambda: process.running and bool(process.client(0.5).ping()), f"{name} up")
    except TimeoutError:
        process.stop()
        raise TimeoutError(f"{name} did not start: {log_path.read_text()[-2000:]}") from None
    return process


def data_node(name: str, directory: Path, *extra: str) -> RedisProcess:
    # No persistence: these are counters for one test; a restarted node starts empty.
    argv = [
        redis_server() or "redis-server",
        "--port", str(free_port()),
        "--bind", LOOPBACK,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        # A replica's first sync starts at once (the default waits 5 s for more replicas).
        "--repl-diskless-sync-delay", "0",
        *extra,
    ]  # fmt: skip
    return _start(name, directory, argv)


@dataclass
class SentinelLab:
    """A primary, one replica and three sentinels that know each other from the start."""

    directory: Path
    down_after_ms: int
    primary: RedisProcess
    replica: RedisProcess
    sentinels: list[RedisProcess] = field(default_factory=list)

    def url(self, *, extra_first: Sequence[str] = ()) -> str:
        """The gateway's storage_url: every sentinel (``extra_first`` listed before them)."""
        hosts = ",".join([*extra_first, *(sentinel.address for sentinel in self.sentinels)])
        return f"async+redis+sentinel://{hosts}/{SERVICE}"

    def primary_port(self) -> int | None:
        """The primary's port as the sentinels agree on it (None while they disagree)."""
        # redis-py's return types cover its Sentinel client; a plain client gets (host, port).
        seen = {
            int(cast("tuple[str, int]", s.client().sentinel_get_master_addr_by_name(SERVICE))[1])
            for s in self.sentinels
        }
        return seen.pop() if len(seen) == 1 else None

    def wait_for_failover(self, timeout: float = 30.0) -> None:
        wait_for(
            lambda: (
                self.primary_port() == self.replica.port
                and self.replica.client().info("replication")["role"] == "master"
            ),
            "sentinels promote the replica",
            timeout,
        )

    def processes(self) -> list[RedisProcess]:
        return [self.primary, self.replica, *self.sentinels]


def _sentinel_config(
    port: int, my_id: str, primary: int, replica: int, peers: Sequence[tuple[int, str]],
    down_after_ms: int,
) -> str:  # fmt: skip
    lines = [
        f"port {port}",
        f"bind {LOOPBACK}",
        f"sentinel myid {my_id}",
        f"sentinel monitor {SERVICE} {LOOPBACK} {primary} 2",
        f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
        f"sentinel failover-timeout {SERVICE} 3000",
        f"sentinel parallel-syncs {SERVICE} 1",
        f"sentinel known-replica {SERVICE} {LOOPBACK} {replica}",
        # Known peers: no waiting for hello messages (every 2 s) before a failover can run.
        *(f"sentinel known-sentinel {SERVICE} {LOOPBACK} {p} {i}" for p, i in peers),
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def sentinel_lab(directory: Path, down_after_ms: int = 400) -> Iterator[SentinelLab]:
    directory.mkdir(parents=True, exist_ok=True)
    started: list[RedisProcess] = []
    try:
        primary = data_node("primary", directory)
        started.append(primary)
        replica = data_node("replica", directory, "--replicaof", LOOPBACK, str(primary.port))
        started.append(replica)
        wait_for(
            lambda: replica.client().info("replication")["master_link_status"] == "up",
            "the replica follows the primary",
        )
        ports = [free_port() for _ in range(3)]
        ids = [secrets.token_hex(20) for _ in range(3)]
        lab = SentinelLab(directory, down_after_ms, primary, replica)
        for index, (port, my_id) in enumerate(zip(ports, ids, strict=True)):
            peers = [(p, i) for p, i in zip(ports, ids, strict=True) if p != port]
            config = directory / f"sentinel-{index}.conf"
            config.write_text(
                _sentinel_config(port, my_id, primary.port, replica.port, peers, down_after_ms)
            )
            sentinel = _start(
                f"sentinel-{index}",
                directory,
                [redis_server() or "redis-server", str(config), "--sentinel", "--port", str(port)],
            )
            started.append(sentinel)
            lab.sentinels.append(sentinel)

        def ready() -> bool:
            for sentinel in lab.sentinels:
                client = sentinel.client()
                # A plain client gets the parsed dict (the bool is for Sentinel's broadcast).
                state = cast("dict[str, Any]", client.sentinel_master(SERVICE))
                replicas = client.sentinel_slaves(SERVICE)
                if state["num-other-sentinels"] != 2 or len(replicas) != 1:
                    return False
                if replicas[0]["master-link-status"] != "ok" or replicas[0]["is_disconnected"]:
                    return False
            return True

        wait_for(ready, "three sentinels watch the primary and its replica")
        yield lab
    finally:
        for process in reversed(started):
            process.stop()


@dataclass
class ClusterLab:
    """A Redis Cluster of three primaries, each with one replica."""

    primaries: list[RedisProcess]
    replicas: list[RedisProcess]

    def url(self) -> str:
        return "async+redis+cluster://" + ",".join(p.address for p in self.primaries)

    def processes(self) -> list[RedisProcess]:
        return [*self.primaries, *self.replicas]


@contextlib.contextmanager
def cluster_lab(directory: Path, node_timeout_ms: int = 500) -> Iterator[ClusterLab]:
    directory.mkdir(parents=True, exist_ok=True)
    started: list[RedisProcess] = []
    try:
        for index in range(6):
            node_dir = directory / f"node-{index}"
            node_dir.mkdir()
            cluster_options = [
                "--cluster-enabled", "yes",
                "--cluster-port", str(free_port()),
                "--cluster-config-file", str(node_dir / "nodes.conf"),
                "--cluster-node-timeout", str(node_timeout_ms),
            ]  # fmt: skip
            started.append(data_node(f"cluster-node-{index}", node_dir, *cluster_options))
        create_argv = [
            shutil.which("redis-cli") or "redis-cli",
            "--cluster", "create", *(node.address for node in started),
            "--cluster-replicas", "1", "--cluster-yes",
        ]  # fmt: skip
        create = subprocess.run(create_argv, capture_output=True, text=True, timeout=60)
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {create.stdout}{create.stderr}")

        def settled() -> bool:
            return all(node.client().cluster("info")["cluster_state"] == "ok" for node in started)

        wait_for(settled, "the cluster covers every slot on every node", 30)
        roles = {node.port: node.client().info("replication")["role"] for node in started}
        yield ClusterLab(
            [node for node in started if roles[node.port] == "master"],
            [node for node in started if roles[node.port] != "master"],
        )
    finally:
        for process in reversed(started):
            process.stop()
