"""Path confusion: every other spelling of an action path is refused or forwarded byte for byte.

Owns the path-canonicalisation table (``//``, dot segments, escapes, ``;`` parameters,
fragments, case, suffixes, absolute form, URL project ids, overlong paths, ``/v2``);
it must never accept a case on the status alone: each asserts what reached novasim and
what novasim ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest

from tests.security.lab import Lab
from tests.security.wire import AttackRequest, Header, Targets, request_bytes

PAUSE = b'{"pause": null}'
RUN = "run"  # the canonical action path (plus a query): forwarded exactly and run


@dataclass(frozen=True)
class PathCase:
    id: str
    target: str  # {s} server id, {S} upper-cased, {s_esc} first char escaped, {port}
    expect: int | str


def expand(template: str, server: str, port: int) -> str:
    first_dash = server.index("-")
    return template.format(
        s=server,
        S=server.upper(),
        s_esc=f"%{ord(server[0]):02X}{server[1:]}",
        s_dash=f"{server[:first_dash]}%2D{server[first_dash + 1 :]}",
        port=port,
    )


CASES: list[PathCase] = [
    # Empty segments (Istio CVE-2021-31920, OPA-Envoy CVE-2026-26205).
    PathCase("slash-slash-after-prefix", "/v2.1//servers/{s}/action", 400),
    PathCase("slash-slash-leading", "//v2.1/servers/{s}/action", 400),
    PathCase("slash-slash-before-id", "/v2.1/servers//{s}/action", 400),
    PathCase("slash-slash-before-action", "/v2.1/servers/{s}//action", 400),
    PathCase("slash-slash-trailing", "/v2.1/servers/{s}/action//", 400),
    # Dot segments (Envoy CVE-2019-9901).
    PathCase("dot-after-prefix", "/v2.1/./servers/{s}/action", 400),
    PathCase("dot-before-action", "/v2.1/servers/{s}/./action", 400),
    PathCase("dotdot-back-to-action", "/v2.1/servers/{s}/x/../action", 400),
    PathCase("dotdot-over-a-segment", "/v2.1/x/../servers/{s}/action", 400),
    PathCase("dotdot-at-end", "/v2.1/servers/{s}/action/..", 400),
    PathCase("dot-at-end", "/v2.1/servers/{s}/action/.", 400),
    PathCase("dotdot-from-root", "/../v2.1/servers/{s}/action", 400),
    # Escapes (Envoy CVE-2021-29492) and double encoding.
    PathCase("escaped-slash", "/v2.1/servers%2F{s}/action", 400),
    PathCase("escaped-slash-lower", "/v2.1/servers/{s}%2faction", 400),
    PathCase("escaped-dot-segment", "/v2.1/servers/{s}/%2E/action", 400),
    PathCase("escaped-dotdot", "/v2.1/servers/{s}/x/%2e%2e/action", 400),
    PathCase("escaped-backslash", "/v2.1/servers/{s}%5Caction", 400),
    PathCase("backslash", "/v2.1/servers/{s}\\action", 400),
    PathCase("escaped-nul-in-id", "/v2.1/servers/{s}%00/action", 400),
    PathCase("escaped-nul-after-action", "/v2.1/servers/{s}/action%00", 400),
    PathCase("escaped-a-in-action", "/v2.1/servers/{s}/%61ction", 400),
    PathCase("escaped-two-letters", "/v2.1/servers/{s}/%61%63tion", 400),
    PathCase("escaped-n-lower-hex", "/v2.1/servers/{s}/actio%6e", 400),
    PathCase("escaped-s-in-servers", "/v2.1/%73ervers/{s}/action", 400),
    PathCase("escaped-v-in-prefix", "/%762.1/servers/{s}/action", 400),
    PathCase("escaped-dot-in-prefix", "/v2%2E1/servers/{s}/action", 400),
    PathCase("escaped-char-of-id", "/v2.1/servers/{s_esc}/action", 400),
    PathCase("escaped-dash-of-id", "/v2.1/servers/{s_dash}/action", 400),
    PathCase("escaped-tilde", "/v2.1/servers/{s}/action%7E", 400),
    PathCase("double-encoded-a", "/v2.1/servers/{s}/%2561ction", 400),
    PathCase("double-encoded-slash", "/v2.1/servers%252F{s}/action", 400),
    PathCase("lone-percent", "/v2.1/servers/{s}/action%", 400),
    PathCase("bad-escape", "/v2.1/servers/{s}/action%zz", 400),
    # Matrix parameters (Envoy's "..;" advisories).
    PathCase("semicolon-on-action", "/v2.1/servers/{s}/action;x=1", 400),
    PathCase("semicolon-on-id", "/v2.1/servers/{s};x/action", 400),
    PathCase("semicolon-on-prefix", "/v2.1;/servers/{s}/action", 400),
    PathCase("dotdot-semicolon", "/v2.1/servers/{s}/..;/{s}/action", 400),
    PathCase("escaped-semicolon", "/v2.1/servers/{s}/action%3Bx", 400),
    # Fragments (Envoy CVE-2021-32779) and escaped delimiters.
    PathCase("fragment", "/v2.1/servers/{s}/action#x", 400),
    PathCase("fragment-dotdot", "/v2.1/servers/{s}/x#/../action", 400),
    PathCase("escaped-hash", "/v2.1/servers/{s}/action%23x", 400),
    PathCase("escaped-question-mark", "/v2.1/servers/{s}/action%3Fx", 400),
    # Request-target forms other than origin-form.
    PathCase("absolute-form", "http://127.0.0.1:{port}/v2.1/servers/{s}/action", 400),
    PathCase("absolute-form-other-host", "http://nova.internal/v2.1/servers/{s}/action", 400),
    PathCase("absolute-form-https", "https://127.0.0.1/v2.1/servers/{s}/action", 400),
    PathCase("asterisk-form", "*", 400),
    PathCase("no-leading-slash", "v2.1/servers/{s}/action", 400),
    PathCase("raw-non-ascii", "/v2.1/servers/{s}/\u00e1ction", 400),
    # Case, suffixes, trailing slash, other API versions: Nova 404s or routes elsewhere.
    PathCase("trailing-slash", "/v2.1/servers/{s}/action/", 404),
    PathCase("capital-action", "/v2.1/servers/{s}/Action", 404),
    PathCase("upper-action", "/v2.1/servers/{s}/ACTION", 404),
    PathCase("capital-servers", "/v2.1/Servers/{s}/action", 404),
    PathCase("capital-prefix", "/V2.1/servers/{s}/action", 404),
    PathCase("json-suffix", "/v2.1/servers/{s}/action.json", 404),
    PathCase("xml-suffix", "/v2.1/servers/{s}/action.xml", 404),
    PathCase("dots-suffix", "/v2.1/servers/{s}/action..", 404),
    PathCase("legacy-v2", "/v2/servers/{s}/action", 404),
    PathCase("v2.0", "/v2.0/servers/{s}/action", 404),
    PathCase("no-prefix", "/servers/{s}/action", 404),
    PathCase("prefix-with-suffix", "/v2.1x/servers/{s}/action", 404),
    PathCase("prefix-twice", "/v2.1/v2.1/servers/{s}/action", 404),
    # Project ids in the URL: Nova's [0-9a-f-]+, and only the token's.
    PathCase("project-not-hex", "/v2.1/p1/servers/{s}/action", 404),
    PathCase("project-upper-hex", "/v2.1/ABC/servers/{s}/action", 404),
    PathCase("project-not-the-tokens", "/v2.1/0abc/servers/{s}/action", 400),
    # Lengths and ids.
    PathCase("overlong-path", "/v2.1/servers/" + "a" * 2100 + "/action", 414),
    PathCase("overlong-request-line", "/v2.1/servers/{s}/action?" + "x" * 9000, 400),
    PathCase("unknown-server", "/v2.1/servers/00000000-0000-4000-8000-000000000000/action", 404),
    PathCase("escaped-space-in-id", "/v2.1/servers/{s}%20/action", 404),
    PathCase("upper-case-id", "/v2.1/servers/{S}/action", 404),
    PathCase("detail-as-id", "/v2.1/servers/detail/action", 404),
    # Not an action to the gateway, nor to Nova: its router routes them nowhere, so they
    # are answered as it answers them (404) and nothing goes up.
    PathCase("escaped-space-after-action", "/v2.1/servers/{s}/action%20", 404),
    PathCase("overlong-utf8-a", "/v2.1/servers/{s}/%C1%A1ction", 404),
    PathCase("actions-plural", "/v2.1/servers/{s}/actions", 404),
    PathCase("action-hyphen-suffix", "/v2.1/servers/{s}/action-x", 404),
    PathCase("project-named-servers", "/v2.1/servers/servers/{s}/action", 404),
    PathCase("segment-after-action", "/v2.1/servers/{s}/action/x", 404),
    # The canonical path with a query (Nova ignores it): forwarded exactly and run.
    PathCase("query", "/v2.1/servers/{s}/action?x=1", RUN),
    PathCase("empty-query", "/v2.1/servers/{s}/action?", RUN),
    PathCase("query-with-dotdot", "/v2.1/servers/{s}/action?../../x", RUN),
    PathCase("query-with-escaped-slash", "/v2.1/servers/{s}/action?a=%2F..%2F", RUN),
    PathCase("query-with-semicolon", "/v2.1/servers/{s}/action?a=1;b=2", RUN),
]


JSON: Header = ("Content-Type", "application/json")


def variant_request(case: PathCase, server: str, port: int) -> bytes:
    """The member's pause of ``server``, sent to the case's spelling of the action path."""
    target = expand(case.target, server, port)
    return request_bytes("POST", target, [("X-Auth-Token", "alice:p1"), JSON], PAUSE)


def url_project_request(server: str, token: str) -> bytes:
    """A pause of ``server`` under project ``0abc`` in the URL, with ``token``."""
    target = f"/v2.1/0abc/servers/{server}/action"
    return request_bytes("POST", target, [("X-Auth-Token", token), JSON], PAUSE)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_path_variant(lab: Lab, case: PathCase) -> None:
    server = lab.server("p1")
    target = expand(case.target, server, lab.port)
    mark = lab.mark()
    sent = await lab.send(variant_request(case, server, lab.port))
    reply = sent.reply
    forwarded = [(r.method, r.path, r.body) for r in lab.forwarded(mark)]
    # Every target goes up byte for byte (an empty query too: "/x?" stays "/x?").
    exact = target
    if isinstance(case.expect, int):
        assert reply.status == case.expect, reply.body
        assert forwarded == []
        assert lab.actions_run(server) == []
        assert lab.vm_state(server) == "active"
    else:
        assert forwarded == [("POST", exact, PAUSE)]
        assert reply.status == 202, reply.body
        assert lab.actions_run(server) == ["pause"]


async def test_project_in_url_that_is_the_tokens_is_forwarded_exactly(lab: Lab) -> None:
    server = lab.server("0abc")
    target = f"/v2.1/0abc/servers/{server}/action"
    mark = lab.mark()
    reply = (await lab.send(url_project_request(server, "alice:0abc"))).reply
    assert reply.status == 202
    assert [(r.method, r.path, r.body) for r in lab.forwarded(mark)] == [("POST", target, PAUSE)]
    assert lab.actions_run(server) == ["pause"]


async def test_project_in_url_is_checked_against_the_token_before_anything_else(
    lab: Lab,
) -> None:
    """eve (p2) naming p1's hex project in the URL of p1's server: 400, never a lookup."""
    server = lab.server("0abc")
    mark = lab.mark()
    reply = (await lab.send(url_project_request(server, "eve:0def"))).reply
    assert reply.status == 400
    assert "doesn't match Context's project_id '0def'" in reply.json()["badRequest"]["message"]
    assert lab.seen(mark) == []
    assert lab.actions_run(server) == []


def test_targets_are_distinct() -> None:
    """Data only: no two cases send the same request target."""
    targets = [case.target for case in CASES]
    assert len(targets) == len(set(targets))


def _variant(case: PathCase, targets: Targets) -> bytes:
    return variant_request(case, targets.server, targets.port)


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends, as data (tests/e2e replays them before the real Nova).

    The two URL-project requests name project 0abc, which only the suite's own server has;
    aimed at another project's server they are answered 404 instead.
    """
    return [
        *(
            AttackRequest(f"variant/{case.id}", partial(_variant, case), case.expect == RUN)
            for case in CASES
        ),
        AttackRequest(
            "url-project-is-the-tokens", lambda t: url_project_request(t.server, "alice:0abc")
        ),
        AttackRequest(
            "url-project-is-not-the-tokens", lambda t: url_project_request(t.server, "eve:0def")
        ),
    ]
