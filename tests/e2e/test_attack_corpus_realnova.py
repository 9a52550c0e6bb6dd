"""The whole tests/security attack corpus before the real Nova: nothing runs unaudited.

Owns replaying every security-suite request to an audited gateway before realnova, then Nova's
action logs checked against the trail; must never leave a seed changed nor wait unbounded.
"""

from __future__ import annotations

import asyncio
import pkgutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import tests.security
from tests.e2e.audited_gateway import (
    AuditedGateway,
    Ran,
    audit_verify,
    instance_actions,
    not_allowed,
    start_audited_gateway,
)
from tests.e2e.gateway_fixtures import GATEWAY_CONFIG
from tests.security import test_bodiless_methods as bodiless_attacks
from tests.security import test_body_confusion as body_attacks
from tests.security import test_hop_by_hop as hop_attacks
from tests.security import test_http_framing as framing_attacks
from tests.security import test_identity_spoofing as identity_attacks
from tests.security import test_method_confusion as method_attacks
from tests.security import test_microversion_confusion as version_attacks
from tests.security import test_path_confusion as path_attacks
from tests.security.lab import IMPATIENT_BODY_TIMEOUT, LAB_TOKENS, Tokens
from tests.security.wire import LOOPBACK, AttackRequest, Targets, exchange
from tests.support.api_client import ApiClient
from tests.support.lab_servers import boot_active, delete_server
from tests.support.labs import RealNova

MEMBER = LAB_TOKENS["member"]
ADMIN = LAB_TOKENS["admin"]
NOAUTH_TOKENS = Tokens(**LAB_TOKENS)
SETUP_TIMEOUT = 90.0
REQUEST_TIMEOUT = 15.0  # one attack request's answers (the suite allows 5 s to novasim)
CONCURRENCY = 4  # connections at once while nothing is expected to run: gentle on Nova
SETTLE_STEPS = 16  # unlock, start, pause, and retries: a server reaches its state in fewer
LOOKUP_CACHE_TTL = 2.0  # [server_lookup] cache_ttl: how long the gateway reuses a server
DELETED_VERSION = "2.21"  # the instance-action log of a deleted server, for admins
LOCKED_VERSION = "2.9"  # "locked" in a server's show


@dataclass(frozen=True)
class Batch:
    """One security module's requests (one identity mode's, for identity spoofing)."""

    name: str
    requests: list[AttackRequest]
    slow_clients: Sequence[framing_attacks.SlowClient] = ()
    stuck_clients: int = 0


def corpus() -> list[Batch]:
    """Every module's requests. The identity module's differ between identity modes only
    by their tokens: in the noauth form replayed here, every mode's are the same bytes, so
    they are replayed once (each is a Nova read or more on realnova)."""
    return [
        Batch("body", body_attacks.attack_requests()),
        Batch("bodiless", bodiless_attacks.attack_requests()),
        Batch(
            "framing",
            framing_attacks.attack_requests(),
            framing_attacks.SLOW_CLIENTS,
            framing_attacks.STUCK_CLIENTS,
        ),
        Batch("hop-by-hop", hop_attacks.attack_requests()),
        Batch("identity", identity_attacks.attack_requests(NOAUTH_TOKENS)),
        Batch("method", method_attacks.attack_requests()),
        Batch("microversion", version_attacks.attack_requests()),
        Batch("path", path_attacks.attack_requests()),
    ]


CORPUS_MODULES = {
    bodiless_attacks,
    body_attacks,
    framing_attacks,
    hop_attacks,
    identity_attacks,
    method_attacks,
    version_attacks,
    path_attacks,
}


def test_corpus_takes_every_security_module() -> None:
    """Data only: a new attack module under tests/security must join the replay."""
    found = {
        f"tests.security.{info.name}"
        for info in pkgutil.iter_modules(tests.security.__path__)
        if info.name.startswith("test_")
    }
    assert found == {module.__name__ for module in CORPUS_MODULES}
    for batch in corpus():
        labels = [request.label for request in batch.requests]
        assert len(labels) == len(set(labels)), batch.name


# -- the gateway and the target servers ----------------------------------------------------


@pytest.fixture(scope="module")
def corpus_gateway(
    realnova: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    e2e_timings: Callable[[str, float], None],
) -> Iterator[AuditedGateway]:
    """The session gateway's configuration, a sealed file audit trail, and the security
    suite's short body deadline (its slow clients are replayed too)."""
    home = tmp_path_factory.mktemp("corpus-gateway")
    sections = {
        **GATEWAY_CONFIG,
        "limits": {"request_body_timeout": str(IMPATIENT_BODY_TIMEOUT)},
    }
    audited = start_audited_gateway(
        realnova.url, home, lab_logs, sections, name="the audited gateway"
    )
    e2e_timings("corpus gateway (audit trail on) start to READY", audited.process.startup_seconds)
    yield audited
    audited.process.stop()


@dataclass(frozen=True)
class CorpusTargets:
    """The servers attacked or watched, and the request ids of their logs before the replay."""

    active: str  # p1's first seed: attacked while ACTIVE
    paused: str  # p1's second seed: attacked while PAUSED (a smuggled unpause could run)
    locked: str  # booted here, locked by its owner: the DELETE the gateway must refuse
    doomed: str  # booted here: DELETEs with a body name it (the gateway refuses them)
    foreign: str  # p2's first seed: no request names it, nothing may run on it
    before: Mapping[str, frozenset[str]]  # request ids in each server's log at the start

    @property
    def all(self) -> tuple[str, ...]:
        return (self.active, self.paused, self.locked, self.doomed, self.foreign)

    def aimed_at(self, server: str, port: int) -> Targets:
        return Targets(server, port, (self.locked, self.doomed), self.locked, self.doomed)


@pytest.fixture(scope="module")
def corpus_targets(realnova: RealNova) -> Iterator[CorpusTargets]:
    """Two p1 seeds and a p2 seed, and two servers booted here (deleted afterwards); the
    seeds are ACTIVE and unlocked again afterwards, whatever happened."""
    booted: list[str] = []
    try:
        asyncio.run(_boot_two(realnova, booted))
        locked, doomed = booted
        active, paused, foreign = (
            realnova.seed("p1", 0),
            realnova.seed("p1", 1),
            realnova.seed("p2", 0),
        )
        servers = (active, paused, locked, doomed, foreign)
        before = asyncio.run(_baseline(realnova, servers, (active, paused)))
        yield CorpusTargets(active, paused, locked, doomed, foreign, before)
    finally:
        asyncio.run(_clean_up(realnova, booted))


async def _boot_two(realnova: RealNova, ids: list[str]) -> None:
    """Boot the locked and the doomed server into ``ids`` (so that teardown finds them)."""
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        for name in ("e2e-corpus-locked", "e2e-corpus-doomed"):
            await boot_active(nova, name, MEMBER, SETUP_TIMEOUT, created=ids)
        locked = await nova.action(ids[0], {"lock": None}, MEMBER)
        assert locked.status == 202, locked.body


async def _baseline(
    realnova: RealNova, servers: Sequence[str], seeds: Sequence[str]
) -> dict[str, frozenset[str]]:
    """The request ids in each server's log, once the seeds are ACTIVE (as others left them)."""
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        for seed in seeds:
            await nova.wait_for_status(seed, "ACTIVE", ADMIN, SETUP_TIMEOUT)
        return {
            server: frozenset(rid for _, rid in await action_log(nova, server))
            for server in servers
        }


async def _clean_up(realnova: RealNova, booted: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        for seed in (realnova.seed("p1", 0), realnova.seed("p1", 1)):
            await settle(nova, nova, seed, "ACTIVE")
        await asyncio.gather(
            *(
                delete_server(nova, server_id, ADMIN, unlock=True, timeout=SETUP_TIMEOUT)
                for server_id in booted
            )
        )


async def action_log(nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    """(action, request id) of every row of the server's instance-action log (deleted too)."""
    return await instance_actions(nova, server_id, ADMIN, DELETED_VERSION)


async def _show(nova: ApiClient, server_id: str) -> dict[str, Any]:
    reply = await nova.server(server_id, ADMIN, microversion=LOCKED_VERSION)
    assert reply.status == 200, reply.body
    server: dict[str, Any] = reply.body["server"]
    return server


async def _quiet(nova: ApiClient, server_id: str) -> dict[str, Any]:
    """The server once no task runs on it (a snapshot, a pause under way...)."""
    deadline = time.monotonic() + SETUP_TIMEOUT
    while True:  # bounded by the deadline
        server = await _show(nova, server_id)
        if server.get("OS-EXT-STS:task_state") is None or time.monotonic() >= deadline:
            return server
        await asyncio.sleep(0.1)


# The action that moves a server from a status towards ACTIVE, and from ACTIVE to PAUSED.
TOWARDS_ACTIVE = {"PAUSED": "unpause", "SHUTOFF": "os-start", "SUSPENDED": "resume"}


async def settle(nova: ApiClient, actor: ApiClient, server_id: str, wanted: str) -> None:
    """Bring the server to ``wanted`` (ACTIVE or PAUSED), unlocked, acting through ``actor``
    as admin (the gateway, so that the audit trail has every action) and reading Nova."""
    for _ in range(SETTLE_STEPS):
        server = await _quiet(nova, server_id)
        status = server["status"]
        if server["locked"]:
            action = "unlock"
        elif status == wanted:
            return
        elif status == "ACTIVE":
            action = "pause"
        else:
            assert status in TOWARDS_ACTIVE, f"server {server_id} is {status}"
            action = TOWARDS_ACTIVE[status]
        reply = await actor.action(server_id, {action: None}, ADMIN)
        if reply.status == 409 and actor is not nova:
            # The gateway decided on a server it read before the last change settled (its
            # lookup cache): ask again once that reading has expired.
            await asyncio.sleep(LOOKUP_CACHE_TTL / 4)
            continue
        assert reply.status == 202, (server_id, action, reply.status, reply.body)
        if action != "unlock":
            await nova.wait_for_status(
                server_id, "PAUSED" if action == "pause" else "ACTIVE", ADMIN, SETUP_TIMEOUT
            )
    raise AssertionError(f"server {server_id} not {wanted} after {SETTLE_STEPS} steps")


# -- the replay ---------------------------------------------------------------------------


@dataclass
class Tally:
    """What one batch sent and how the gateway answered."""

    requests: int = 0
    sends: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    hung: list[str] = field(default_factory=list)  # no answer before REQUEST_TIMEOUT
    garbled: list[str] = field(default_factory=list)  # an answer that is not HTTP/1.1


async def _send(port: int, label: str, request: AttackRequest, data: bytes, tally: Tally) -> None:
    try:
        sent = await exchange(
            port, data, replies=request.replies, head=request.head, timeout=REQUEST_TIMEOUT
        )
    except OSError as exc:  # refused or reset before a byte was read
        tally.answers[type(exc).__name__] += 1
        return
    except AssertionError:  # wire.read_reply's verdict on a malformed answer
        tally.garbled.append(label)
        return
    finally:
        tally.sends += 1
    tally.answers[",".join(map(str, sent.statuses)) or "closed"] += 1
    if sent.timed_out:
        tally.hung.append(label)


def _aimed(request: AttackRequest, aims: Sequence[tuple[str, Targets]]) -> list[tuple[str, bytes]]:
    """The request built for each aim; once only when its bytes name no target server."""
    built: dict[bytes, str] = {}
    for name, targets in aims:
        built.setdefault(request.build(targets), f"{request.label}@{name}")
    return [(label, data) for data, label in built.items()]


async def replay(port: int, batch: Batch, aims: Sequence[tuple[str, Targets]]) -> Tally:
    """Every request of the batch: those the suite expects to run nothing first, a few at
    once; then the slow clients; then, one by one, those that run (they change the server)."""
    tally = Tally(requests=len(batch.requests) + len(batch.slow_clients))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def gently(label: str, request: AttackRequest, data: bytes) -> None:
        async with limit:
            await _send(port, label, request, data, tally)

    stuck = [await asyncio.open_connection(LOOPBACK, port) for _ in range(batch.stuck_clients)]
    try:
        for _, writer in stuck:
            writer.write(framing_attacks.STUCK_HEAD)
            await writer.drain()
        quiet = [request for request in batch.requests if not request.acts]
        await asyncio.gather(
            *(
                gently(label, request, data)
                for request in quiet
                for label, data in _aimed(request, aims)
            )
        )
        slow = [
            framing_attacks.trickle(
                port, client.start(targets.server), client.pieces, client.interval
            )
            for client in batch.slow_clients
            for _, targets in aims
        ]
        for status, _ in await asyncio.gather(*slow):
            tally.sends += 1
            tally.answers[f"slow:{status}"] += 1
        for request in batch.requests:
            if request.acts:
                for label, data in _aimed(request, aims):
                    await _send(port, label, request, data, tally)
    finally:
        for _, writer in stuck:
            writer.close()
    return tally


async def _control(gateway: ApiClient, nova: ApiClient, server_id: str) -> list[tuple[str, str]]:
    """An allowed pause and unpause through the gateway; the log rows they added."""
    before = set(await action_log(nova, server_id))
    for action, status in (("pause", "PAUSED"), ("unpause", "ACTIVE")):
        reply = await gateway.action(server_id, {action: None}, MEMBER)
        assert reply.status == 202, (action, reply.body)
        await nova.wait_for_status(server_id, status, MEMBER, SETUP_TIMEOUT)
    return sorted(set(await action_log(nova, server_id)) - before)


async def _unauthorized(
    nova: ApiClient, audit_dir: Path, targets: CorpusTargets
) -> tuple[list[Ran], list[Ran], int]:
    """Every action since the baseline that no "allow" record authorizes; every action
    since the baseline; and how many records the trail holds."""
    window = [
        (server, action, request_id)
        for server in targets.all
        for action, request_id in await action_log(nova, server)
        if request_id not in targets.before[server]
    ]
    missing, records = await not_allowed(audit_dir, window)
    return missing, window, len(records)


async def test_every_attack_request_runs_only_what_the_audit_trail_allowed(
    nova: ApiClient,
    http_session: aiohttp.ClientSession,
    corpus_gateway: AuditedGateway,
    corpus_targets: CorpusTargets,
    e2e_timings: Callable[[str, float], None],
) -> None:
    """For every attack request, the gateway+realnova pair never executes an action that the
    gateway's audit record did not authorize; and the trail's seals verify."""
    targets = corpus_targets
    port = corpus_gateway.port
    gateway = ApiClient(http_session, corpus_gateway.lab.url)
    aims = [
        ("active", targets.aimed_at(targets.active, port)),
        ("paused", targets.aimed_at(targets.paused, port)),
    ]
    started = time.monotonic()
    tallies: dict[str, Tally] = {}
    for batch in corpus():
        batch_started = time.monotonic()
        await settle(nova, gateway, targets.active, "ACTIVE")
        await settle(nova, gateway, targets.paused, "PAUSED")
        tally = await replay(port, batch, aims)
        tallies[batch.name] = tally
        e2e_timings(
            f"attack corpus {batch.name}: {tally.requests} requests, {tally.sends} sends",
            time.monotonic() - batch_started,
        )
    requests = sum(tally.requests for tally in tallies.values())
    sends = sum(tally.sends for tally in tallies.values())
    e2e_timings(
        f"attack corpus: {requests} requests, {sends} sends, replayed", time.monotonic() - started
    )

    # The control: allowed actions through the gateway must be found, or the check is vacuous.
    await settle(nova, gateway, targets.active, "ACTIVE")
    control = await _control(gateway, nova, targets.active)
    assert [action for action, _ in control] == ["pause", "unpause"], control

    missing, ran, records = await _unauthorized(nova, corpus_gateway.audit_dir, targets)
    names = Counter(action for _, action, _ in ran)
    e2e_timings(f"attack corpus window: {len(ran)} actions ran in Nova {dict(names)}", 0.0)
    assert not missing, (
        f"Nova ran {missing} without an audit record allowing it ({records} records)"
    )
    hung = {name: tally.hung for name, tally in tallies.items() if tally.hung}
    assert not hung, f"no answer within {REQUEST_TIMEOUT} s: {hung}"
    garbled = {name: tally.garbled for name, tally in tallies.items() if tally.garbled}
    assert not garbled, f"malformed answers: {garbled}"

    verified = audit_verify(corpus_gateway)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK "), verified.stdout
