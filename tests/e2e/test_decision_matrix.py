"""The decision matrix end to end: each sampled cell against Nova alone and gateway+Nova.

Owns running tests/e2e/matrix.py's cells (both ways, with lock state set and server state
restored around them) and the identity-header and lookup-cache checks; must never touch
servers other than the six it boots.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.gateway_fixtures import GatewayLab, start_gateway
from tests.e2e.matrix import (
    ACTIONS,
    ADMIN,
    MEMBER,
    OTHER_MEMBER,
    OWNER_OF,
    PROJECT_CALLERS,
    PROJECTS,
    READER,
    SYSTEM_ADMIN,
    SYSTEM_READER,
    Answer,
    Baseline,
    Caller,
    Cell,
    Expected,
    Lock,
    MatrixAction,
    Outcome,
    expect,
    full_matrix,
    render,
    sample,
)
from tests.support.api_client import ApiClient
from tests.support.lab_servers import boot_active, delete_server
from tests.support.labs import RealNova
from tests.support.processes import ProcessStartError

BOOT_TIMEOUT = 90.0
SETTLE_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
MINIMUM_CELLS = 100
VIEW_VERSION = "2.73"  # GET shows locked and locked_reason
NOAUTH = {"mode": "noauth", "allow_noauth": "true"}

ServerKey = tuple[str, Baseline]  # (project, baseline)
Servers = Mapping[ServerKey, str]

# From any state a cell can leave a matrix server in: the admin action back towards ACTIVE,
# and from ACTIVE the action to each baseline.
TO_ACTIVE: Mapping[str, dict[str, Any]] = {
    "PAUSED": {"unpause": None},
    "SUSPENDED": {"resume": None},
    "RESCUE": {"unrescue": None},
    "SHUTOFF": {"os-start": None},
    "SHELVED": {"unshelve": None},
    "SHELVED_OFFLOADED": {"unshelve": None},
    "VERIFY_RESIZE": {"confirmResize": None},
}
FROM_ACTIVE: Mapping[Baseline, dict[str, Any]] = {
    Baseline.PAUSED: {"pause": None},
    Baseline.SHUTOFF: {"os-stop": None},
}


def _start(realnova: RealNova, config_dir: Path, log_dir: Path, cache_ttl: int) -> GatewayLab:
    sections = {"identity": NOAUTH, "server_lookup": {"cache_ttl": str(cache_ttl)}}
    try:
        return start_gateway(realnova.url, config_dir, log_dir, sections)
    except ProcessStartError as exc:
        pytest.fail(f"the gateway did not start: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def matrix_gateway(
    realnova: RealNova, tmp_path_factory: pytest.TempPathFactory, lab_logs: Path
) -> Iterator[GatewayLab]:
    """A gateway with no lookup cache: the matrix changes lock state behind its back."""
    lab = _start(realnova, tmp_path_factory.mktemp("matrix-gateway"), lab_logs, cache_ttl=0)
    yield lab
    lab.process.stop()


async def _wait_for(
    nova: ApiClient, server_id: str, status: str | None, timeout: float = SETTLE_TIMEOUT
) -> dict[str, Any]:
    """Poll (as admin) until task_state is None and, if given, the status is ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await nova.server(server_id, ADMIN.token, VIEW_VERSION)
        assert reply.status == 200, f"GET {server_id}: {reply.status} {reply.body!r}"
        view: dict[str, Any] = reply.body["server"]
        settled = view["OS-EXT-STS:task_state"] is None
        if settled and (status is None or view["status"] == status):
            return view
        assert view["status"] != "ERROR", f"server {server_id} went to ERROR: {view.get('fault')}"
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"server {server_id} still {view['status']}/{view['OS-EXT-STS:task_state']} "
                f"after {timeout}s; wanted {status or 'any'} with no task"
            )
        await asyncio.sleep(POLL_INTERVAL)


async def _act(client: ApiClient, server_id: str, body: Mapping[str, Any], token: str) -> None:
    """A set-up action that must succeed (retried while Nova still finishes a task)."""
    for _ in range(20):
        reply = await client.action(server_id, body, token)
        if reply.status < 300:
            return
        if reply.status != 409:
            break
        await asyncio.sleep(0.2)
    raise AssertionError(f"{body} on {server_id} as {token}: {reply.status} {reply.body!r}")


async def set_lock(client: ApiClient, project: str, server_id: str, lock: Lock) -> None:
    """Unlock (admin may lift any lock), then lock as the owner's member or as admin."""
    await _act(client, server_id, {"unlock": None}, ADMIN.token)
    if lock is Lock.OWNER:
        await _act(client, server_id, {"lock": None}, OWNER_OF[project].token)
    elif lock is Lock.ADMIN:
        await _act(client, server_id, {"lock": None}, ADMIN.token)


async def restore(nova: ApiClient, client: ApiClient, baseline: Baseline, server_id: str) -> None:
    """Wait for the server to settle and bring it back to ``baseline`` with admin actions."""
    for _ in range(4):
        view = await _wait_for(nova, server_id, None)
        status = view["status"]
        if status == baseline.status:
            return
        if status == "ACTIVE":
            step, target = FROM_ACTIVE[baseline], baseline.status
        else:
            step, target = TO_ACTIVE[status], "ACTIVE"
        await _act(client, server_id, step, ADMIN.token)
        await _wait_for(nova, server_id, target)
    raise AssertionError(f"server {server_id} not back to {baseline.status}")


async def _boot(realnova: RealNova) -> dict[ServerKey, str]:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        ids: dict[ServerKey, str] = {}
        for project in PROJECTS:  # one build at a time: Nova's claims race when concurrent
            for baseline in Baseline:
                name = f"matrix-{project}-{baseline.status.lower()}"
                token = OWNER_OF[project].token
                ids[(project, baseline)] = await boot_active(nova, name, token, BOOT_TIMEOUT)
        await asyncio.gather(
            *(restore(nova, nova, baseline, i) for (_, baseline), i in ids.items())
        )
        return ids


async def _delete(realnova: RealNova, ids: Servers) -> None:
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        await asyncio.gather(
            *(
                delete_server(nova, server_id, ADMIN.token, unlock=True, timeout=BOOT_TIMEOUT)
                for server_id in ids.values()
            )
        )


@pytest.fixture(scope="module")
def matrix_servers(
    realnova: RealNova, e2e_timings: Callable[[str, float], None]
) -> Iterator[dict[ServerKey, str]]:
    """Six servers: ACTIVE, PAUSED and SHUTOFF ones in p1 (alice's) and p2 (eve's)."""
    started = time.monotonic()
    ids = asyncio.run(_boot(realnova))
    e2e_timings("decision matrix: boot 6 servers", time.monotonic() - started)
    try:
        yield ids
    finally:
        asyncio.run(_delete(realnova, ids))


@dataclass
class Sides:
    """Nova alone and gateway+Nova, each an ApiClient."""

    nova: ApiClient
    gateway: ApiClient

    @classmethod
    def of(cls, session: aiohttp.ClientSession, realnova: RealNova, gateway: GatewayLab) -> Sides:
        return cls(ApiClient(session, realnova.url), ApiClient(session, gateway.url))


async def send(
    client: ApiClient,
    action: MatrixAction,
    caller: Caller,
    server_id: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    reply = await client.request(
        "POST",
        f"/servers/{server_id}/action",
        token=caller.token,
        json_body=action.body,
        microversion=action.microversion,
        headers=headers,
    )
    return Answer.parse(reply.status, reply.body)


async def run_leg(
    sides: Sides, client: ApiClient, cell: Cell, server_id: str
) -> tuple[Answer, list[str]]:
    """Send the cell one way; if it was carried out, undo it the same way."""
    answer = await send(client, cell.action, cell.caller, server_id)
    notes: list[str] = []
    if answer.status < 300:
        started = time.monotonic()
        await restore(sides.nova, client, cell.action.baseline, server_id)
        if cell.action.key in ("lock", "unlock"):
            await set_lock(client, cell.project, server_id, cell.lock)
        notes.append(f"restored in {time.monotonic() - started:.2f}s")
    return answer, notes


async def run_server(
    sides: Sides, key: ServerKey, server_id: str, cells: list[Cell]
) -> list[Outcome]:
    """All of one server's cells, lock state by lock state (set directly at Nova)."""
    outcomes: list[Outcome] = []
    for lock in Lock:
        mine = [c for c in cells if c.lock is lock]
        if not mine:
            continue
        await set_lock(sides.nova, key[0], server_id, lock)
        view = await _wait_for(sides.nova, server_id, key[1].status)
        assert view["locked"] is (lock is not Lock.NONE), f"lock not set: {view['locked']}"
        for cell in mine:
            direct, notes = await run_leg(sides, sides.nova, cell, server_id)
            via, more = await run_leg(sides, sides.gateway, cell, server_id)
            outcomes.append(Outcome(cell, server_id, direct, via, notes + more))
    return outcomes


async def test_decision_matrix_against_nova_alone_and_through_the_gateway(
    matrix_servers: dict[ServerKey, str],
    realnova: RealNova,
    matrix_gateway: GatewayLab,
    http_session: aiohttp.ClientSession,
    e2e_timings: Callable[[str, float], None],
) -> None:
    """Every sampled cell: the oracle, Nova alone and gateway+Nova give one answer."""
    cells = sample(full_matrix())
    assert len(cells) >= MINIMUM_CELLS
    sides = Sides.of(http_session, realnova, matrix_gateway)
    started = time.monotonic()
    per_server = await asyncio.gather(
        *(
            run_server(
                sides,
                (project, baseline),
                server_id,
                [c for c in cells if (c.project, c.action.baseline) == (project, baseline)],
            )
            for (project, baseline), server_id in matrix_servers.items()
        )
    )
    outcomes = [outcome for group in per_server for outcome in group]
    elapsed = time.monotonic() - started
    e2e_timings(f"decision matrix: {len(outcomes)} cells x 2", elapsed)
    assert len(outcomes) == len(cells)
    bad = [o for o in outcomes if o.problems()]
    tally = Counter(o.cell.expected.code for o in outcomes)
    summary = f"{len(outcomes)} cells ({dict(tally)}) in {elapsed:.0f}s; {len(bad)} with a mismatch"
    print(f"{summary}\n{render(outcomes)}")  # shown with -s / -rP
    assert not bad, f"{summary}\n{render(outcomes)}\n\n" + "\n".join(o.report() for o in bad)


@pytest.mark.parametrize(
    "caller",
    [
        SYSTEM_READER,
        SYSTEM_ADMIN,
    ],
    ids=lambda caller: caller.label,
)
async def test_system_scoped_token_is_refused_by_every_action_rule(
    caller: Caller,
    matrix_servers: dict[ServerKey, str],
    realnova: RealNova,
    matrix_gateway: GatewayLab,
    http_session: aiohttp.ClientSession,
) -> None:
    """Gateway only: realnova's labauth cannot issue a system-scoped token.

    Every server-action rule is scope_types=['project'] and oslo.policy enforces scope, so
    Nova's defaults refuse a system-scoped token with 403, admin role or not.
    """
    sides = Sides.of(http_session, realnova, matrix_gateway)
    outcomes: list[Outcome] = []
    for lock in Lock:
        # Every action while unlocked; under a lock, the lock-checked and lock actions.
        actions = [
            a for a in ACTIONS if lock is Lock.NONE or a.key in ("unpause", "lock", "unlock")
        ]
        for (project, baseline), server_id in matrix_servers.items():
            await set_lock(sides.nova, project, server_id, lock)
            for action in (a for a in actions if a.baseline is baseline):
                answer = await send(sides.gateway, action, caller, server_id)
                outcomes.append(
                    Outcome(Cell(action, caller, project, lock), server_id, None, answer)
                )
    for (project, _), server_id in matrix_servers.items():
        await set_lock(sides.nova, project, server_id, Lock.NONE)
    bad = [o for o in outcomes if o.problems()]
    assert all(
        expect(o.cell.action, caller, o.cell.project, o.cell.lock).status == 403 for o in outcomes
    )
    assert not bad, (
        f"{len(bad)} of {len(outcomes)} system-scope cells wrong\n"
        + render(outcomes, [caller])
        + "\n\n"
        + "\n".join(o.report() for o in bad)
    )


# Identity headers a client might send to claim more than its token says (any case).
SPOOFED_IDENTITY: Mapping[str, str] = {
    "X-Roles": "admin,member,reader",
    "X-Role": "admin",
    "X-Project-Id": "p1",
    "X-Tenant-Id": "p1",
    "X-User-Id": "admin",
    "X-Is-Admin-Project": "True",
    "OpenStack-System-Scope": "all",
    "X-Service-Roles": "admin",
    "X-Identity-Status": "Confirmed",
    "x-roles": "admin",
}


def _action(key: str) -> MatrixAction:
    return next(a for a in ACTIONS if a.label == key)


async def test_client_sent_identity_headers_change_nothing(
    matrix_servers: dict[ServerKey, str],
    realnova: RealNova,
    matrix_gateway: GatewayLab,
    http_session: aiohttp.ClientSession,
) -> None:
    """X-Roles: admin and friends: reader still 403, eve still 404, locks still bind."""
    sides = Sides.of(http_session, realnova, matrix_gateway)
    p1 = matrix_servers[("p1", Baseline.ACTIVE)]
    pause, unlock, console = _action("pause"), _action("unlock"), _action("os-getConsoleOutput")
    underscored = {"X_Roles": "admin", "X_Project_Id": "p1", "X_Is_Admin_Project": "True"}
    cases: list[tuple[MatrixAction, Caller, Lock, Mapping[str, str]]] = [
        (pause, READER, Lock.NONE, SPOOFED_IDENTITY),
        (pause, READER, Lock.NONE, underscored),
        (pause, OTHER_MEMBER, Lock.NONE, SPOOFED_IDENTITY),
        (unlock, OTHER_MEMBER, Lock.NONE, SPOOFED_IDENTITY),
        (console, MEMBER, Lock.NONE, {"OpenStack-System-Scope": "all", "X-Domain-Id": "default"}),
        (pause, MEMBER, Lock.ADMIN, SPOOFED_IDENTITY),
        (unlock, MEMBER, Lock.ADMIN, SPOOFED_IDENTITY),
        (unlock, READER, Lock.OWNER, SPOOFED_IDENTITY),
    ]
    problems: list[str] = []
    for action, caller, lock, headers in cases:
        await set_lock(sides.nova, "p1", p1, lock)
        expected = expect(action, caller, "p1", lock).filled(p1)
        assert not expected.allowed or action.key == "os-getConsoleOutput"
        direct = await send(sides.nova, action, caller, p1, headers)
        via = await send(sides.gateway, action, caller, p1, headers)
        outcome = Outcome(Cell(action, caller, "p1", lock), p1, direct, via)
        outcome.notes.append(f"headers sent: {sorted(headers)}")
        if outcome.problems():
            problems.append(outcome.report())
    await set_lock(sides.nova, "p1", p1, Lock.NONE)

    no_token = await sides.gateway.request(
        "POST", f"/servers/{p1}/action", json_body={"pause": None}, headers=SPOOFED_IDENTITY
    )
    if no_token.status != 401:
        problems.append(f"no token, spoofed identity headers: {no_token.status} {no_token.body!r}")
    await _wait_for(sides.nova, p1, "ACTIVE")
    assert not problems, "\n".join(problems)


def _forwarded(realnova: RealNova, global_request_id: str) -> bool:
    """Whether Nova logged a request carrying this global request id (the gateway passes it)."""
    log = realnova.data_dir / "nova.log"
    return global_request_id in log.read_text(encoding="utf-8", errors="replace")


async def test_lookup_cache_is_invalidated_by_actions_through_the_gateway(
    matrix_servers: dict[ServerKey, str],
    realnova: RealNova,
    tmp_path_factory: pytest.TempPathFactory,
    lab_logs: Path,
    http_session: aiohttp.ClientSession,
) -> None:
    """With cache_ttl = 30: lock then pause is the gateway's own 409; unlock then pause 202."""
    lab = _start(realnova, tmp_path_factory.mktemp("cached-gateway"), lab_logs, cache_ttl=30)
    try:
        nova = ApiClient(http_session, realnova.url)
        gateway = ApiClient(http_session, lab.url)
        p1 = matrix_servers[("p1", Baseline.ACTIVE)]
        await set_lock(nova, "p1", p1, Lock.NONE)
        pause = {"pause": None}

        # Prime the cache with the unlocked server: a refusal after the lookup.
        primed = await gateway.action(p1, pause, READER.token)
        assert primed.status == 403, primed.body
        locked = await gateway.action(p1, {"lock": None}, MEMBER.token)
        assert locked.status == 202, locked.body
        request_id = f"req-{uuid.uuid4()}"
        refused = await gateway.request(
            "POST",
            f"/servers/{p1}/action",
            token=MEMBER.token,
            json_body=pause,
            headers={"X-OpenStack-Request-ID": request_id},
        )
        assert Answer.parse(refused.status, refused.body) == Answer(
            409, "conflictingRequest", f"Instance {p1} is locked"
        )
        assert not _forwarded(realnova, request_id), "the gateway forwarded: stale cache"

        # Now the cache holds the locked server; unlocking must drop it again.
        control_id = f"req-{uuid.uuid4()}"
        unlocked = await gateway.request(
            "POST",
            f"/servers/{p1}/action",
            token=MEMBER.token,
            json_body={"unlock": None},
            headers={"X-OpenStack-Request-ID": control_id},
        )
        assert unlocked.status == 202, unlocked.body
        assert _forwarded(realnova, control_id), "control: a forwarded call is not in nova.log"
        paused = await gateway.action(p1, pause, MEMBER.token)
        assert paused.status == 202, f"stale cache after unlock: {paused.status} {paused.body!r}"
        await restore(nova, nova, Baseline.ACTIVE, p1)
    finally:
        lab.process.stop()


async def test_lock_changed_elsewhere_is_not_judged_by_a_stale_record(
    matrix_servers: dict[ServerKey, str],
    realnova: RealNova,
    matrix_gateway: GatewayLab,
    http_session: aiohttp.ClientSession,
) -> None:
    """Admin locks through the gateway; Nova alone then sees an owner lock; alice unlocks."""
    sides = Sides.of(http_session, realnova, matrix_gateway)
    p1 = matrix_servers[("p1", Baseline.ACTIVE)]
    await set_lock(sides.nova, "p1", p1, Lock.NONE)
    try:
        locked = await sides.gateway.action(p1, {"lock": None}, ADMIN.token)
        assert locked.status == 202, locked.body
        await set_lock(sides.nova, "p1", p1, Lock.OWNER)  # behind the gateway's back
        unlock = _action("unlock")
        assert expect(unlock, MEMBER, "p1", Lock.OWNER) == Expected(202)
        via = await send(sides.gateway, unlock, MEMBER, p1)
        direct = await send(sides.nova, unlock, MEMBER, p1)
        assert direct.status == 202, f"Nova alone: {direct}"
        assert via.status == 202, f"gateway+Nova: {via}; Nova alone: {direct}"
    finally:
        await set_lock(sides.gateway, "p1", p1, Lock.NONE)  # through the gateway: clears it


def test_matrix_oracle_is_complete() -> None:
    """Data only: the full grid, every caller kind, every outcome kind, sampled >= 100."""
    cells = full_matrix()
    assert len(cells) == len(ACTIONS) * len(PROJECT_CALLERS) * len(PROJECTS) * len(Lock)
    codes = Counter(c.expected.code for c in sample(cells))
    assert set(codes) == {"a", "f", "n", "l", "s"}, codes
    combos = {(c.caller, c.project, c.lock) for c in sample(cells)}
    assert len(combos) == len(PROJECT_CALLERS) * len(PROJECTS) * len(Lock)
    assert sum(codes.values()) >= MINIMUM_CELLS
