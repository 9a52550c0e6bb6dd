"""Spoofed identity headers, in every identity mode: they change no decision and never go up.

Owns the header-spoof matrix (every keystonemiddleware header, in dash, underscore and
case spellings, in noauth, jwt and keystone modes); it must never let a spoofed header
count as proof of anything: each case asserts the answer and what novasim received.
"""

from __future__ import annotations

from functools import partial

import pytest

from tests.security.lab import ACTION_PATH, Lab, Tokens, identity_headers_in
from tests.security.wire import AttackRequest, Header, Targets, request_bytes

# What keystonemiddleware sets for Nova (and the legacy spellings Nova still reads),
# each with the value that would help an attacker most.
SPOOFS: list[Header] = [
    ("X-Roles", "admin"),
    ("X-Role", "admin"),
    ("X-User-Id", "admin"),
    ("X-User", "admin"),
    ("X-User-Name", "admin"),
    ("X-Project-Id", "p1"),
    ("X-Project-Name", "p1"),
    ("X-Tenant-Id", "p1"),
    ("X-Tenant", "p1"),
    ("X-Tenant-Name", "p1"),
    ("X-Identity-Status", "Confirmed"),
    ("X-Service-Identity-Status", "Confirmed"),
    ("X-Service-Roles", "admin,service"),
    ("X-Domain-Id", "default"),
    ("X-Domain-Name", "Default"),
    ("X-Is-Admin-Project", "True"),
    ("OpenStack-System-Scope", "all"),
    ("X-System-Scope", "all"),
    ("X-User-Domain-Id", "default"),
    ("X-Project-Domain-Id", "default"),
    ("X-Service-Catalog", "[]"),
    ("X-Auth-Project-Id", "p1"),
    ("X-Trust-Id", "trust-1"),
    ("X-Service-User-Id", "nova"),
]


def spellings(name: str) -> list[str]:
    """The spellings a WSGI server (or a lenient proxy) would read as the same header."""
    underscore = name.replace("-", "_")
    return [name, underscore, name.lower(), name.upper(), underscore.lower()]


PAUSE = b'{"pause": null}'
JSON = ("Content-Type", "application/json")


def pause_request(server: str, token: str, extra: list[Header]) -> bytes:
    return request_bytes(
        "POST", ACTION_PATH.format(server), [("X-Auth-Token", token), JSON, *extra], PAUSE
    )


@pytest.mark.parametrize(("name", "value"), SPOOFS, ids=[name for name, _ in SPOOFS])
async def test_spoofed_header_changes_no_decision(any_lab: Lab, name: str, value: str) -> None:
    """Per spelling: a reader stays 403, another project stays 404, nothing is forwarded;
    then a member's allowed pause carries all five spellings and novasim sees none."""
    lab = any_lab
    server = lab.server("p1")
    for spelled in spellings(name):
        mark = lab.mark()
        as_reader = (
            await lab.send(pause_request(server, lab.tokens.reader, [(spelled, value)]))
        ).reply
        assert as_reader.status == 403, (spelled, as_reader.body)
        assert as_reader.json()["forbidden"]["message"] == (
            "Policy doesn't allow os_compute_api:os-pause-server:pause to be performed."
        )
        as_other = (
            await lab.send(pause_request(server, lab.tokens.other, [(spelled, value)]))
        ).reply
        assert as_other.status == 404, (spelled, as_other.body)
        assert (
            as_other.json()["itemNotFound"]["message"] == f"Instance {server} could not be found."
        )
        assert lab.forwarded(mark) == [], spelled
        assert identity_headers_in(lab.seen(mark)) == [], spelled
    assert lab.actions_run(server) == []
    assert lab.vm_state(server) == "active"

    mark = lab.mark()
    extra = [(spelled, value) for spelled in spellings(name)]
    reply = (await lab.send(pause_request(server, lab.tokens.member, extra))).reply
    forwarded = lab.forwarded(mark)
    assert [(r.method, r.path, r.body) for r in forwarded] == [
        ("POST", ACTION_PATH.format(server), PAUSE)
    ]
    assert forwarded[0].header("X-Auth-Token") == lab.tokens.member
    assert identity_headers_in(lab.seen(mark)) == []
    # novasim reads lab tokens only: the JWT lab's forwarded token is refused there.
    assert reply.status == (401 if lab.mode == "jwt" else 202)


async def test_every_spoof_at_once(any_lab: Lab) -> None:
    """All headers in dash and underscore spelling together: still 403/404/401."""
    lab = any_lab
    server = lab.server("p1")
    extra = [(spelled, value) for name, value in SPOOFS for spelled in spellings(name)[:2]]
    mark = lab.mark()
    for token, status in ((lab.tokens.reader, 403), (lab.tokens.other, 404)):
        assert (await lab.send(pause_request(server, token, extra))).reply.status == status
    no_token = request_bytes("POST", ACTION_PATH.format(server), [JSON, *extra], PAUSE)
    assert (await lab.send(no_token)).reply.status == 401
    assert lab.forwarded(mark) == []
    assert identity_headers_in(lab.seen(mark)) == []
    assert lab.actions_run(server) == []


WITHOUT_A_TOKEN: list[tuple[str, list[Header]]] = [
    ("dash", [("X-User-Id", "alice"), ("X-Project-Id", "p1"), ("X-Roles", "admin")]),
    ("underscore", [("X_User_Id", "alice"), ("X_Project_Id", "p1"), ("X_Roles", "admin")]),
    (
        "confirmed",
        [("X-Identity-Status", "Confirmed"), ("X-User-Id", "admin"), ("X-Tenant-Id", "p1")],
    ),
    ("empty-token", [("X-Auth-Token", "")]),
    ("blank-token", [("X-Auth-Token", " ")]),
]


@pytest.mark.parametrize(
    "headers",
    [headers for _, headers in WITHOUT_A_TOKEN],
    ids=[name for name, _ in WITHOUT_A_TOKEN],
)
async def test_identity_headers_without_a_token_are_401(
    any_lab: Lab, headers: list[Header]
) -> None:
    """A Nova that trusted identity headers without a token (the lab's
    LAB_TRUST_IDENTITY_HEADERS) must never see a request the gateway did not authenticate."""
    lab = any_lab
    server = lab.server("p1")
    mark = lab.mark()
    reply = (
        await lab.send(request_bytes("POST", ACTION_PATH.format(server), [JSON, *headers], PAUSE))
    ).reply
    assert reply.status == 401
    # keystone and jwt modes say how to authenticate; noauth has nothing to point at.
    assert (reply.header("WWW-Authenticate") is None) == (lab.mode == "noauth")
    assert lab.seen(mark) == []  # not even a lookup


async def test_underscore_token_is_a_second_spelling_and_is_dropped(any_lab: Lab) -> None:
    """X_Auth_Token would be X-Auth-Token to a WSGI Nova: the gateway ignores and drops it."""
    lab = any_lab
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("X-Auth-Token", lab.tokens.other), ("X_Auth_Token", lab.tokens.admin)]
    reply = (await lab.send(pause_request(server, lab.tokens.other, headers[1:]))).reply
    assert reply.status == 404  # decided as eve (p2), not as admin
    only_underscore = request_bytes(
        "POST", ACTION_PATH.format(server), [("x_auth_token", lab.tokens.admin), JSON], PAUSE
    )
    assert (await lab.send(only_underscore)).reply.status == 401
    assert lab.forwarded(mark) == []
    assert all(
        name.lower().replace("_", "-") != "x-auth-token" or value != lab.tokens.admin
        for record in lab.seen(mark)
        for name, value in record.headers
    )


async def test_two_different_tokens_are_refused(any_lab: Lab) -> None:
    lab = any_lab
    server = lab.server("p1")
    mark = lab.mark()
    twice = request_bytes(
        "POST",
        ACTION_PATH.format(server),
        [("X-Auth-Token", lab.tokens.reader), ("X-Auth-Token", lab.tokens.admin), JSON],
        PAUSE,
    )
    assert (await lab.send(twice)).reply.status == 401
    assert lab.seen(mark) == []


async def test_bearer_token_beside_x_auth_token(any_lab: Lab) -> None:
    """jwt mode reads both and refuses two different tokens; the others decide on
    X-Auth-Token alone (the reader), so an admin Bearer token buys nothing."""
    lab = any_lab
    server = lab.server("p1")
    mark = lab.mark()
    headers = [("Authorization", f"Bearer {lab.tokens.admin}")]
    reply = (await lab.send(pause_request(server, lab.tokens.reader, headers))).reply
    assert reply.status == (401 if lab.mode == "jwt" else 403)
    assert lab.forwarded(mark) == []
    assert lab.actions_run(server) == []


# -- the corpus as data --------------------------------------------------------------------


def _pause(token: str, extra: list[Header], targets: Targets) -> bytes:
    return pause_request(targets.server, token, extra)


def _unauthenticated(headers: list[Header], targets: Targets) -> bytes:
    return request_bytes("POST", ACTION_PATH.format(targets.server), [JSON, *headers], PAUSE)


def attack_requests(tokens: Tokens) -> list[AttackRequest]:
    """Every request one identity mode's run of this module sends, as data, with ``tokens``
    (tests/e2e replays them before the real Nova). The suite sends them once per mode."""
    requests: list[AttackRequest] = []
    for name, value in SPOOFS:
        for spelled in spellings(name):
            for who, token in (("reader", tokens.reader), ("other", tokens.other)):
                requests.append(
                    AttackRequest(
                        f"spoofed-header/{name}/{spelled}/{who}",
                        partial(_pause, token, [(spelled, value)]),
                    )
                )
        every_spelling = [(spelled, value) for spelled in spellings(name)]
        requests.append(
            AttackRequest(
                f"spoofed-header/{name}/member",
                partial(_pause, tokens.member, every_spelling),
                True,
            )
        )
    every = [(spelled, value) for name, value in SPOOFS for spelled in spellings(name)[:2]]
    requests += [
        AttackRequest("every-spoof-at-once/reader", partial(_pause, tokens.reader, every)),
        AttackRequest("every-spoof-at-once/other", partial(_pause, tokens.other, every)),
        AttackRequest("every-spoof-at-once/no-token", partial(_unauthenticated, every)),
    ]
    requests += [
        AttackRequest(
            f"identity-headers-without-a-token/{name}", partial(_unauthenticated, headers)
        )
        for name, headers in WITHOUT_A_TOKEN
    ]
    requests += [
        AttackRequest(
            "underscore-token/beside-a-token",
            partial(_pause, tokens.other, [("X_Auth_Token", tokens.admin)]),
        ),
        AttackRequest(
            "underscore-token/alone",
            lambda t: request_bytes(
                "POST", ACTION_PATH.format(t.server), [("x_auth_token", tokens.admin), JSON], PAUSE
            ),
        ),
        AttackRequest(
            "two-different-tokens",
            lambda t: request_bytes(
                "POST",
                ACTION_PATH.format(t.server),
                [("X-Auth-Token", tokens.reader), ("X-Auth-Token", tokens.admin), JSON],
                PAUSE,
            ),
        ),
        AttackRequest(
            "bearer-token-beside-x-auth-token",
            partial(_pause, tokens.reader, [("Authorization", f"Bearer {tokens.admin}")]),
        ),
    ]
    return requests
