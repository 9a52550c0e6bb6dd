"""For every request of the action corpus, gateway+Nova answers what Nova alone answers.

Owns sending the corpus (tests/e2e/corpus.py) both ways, once per session, and one readable
report per criterion (Nova as expected; status and fault name; message; documented
differences); must never boot more than its two servers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import pytest
import yarl
from multidict import CIMultiDict

from tests.conftest import skip_or_fail
from tests.e2e.corpus import (
    ACTION_KEYS,
    CORPUS,
    MAX_VERSION,
    MEMBER,
    MESSAGE_DIFFERS,
    MISSING_SERVER_ID,
    STRICTER,
    ActionRequest,
    Category,
    StricterRequest,
    Target,
)
from tests.e2e.gateway_fixtures import GatewayLab
from tests.support.api_client import ApiClient
from tests.support.lab_servers import boot_active, delete_server
from tests.support.labs import RealNova
from tests.support.processes import shared_dir

MINIMUM_CORPUS = 200
SETUP_TIMEOUT = 90.0
REQUEST_TIMEOUT = 30.0
ServerIds = Mapping[Target, str]


@dataclass(frozen=True)
class Answer:
    """What a client can tell apart: status, fault name (None: not a JSON fault), message."""

    status: int
    fault: str | None
    message: str | None

    def __str__(self) -> str:
        return f"{self.status} {self.fault or '(no fault body)'} {self.message!r}"


def answer_of(status: int, raw: bytes) -> Answer:
    """Nova's fault body is ``{"<name>": {"code": N, "message": "..."}}``; so is keystone's."""
    try:
        body = json.loads(raw)
    except ValueError:
        return Answer(status, None, None)
    if isinstance(body, dict) and len(body) == 1:
        name, detail = next(iter(body.items()))
        if isinstance(detail, dict) and "message" in detail:
            return Answer(status, name, str(detail["message"]))
    return Answer(status, None, None)


async def send(
    session: aiohttp.ClientSession, api_url: str, request: ActionRequest, servers: ServerIds
) -> Answer:
    """Send ``request`` to the server of ``api_url`` (a ``…/v2.1`` url) as the corpus says."""
    root = api_url.rsplit("/v2.1", 1)[0]
    path = request.prefix + request.path.format(server_id=servers[request.target])
    headers: CIMultiDict[str] = CIMultiDict()
    if request.token is not None:
        headers.add("X-Auth-Token", request.token)
    if request.microversion is not None:
        headers.add("OpenStack-API-Version", f"compute {request.microversion}")
    if request.content_type is not None:
        headers.add("Content-Type", request.content_type)
    for name, value in request.headers:
        headers.add(name, value)
    async with session.request(
        request.method,
        yarl.URL(root + path, encoded=True),  # encoded: the path goes out byte for byte
        data=request.body if request.body or request.method != "GET" else None,
        headers=headers,
        skip_auto_headers=("Content-Type",),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    ) as response:
        return answer_of(response.status, await response.read())


def describe(request: ActionRequest) -> str:
    """One line that lets a reader replay the request by hand."""
    body = request.body[:70].decode("utf-8", "replace")
    more = "…" if len(request.body) > 70 else ""
    version = request.microversion or dict(request.headers) or "-"
    path = request.prefix + request.path
    extra = f" {request.method} {path}" if path != "/v2.1/servers/{server_id}/action" else ""
    extra = extra if extra or request.method == "POST" else f" {request.method}"
    return (
        f"[{request.label}] mv={version} ct={request.content_type!r} "
        f"target={request.target.value} token={request.token}{extra} body={body}{more}"
    )


async def _boot_corpus_servers(realnova: RealNova) -> dict[Target, str]:
    """Two servers of p1: one left ACTIVE, one PAUSED (created directly, not under test)."""
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        ids: dict[Target, str] = {}
        for target in (Target.ACTIVE, Target.PAUSED):  # one build at a time, as Nova's claims race
            name = f"e2e-corpus-{target.value}"
            ids[target] = await boot_active(nova, name, MEMBER, SETUP_TIMEOUT)
        paused = await nova.action(ids[Target.PAUSED], {"pause": None}, MEMBER)
        assert paused.status == 202, f"pause corpus server: {paused.status} {paused.body!r}"
        await nova.wait_for_status(ids[Target.PAUSED], "PAUSED", MEMBER, SETUP_TIMEOUT)
        return ids


async def _delete_corpus_servers(realnova: RealNova, ids: Mapping[Target, str]) -> None:
    """Unlock and delete, then wait until both are gone: later tests see a quiet Nova."""
    async with aiohttp.ClientSession() as session:
        nova = ApiClient(session, realnova.url)
        await asyncio.gather(
            *(
                delete_server(nova, server_id, MEMBER, unlock=True, timeout=SETUP_TIMEOUT)
                for server_id in ids.values()
            )
        )


@pytest.fixture(scope="module")
def corpus_servers(realnova: RealNova) -> Iterator[dict[Target, str]]:
    """Target -> server id: two fresh p1 servers, a missing id, and one of p2's seeds."""
    ids = asyncio.run(_boot_corpus_servers(realnova))
    try:
        yield {**ids, Target.MISSING: MISSING_SERVER_ID, Target.FOREIGN: realnova.seed("p2")}
    finally:
        asyncio.run(_delete_corpus_servers(realnova, ids))


def effective_version(request: ActionRequest) -> str | None:
    """The microversion Nova reads for a request that sets it plainly; None otherwise."""
    if request.headers:
        return None
    if request.microversion is None:
        return "2.1"
    return MAX_VERSION if request.microversion == "latest" else request.microversion


def _minor(version: str) -> int:
    return int(version.split(".")[1])


def boundary_versions(action: Mapping[str, object]) -> set[str]:
    """Each schema range's first and last version and the versions just outside them."""
    first = str(action["min_version"])
    last = str(action["max_version"] or MAX_VERSION)
    versions = {first, last}
    if action["max_version"]:
        versions.add(f"2.{_minor(last) + 1}")
    if _minor(first) > 1:
        versions.add(f"2.{_minor(first) - 1}")
    schemas = action["schemas"]
    assert isinstance(schemas, list)
    for schema in schemas:
        text = str(schema["range"]).rstrip("+")
        if text == "all":
            continue
        start, _, end = text.partition("-")
        versions.add(start)
        if _minor(start) > 1:
            versions.add(f"2.{_minor(start) - 1}")
        if end:
            versions |= {end, f"2.{_minor(end) + 1}"}
    return versions


def test_corpus_covers_every_action_and_its_boundaries() -> None:
    """Data only (no lab): size, unique labels, all 41 keys at every range boundary."""
    assert len(CORPUS) >= MINIMUM_CORPUS, f"only {len(CORPUS)} requests"
    labels = Counter(r.label for r in (*CORPUS, *(s.request for s in STRICTER)))
    assert not [label for label, n in labels.items() if n > 1], "labels must be unique"
    categories = Counter(r.category for r in CORPUS)
    assert set(categories) == set(Category), f"a category has no request: {categories}"
    covered: dict[str, set[str]] = {key: set() for key in ACTION_KEYS}
    for request in CORPUS:
        version = effective_version(request)
        if request.action_key in covered and version is not None:
            covered[request.action_key].add(version)
    assert not [key for key, seen in covered.items() if not seen], "an action key is missing"

    reference = shared_dir() / "nova" / "nova_actions.json"
    if not reference.is_file():
        skip_or_fail(f"{reference} not found: boundaries not checked")
    actions = json.loads(reference.read_text(encoding="utf-8"))["actions"]
    assert sorted(a["key"] for a in actions) == sorted(ACTION_KEYS)
    missing = {
        a["key"]: sorted(boundary_versions(a) - covered[a["key"]], key=_minor)
        for a in actions
        if boundary_versions(a) - covered[a["key"]]
    }
    assert not missing, f"boundary versions without a corpus request: {missing}"


@dataclass(frozen=True)
class Exchange:
    """One corpus request and the two answers to it."""

    request: ActionRequest
    direct: Answer
    via_gateway: Answer

    def __str__(self) -> str:
        return (
            f"{describe(self.request)}\n    Nova alone:  {self.direct}\n"
            f"    via gateway: {self.via_gateway}"
        )


async def _exchange_all(
    requests: Sequence[ActionRequest], nova_url: str, gateway_url: str, servers: ServerIds
) -> list[Exchange]:
    """Each request to Nova, then the same through the gateway; one at a time (Nova is slow)."""
    async with aiohttp.ClientSession() as session:
        return [
            Exchange(
                request,
                await send(session, nova_url, request, servers),
                await send(session, gateway_url, request, servers),
            )
            for request in requests
        ]


@pytest.fixture(scope="module")
def corpus_exchanges(
    corpus_servers: dict[Target, str],
    realnova: RealNova,
    gateway_realnova: GatewayLab,
    e2e_timings: Callable[[str, float], None],
) -> list[Exchange]:
    """The whole corpus sent both ways, once for every test of this module."""
    started = time.monotonic()
    exchanges = asyncio.run(
        _exchange_all(CORPUS, realnova.url, gateway_realnova.url, corpus_servers)
    )
    e2e_timings(f"action corpus, {len(CORPUS)} requests x 2", time.monotonic() - started)
    return exchanges


def _report(title: str, lines: Sequence[str]) -> str:
    return f"{len(lines)} {title} (of {len(CORPUS)} requests):\n" + "\n".join(lines)


def test_nova_alone_answers_as_the_corpus_expects(corpus_exchanges: list[Exchange]) -> None:
    """Keeps the corpus honest: each request reaches the check its label names."""
    wrong = [
        f"{exchange}\n    corpus expects Nova: {exchange.request.nova_status}"
        for exchange in corpus_exchanges
        if exchange.direct.status != exchange.request.nova_status
    ]
    assert not wrong, _report("corpus expectation(s) Nova disagrees with", wrong)


def test_gateway_answers_status_and_fault_name_as_nova_alone(
    corpus_exchanges: list[Exchange],
) -> None:
    """The issue's criterion: (status, fault name) through the gateway == Nova alone."""
    mismatches = [
        str(exchange)
        for exchange in corpus_exchanges
        if (exchange.direct.status, exchange.direct.fault)
        != (exchange.via_gateway.status, exchange.via_gateway.fault)
    ]
    assert not mismatches, _report("status/fault-name mismatch(es)", mismatches)


def test_gateway_fault_messages_are_nova_messages(corpus_exchanges: list[Exchange]) -> None:
    """Where status and fault name agree, the message a client reads agrees too, except
    where the README documents another message (MESSAGE_DIFFERS: asserted to differ)."""
    mismatches = [
        str(exchange)
        for exchange in corpus_exchanges
        if (exchange.direct.status, exchange.direct.fault)
        == (exchange.via_gateway.status, exchange.via_gateway.fault)
        and (exchange.direct.message != exchange.via_gateway.message)
        != (exchange.request.label in MESSAGE_DIFFERS)
    ]
    assert not mismatches, _report("fault-message mismatch(es)", mismatches)


async def _exchange_stricter(
    nova_url: str, gateway_url: str, servers: ServerIds
) -> list[tuple[StricterRequest, Exchange]]:
    """The unlocked ones, then the others while the owner's lock (sent via the gateway) holds."""
    unlocked = [strict for strict in STRICTER if not strict.locked]
    locked = [strict for strict in STRICTER if strict.locked]
    exchanges = await _exchange_all([s.request for s in unlocked], nova_url, gateway_url, servers)
    if locked:
        async with aiohttp.ClientSession() as session:
            gateway = ApiClient(session, gateway_url)
            assert (
                await gateway.action(servers[Target.ACTIVE], {"lock": None}, MEMBER)
            ).status == 202
            try:
                exchanges += await _exchange_all(
                    [s.request for s in locked], nova_url, gateway_url, servers
                )
            finally:
                await gateway.action(servers[Target.ACTIVE], {"unlock": None}, MEMBER)
    return list(zip([*unlocked, *locked], exchanges, strict=True))


def test_gateway_is_deliberately_stricter_where_documented(
    corpus_servers: dict[Target, str], realnova: RealNova, gateway_realnova: GatewayLab
) -> None:
    """Each documented difference answers as documented, and still differs from Nova."""
    exchanges = asyncio.run(_exchange_stricter(realnova.url, gateway_realnova.url, corpus_servers))
    problems: list[str] = []
    for strict, exchange in exchanges:
        line = f"{exchange}\n    why: {strict.why}"
        got = (exchange.via_gateway.status, exchange.via_gateway.fault)
        if got != (strict.gateway_status, strict.gateway_fault):
            problems.append(
                f"{line}\n    documented gateway answer: {strict.gateway_status} "
                f"{strict.gateway_fault}"
            )
        if exchange.direct.status != strict.request.nova_status:
            problems.append(f"{line}\n    corpus expects Nova: {strict.request.nova_status}")
        if (exchange.direct.status, exchange.direct.fault) == got:
            problems.append(f"{line}\n    no difference: belongs in the main corpus")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
