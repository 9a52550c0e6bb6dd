"""Owns novasim's conformance runs: the conformance_steps sequence, and the action corpus's
version, schema, microversion and dispatch requests, to novasim and realnova alike.
Must never hide a divergence: only those documented (with a reason) pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from tests.e2e.conformance_steps import (
    ADMIN,
    CREATE,
    GONE,
    LATEST,
    MISSING_ID,
    STEPS,
    VIEW_VERSION,
    Base,
    Difference,
    Observed,
    Step,
    differences,
    fault_of,
)
from tests.e2e.corpus import (
    ACTION_KEYS,
    CORPUS,
    MISSING_SERVER_ID,
    ActionRequest,
    Category,
    Target,
)
from tests.e2e.test_action_corpus import Answer, effective_version
from tests.e2e.test_action_corpus import send as send_request
from tests.support.labs import RealNova
from tests.support.processes import (
    LOOPBACK,
    ServerProcess,
    free_port,
    repo_root,
    start_server,
)

MINIMUM_STEPS = 50
SIM_SETTLE_DELAY = "0.3"  # novasim tasks last a moment too: both sides are polled alike
SETTLE_TIMEOUT = 45.0  # one lab action (resize, shelve) settles in 1-5 s unless Nova is busy
SEQUENCE_BUDGET = 150.0  # the whole sequence takes 25-40 s; past this the rest is not run
POLL_INTERVAL = 0.1
REQUEST_TIMEOUT = 30.0


@dataclass
class Side:
    """One API under test: where it answers and the ids the sequence created there."""

    name: str
    api_url: str
    root_url: str
    server_id: str = ""
    create_request: str = ""

    @property
    def own_ids(self) -> dict[str, str]:
        return {self.server_id: "server"} if self.server_id else {}


@dataclass
class Outcome:
    """One step: both answers, and what differs between the settled views that followed."""

    step: Step
    novasim: Observed
    realnova: Observed
    settled: list[Difference] = field(default_factory=list)

    def answer(self, *, documented: bool = True) -> list[Difference]:
        """The answers' differences; ``documented``: less what the step's Known accepts."""
        known = self.step.known if documented else None
        if known is not None and known.statuses is not None:
            return []
        dropped = known.fields if known is not None else ()
        return list(
            differences(self.novasim, self.realnova, dropped=dropped, volatile=self.step.volatile)
        )

    def report(self, differing: Sequence[Difference]) -> str:
        lines = [
            f"{self.step.describe()}  (novasim {self.novasim.status}, "
            f"realnova {self.realnova.status})"
        ]
        lines += [f"    {what}: novasim={sim!r} realnova={real!r}" for what, sim, real in differing]
        return "\n".join(lines)


def _root(url: str) -> str:
    return url.rsplit("/v2.1", 1)[0]


async def send(session: aiohttp.ClientSession, side: Side, step: Step) -> Observed:
    """Send ``step`` to ``side`` byte for byte; the answer as the comparison needs it."""
    path = step.path.format(
        id=side.server_id, missing=MISSING_ID, create_request=side.create_request
    )
    base = side.root_url if step.base is Base.ROOT else side.api_url
    headers: dict[str, str] = {}
    if step.token is not None:
        headers["X-Auth-Token"] = step.token
    if step.microversion is not None:
        headers["OpenStack-API-Version"] = f"compute {step.microversion}"
    if step.content_type is not None:
        headers["Content-Type"] = step.content_type
    async with session.request(
        step.method,
        yarl.URL(base + path, encoded=True),
        data=step.payload,
        headers=headers,
        skip_auto_headers=("Content-Type",),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    ) as response:
        raw = await response.read()
        if step is CREATE and response.status == 202:
            side.create_request = response.headers.get("X-OpenStack-Request-Id", "")
        return Observed(
            response.status,
            _parse(raw, response.content_type),
            "Location" in response.headers,
            response.content_type,
            side.own_ids,
        )


def _parse(raw: bytes, content_type: str) -> Any:
    if "json" not in content_type or not raw:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def _view(session: aiohttp.ClientSession, side: Side) -> Observed:
    return await send(session, side, Step("settled view", microversion=VIEW_VERSION))


async def settle(session: aiohttp.ClientSession, side: Side, wanted: str) -> str | None:
    """Poll until the server reads ``wanted`` with task_state null (GONE: 404); else why not."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    seen = "(not read)"
    while time.monotonic() < deadline:
        observed = await _view(session, side)
        if wanted == GONE and observed.status == 404:
            return None
        if observed.status == 200:
            server = observed.body["server"]
            task = server["OS-EXT-STS:task_state"]
            seen = f"{server['status']} task_state={task}"
            if server["status"] == wanted and task is None:
                return None
        else:
            seen = f"HTTP {observed.status} {fault_of(observed.body)}"
        await asyncio.sleep(POLL_INTERVAL)
    return f"not {wanted} within {SETTLE_TIMEOUT:.0f}s (last: {seen})"


async def _settle_both(
    session: aiohttp.ClientSession, step: Step, sides: tuple[Side, Side], statuses: tuple[int, int]
) -> list[Difference]:
    """Settle each side whose answer was 2xx; then compare the settled views."""
    if not step.targets_server:
        return []
    waits = [
        settle(session, side, step.settle) if step.settle and 200 <= status < 300 else _none()
        for side, status in zip(sides, statuses, strict=True)
    ]
    problems = await asyncio.gather(*waits)
    found: list[Difference] = []
    if any(problems):
        found.append(("settling", problems[0] or "settled", problems[1] or "settled"))
    sim_view, real_view = await asyncio.gather(*(_view(session, side) for side in sides))
    found += [
        (f"settled view at {VIEW_VERSION}: {what}", sim, real)
        for what, sim, real in differences(sim_view, real_view)
    ]
    return found


async def _none() -> None:
    return None


async def run_sequence(steps: Sequence[Step], sim: Side, real: Side) -> list[Outcome]:
    """Every step to both sides, each settled before the next; stops at the time budget."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + SEQUENCE_BUDGET
    async with aiohttp.ClientSession() as session:
        for step in steps:
            if time.monotonic() >= deadline:
                break  # test_sequence_ran_to_the_end reports the steps that did not run
            # realnova first: novasim's (shorter) task clock starts only once the lab answered,
            # so a step that reads a transitional state sees it on both.
            real_answer = await send(session, real, step)
            sim_answer = await send(session, sim, step)
            if step is CREATE:
                _adopt_created(sim, sim_answer)
                _adopt_created(real, real_answer)
                sim_answer, real_answer = (
                    Observed(a.status, a.body, a.location, a.media_type, side.own_ids)
                    for a, side in ((sim_answer, sim), (real_answer, real))
                )
            settled = await _settle_both(
                session, step, (sim, real), (sim_answer.status, real_answer.status)
            )
            outcomes.append(Outcome(step, sim_answer, real_answer, settled))
    return outcomes


def _adopt_created(side: Side, answer: Observed) -> None:
    assert answer.status == 202, f"{side.name} create: {answer.status} {answer.body!r}"
    side.server_id = answer.body["server"]["id"]


async def _remove(side: Side) -> None:
    """Unlock and delete as admin, best effort, not waiting: a broken run leaves nothing behind."""
    if not side.server_id:
        return
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        await _unlock_and_delete(side)


async def _unlock_and_delete(side: Side) -> None:
    async with aiohttp.ClientSession() as session:
        for step in (
            Step(
                "cleanup unlock",
                "POST",
                "/servers/{id}/action",
                token=ADMIN,
                payload=b'{"unlock": null}',
                content_type="application/json",
            ),
            Step("cleanup delete", "DELETE", token=ADMIN),
        ):
            await send(session, side, step)


@pytest.fixture(scope="module")
def novasim(lab_logs: Path) -> Iterator[ServerProcess]:
    """novasim on a free loopback port, seeded like the lab (two ACTIVE servers per project)."""
    argv = [
        sys.executable,
        "-m",
        "novasim",
        "--host",
        LOOPBACK,
        "--port",
        str(free_port()),
        "--seed",
        "2",
        "--settle-delay",
        SIM_SETTLE_DELAY,
    ]
    process = start_server("novasim", argv, cwd=repo_root(), ready_timeout=30.0, log_dir=lab_logs)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def conformance(
    novasim: ServerProcess, realnova: RealNova, e2e_timings: Callable[[str, float], None]
) -> list[Outcome]:
    """The whole sequence, run once for every test of this module."""
    sim = Side("novasim", novasim.url, _root(novasim.url))
    real = Side("realnova", realnova.url, _root(realnova.url))
    started = time.monotonic()
    try:
        outcomes = asyncio.run(run_sequence(STEPS, sim, real))
    finally:
        asyncio.run(_remove(real))  # two harmless 404s when the sequence deleted it
    e2e_timings(f"novasim conformance, {len(STEPS)} steps on both", time.monotonic() - started)
    return outcomes


REQUIRED_ACTIONS = frozenset(
    {
        "lock",
        "unlock",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "os-stop",
        "os-start",
        "reboot",
        "rescue",
        "unrescue",
        "shelve",
        "unshelve",
        "resize",
        "confirmResize",
        "revertResize",
        "rebuild",
        "createImage",
        "os-getConsoleOutput",
        "changePassword",
        "os-resetState",
        "migrate",
    }
)


def test_sequence_covers_the_issue() -> None:
    """Data only: size, unique labels, the actions and microversions the issue names."""
    assert len(STEPS) >= MINIMUM_STEPS, f"only {len(STEPS)} steps"
    labels = [step.label for step in STEPS]
    assert len(labels) == len(set(labels)), "labels must be unique"
    missing = REQUIRED_ACTIONS - {step.action_key for step in STEPS}
    assert not missing, f"actions missing: {sorted(missing)}"
    shown = {step.microversion for step in STEPS if step.method == "GET"}
    assert {"2.1", "2.9", "2.47", "2.73", LATEST} <= shown
    documented = [step.known for step in STEPS if step.known is not None]
    assert documented, "documented divergences must be listed here, with their reasons"
    assert all(known.reason and (known.statuses or known.fields) for known in documented)
    assert STEPS[0] is CREATE
    assert [step.label for step in STEPS if step.settle == GONE] == ["delete"]


def test_novasim_answers_as_realnova(conformance: list[Outcome]) -> None:
    """Status, fault name and message, server facts and settled state agree at every step."""
    reports = [
        outcome.report(differing)
        for outcome in conformance
        if (differing := outcome.answer() + outcome.settled)
    ]
    assert not reports, (
        f"{len(reports)} of {len(conformance)} steps diverge (novasim vs realnova):\n"
        + "\n".join(reports)
    )


def test_documented_divergences_still_hold(conformance: list[Outcome]) -> None:
    """Each documented divergence still shows; one that vanished belongs in the sequence."""
    problems = []
    for outcome in conformance:
        known = outcome.step.known
        if known is None:
            continue
        raw = outcome.answer(documented=False)
        got = (outcome.novasim.status, outcome.realnova.status)
        if known.statuses is not None and got != known.statuses:
            problems.append(f"statuses {got}, documented {known.statuses}")
        elif known.fields and not raw:
            problems.append(f"fields {known.fields} no longer differ")
        else:
            continue
        problems[-1] = f"{outcome.report(raw)}\n    {problems[-1]}: {known.reason}"
    assert not problems, "\n".join(problems)


def test_sequence_ran_to_the_end(conformance: list[Outcome]) -> None:
    """Every step ran within the budget, and the conformance server is gone from both."""
    ran = len(conformance)
    assert ran == len(STEPS), (
        f"only {ran} of {len(STEPS)} steps ran within {SEQUENCE_BUDGET:.0f}s; next: "
        f"{STEPS[ran].describe()}"
    )
    after_delete = conformance[-2]
    assert (after_delete.novasim.status, after_delete.realnova.status) == (404, 404)


# --- the action corpus, replayed on both -----------------------------------------------
# Where the two implementations decide alone what a body means: microversion headers,
# dispatch, each action's microversion range and its schema at each range. Every request
# names a server that does not exist, so nothing changes on either side: a body that
# passes every check ends at the lookup (404) with that controller's text.

REPLAYED = frozenset(
    {Category.MICROVERSION, Category.DISPATCH, Category.VERSION_GATE, Category.SCHEMA}
)
# Accepted differences, by corpus label (none today: a divergence found here is novasim's
# bug unless Nova's answer depends on the lab, and then it is listed with its reason).
CORPUS_KNOWN: dict[str, str] = {}


def replayed_requests() -> list[ActionRequest]:
    """The corpus's version, schema, microversion and dispatch requests, and its valid
    bodies at a microversion other than 2.1 (the ends of the actions' ranges)."""
    chosen = [
        replace(request, target=Target.MISSING)
        for request in CORPUS
        if request.category in REPLAYED
        or (request.category is Category.VALID and effective_version(request) != "2.1")
    ]
    return list({(r.body, r.microversion, r.headers, r.token, r.path): r for r in chosen}.values())


async def _replay(url: str, requests: list[ActionRequest]) -> list[Answer]:
    async with aiohttp.ClientSession() as session:
        missing = {Target.MISSING: MISSING_SERVER_ID}
        return [await send_request(session, url, request, missing) for request in requests]


@pytest.fixture(scope="module")
def corpus_on_both(
    novasim: ServerProcess, realnova: RealNova, e2e_timings: Callable[[str, float], None]
) -> list[tuple[ActionRequest, Answer, Answer]]:
    requests = replayed_requests()
    started = time.monotonic()
    sim_answers = asyncio.run(_replay(novasim.url, requests))
    real_answers = asyncio.run(_replay(realnova.url, requests))
    e2e_timings(
        f"novasim corpus replay, {len(requests)} requests on both", time.monotonic() - started
    )
    return list(zip(requests, sim_answers, real_answers, strict=True))


def test_corpus_replay_covers_every_action_and_header_case() -> None:
    requests = replayed_requests()
    assert len(requests) >= 250
    assert {request.action_key for request in requests} >= set(ACTION_KEYS)
    assert {request.category for request in requests} >= REPLAYED | {Category.VALID}


def test_novasim_answers_the_corpus_as_realnova(
    corpus_on_both: list[tuple[ActionRequest, Answer, Answer]],
) -> None:
    """Status, fault name and message, request for request."""
    differing = [
        f"[{request.label}] mv={request.microversion} body={request.body[:80]!r}\n"
        f"    novasim:  {sim}\n    realnova: {real}"
        for request, sim, real in corpus_on_both
        if sim != real and request.label not in CORPUS_KNOWN
    ]
    assert not differing, f"{len(differing)} of {len(corpus_on_both)} differ:\n" + "\n".join(
        differing
    )
    vanished = [
        r.label for r, sim, real in corpus_on_both if r.label in CORPUS_KNOWN and sim == real
    ]
    assert not vanished, f"documented differences that no longer differ: {vanished}"
