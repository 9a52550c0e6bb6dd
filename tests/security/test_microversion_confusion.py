"""Microversion confusion: Nova runs a request at exactly the version the gateway decided.

Owns the version-header corpus (precedence, duplicates, case, other services' entries,
legacy and underscore spellings, ``latest``, malformed and unsupported values); it must
never accept a case without asserting the one concrete version novasim received.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pytest

from novasim.recorder import RecordedRequest
from tests.security.lab import ACTION_PATH, Lab
from tests.security.wire import AttackRequest, Header, Reply, Targets, request_bytes

STANDARD = "OpenStack-API-Version"
LEGACY = "X-OpenStack-Nova-API-Version"
MAXIMUM = "2.104"  # novasim's (and Nova 34's) maximum
PAUSE = b'{"pause": null}'
# Removed after 2.43: decided at 2.43 it runs, decided at 2.44 it is Nova's 404.
FLOATING = b'{"addFloatingIp": {"address": "10.0.0.9"}}'
FLOATING_LAST = (2, 43)


@dataclass(frozen=True)
class VersionCase:
    id: str
    headers: tuple[Header, ...]
    expect: str | int  # the decided version, or the refusal's status


CASES: list[VersionCase] = [
    VersionCase("no-header", (), "2.1"),
    VersionCase("standard", ((STANDARD, "compute 2.43"),), "2.43"),
    VersionCase("standard-past-floating", ((STANDARD, "compute 2.44"),), "2.44"),
    VersionCase("service-upper-case", ((STANDARD, "COMPUTE 2.43"),), "2.43"),
    VersionCase("service-mixed-case", ((STANDARD, "Compute 2.44"),), "2.44"),
    VersionCase("name-lower-case", (("openstack-api-version", "compute 2.43"),), "2.43"),
    VersionCase("name-upper-case", (("OPENSTACK-API-VERSION", "compute 2.44"),), "2.44"),
    VersionCase("double-space", ((STANDARD, "compute  2.43"),), "2.43"),
    VersionCase("tab-separated", ((STANDARD, "compute\t2.44"),), "2.44"),
    VersionCase("trailing-comma", ((STANDARD, "compute 2.43,"),), "2.43"),
    VersionCase("last-compute-entry-wins", ((STANDARD, "compute 2.44, compute 2.43"),), "2.43"),
    VersionCase("last-compute-entry-wins-2", ((STANDARD, "compute 2.43, compute 2.44"),), "2.44"),
    VersionCase(
        "two-standard-headers", ((STANDARD, "compute 2.43"), (STANDARD, "compute 2.44")), "2.44"
    ),
    VersionCase(
        "two-standard-headers-2", ((STANDARD, "compute 2.44"), (STANDARD, "compute 2.43")), "2.43"
    ),
    VersionCase("other-service-first", ((STANDARD, "volume 3.50, compute 2.43"),), "2.43"),
    VersionCase("other-service-last", ((STANDARD, "compute 2.44, volume 3.50"),), "2.44"),
    VersionCase("other-service-only", ((STANDARD, "volume 3.50"),), "2.1"),
    VersionCase("other-service-then-legacy", ((STANDARD, "volume 3.50"), (LEGACY, "2.44")), "2.44"),
    VersionCase("service-without-version", ((STANDARD, "compute"),), "2.1"),
    VersionCase(
        "service-without-version-then-legacy", ((STANDARD, "compute"), (LEGACY, "2.43")), "2.43"
    ),
    VersionCase("standard-beats-legacy", ((STANDARD, "compute 2.43"), (LEGACY, "2.44")), "2.43"),
    VersionCase("standard-beats-legacy-2", ((LEGACY, "2.43"), (STANDARD, "compute 2.44")), "2.44"),
    VersionCase("legacy", ((LEGACY, "2.43"),), "2.43"),
    VersionCase("legacy-lower-case-name", (("x-openstack-nova-api-version", "2.44"),), "2.44"),
    VersionCase("legacy-last-item-wins", ((LEGACY, "2.44, 2.43"),), "2.43"),
    VersionCase("legacy-last-item-wins-2", ((LEGACY, "2.43, 2.44"),), "2.44"),
    VersionCase("two-legacy-headers", ((LEGACY, "2.43"), (LEGACY, "2.44")), "2.44"),
    VersionCase(
        "underscore-standard-is-dropped",
        (("OpenStack_API_Version", "compute 2.44"), (STANDARD, "compute 2.43")),
        "2.43",
    ),
    VersionCase("underscore-standard-alone", (("OpenStack_API_Version", "compute 2.44"),), "2.1"),
    VersionCase(
        "underscore-legacy-is-dropped",
        ((LEGACY, "2.43"), ("X_OpenStack_Nova_API_Version", "2.44")),
        "2.43",
    ),
    VersionCase("latest", ((STANDARD, "compute latest"),), MAXIMUM),
    VersionCase("legacy-latest", ((LEGACY, "latest"),), MAXIMUM),
    VersionCase("latest-then-concrete", ((STANDARD, "compute latest, compute 2.43"),), "2.43"),
    VersionCase("minimum", ((STANDARD, "compute 2.1"),), "2.1"),
    VersionCase("maximum", ((STANDARD, f"compute {MAXIMUM}"),), MAXIMUM),
    # Nova reads header bytes as latin-1: a UTF-8 no-break space makes "computeÂ", no
    # compute entry at all, so Nova (and the gateway) fall back to 2.1.
    VersionCase("unicode-space", ((STANDARD, "compute\u00a02.43"),), "2.1"),
    # Malformed: Nova's 400, without version headers.
    VersionCase("latest-upper-case", ((STANDARD, "compute LATEST"),), 400),
    VersionCase("leading-zero-minor", ((STANDARD, "compute 2.043"),), 400),
    VersionCase("leading-zero-major", ((STANDARD, "compute 02.43"),), 400),
    VersionCase("three-parts", ((STANDARD, "compute 2.43.0"),), 400),
    VersionCase("negative", ((STANDARD, "compute -2.43"),), 400),
    VersionCase("with-parameters", ((STANDARD, "compute 2.43;q=1"),), 400),
    VersionCase("v-prefix", ((STANDARD, "compute v2.43"),), 400),
    VersionCase("empty-legacy", ((LEGACY, ""),), 400),
    VersionCase("unicode-space-after-legacy", ((LEGACY, "2.43\u00a0"),), 400),
    VersionCase("legacy-garbage", ((LEGACY, "abc"),), 400),
    VersionCase("malformed-last-entry", ((STANDARD, "compute 2.43, compute x"),), 400),
    VersionCase("arabic-indic-digits", ((STANDARD, "compute \u0662.\u0664\u0663"),), 400),
    VersionCase("fullwidth-digits", ((STANDARD, "compute \uff12.\uff14\uff13"),), 400),
    # Nova reads latin-1, where "2.4" + ARABIC-INDIC DIGIT THREE is no number at all.
    VersionCase("non-ascii-digit-after-ascii", ((STANDARD, "compute 2.4\u0663"),), 400),
    VersionCase("superscript-digit", ((LEGACY, "2.4\u00b3"),), 400),
    # Unsupported: Nova's 406.
    VersionCase("too-high", ((STANDARD, "compute 2.1000"),), 406),
    VersionCase("one-past-maximum", ((STANDARD, "compute 2.105"),), 406),
    VersionCase("major-3", ((STANDARD, "compute 3.0"),), 406),
    VersionCase("two-point-zero", ((STANDARD, "compute 2.0"),), 406),
    VersionCase("legacy-too-high", ((LEGACY, "2.999"),), 406),
]


def _version_lines(record: RecordedRequest, name: str) -> list[str]:
    return [value for key, value in record.headers if key.lower() == name.lower()]


def version_request(server: str, body: bytes, headers: tuple[Header, ...]) -> bytes:
    """The member's action on ``server`` with the version ``headers``."""
    sent = [("X-Auth-Token", "alice:p1"), ("Content-Type", "application/json"), *headers]
    return request_bytes("POST", ACTION_PATH.format(server), sent, body)


async def _send(lab: Lab, server: str, body: bytes, headers: tuple[Header, ...]) -> Reply:
    return (await lab.send(version_request(server, body, headers))).reply


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_version_variant(lab: Lab, case: VersionCase) -> None:
    server = lab.server("p1")
    mark = lab.mark()
    reply = await _send(lab, server, PAUSE, case.headers)
    forwarded = lab.forwarded(mark)
    if isinstance(case.expect, int):
        assert reply.status == case.expect, reply.body
        assert forwarded == []
        assert lab.actions_run(server) == []
        return
    decided = case.expect
    assert reply.status == 202, reply.body
    assert len(forwarded) == 1
    # Exactly one line of each, with the concrete version decided; nothing else versioned.
    assert _version_lines(forwarded[0], STANDARD) == [f"compute {decided}"]
    assert _version_lines(forwarded[0], LEGACY) == [decided]
    assert not [k for k, _ in forwarded[0].headers if "_" in k]
    # novasim answered at that version, and the client was told so.
    assert reply.header(STANDARD) == f"compute {decided}"
    assert reply.header(LEGACY) == decided

    # The same headers on addFloatingIp (gone after 2.43): runs only where decided so.
    floating_server = lab.server("p1")
    mark = lab.mark()
    reply = await _send(lab, floating_server, FLOATING, case.headers)
    forwarded = lab.forwarded(mark)
    major, minor = (int(part) for part in decided.split("."))
    if (major, minor) <= FLOATING_LAST:
        assert [_version_lines(r, STANDARD) for r in forwarded] == [[f"compute {decided}"]]
        assert [_version_lines(r, LEGACY) for r in forwarded] == [[decided]]
    else:
        assert reply.status == 404
        assert reply.header(STANDARD) == f"compute {decided}"
        assert forwarded == []


# -- the corpus as data --------------------------------------------------------------------


def _variant(body: bytes, headers: tuple[Header, ...], targets: Targets) -> bytes:
    return version_request(targets.server, body, headers)


def attack_requests() -> list[AttackRequest]:
    """Every request this module sends, as data (tests/e2e replays them before the real Nova).

    The suite sends the addFloatingIp of a decided case to a second fresh server; here both
    go to ``Targets.server``.
    """
    requests: list[AttackRequest] = []
    for case in CASES:
        decided = not isinstance(case.expect, int)
        requests.append(
            AttackRequest(f"pause/{case.id}", partial(_variant, PAUSE, case.headers), decided)
        )
        if isinstance(case.expect, str):
            major, minor = (int(part) for part in case.expect.split("."))
            requests.append(
                AttackRequest(
                    f"add-floating-ip/{case.id}",
                    partial(_variant, FLOATING, case.headers),
                    acts=(major, minor) <= FLOATING_LAST,
                )
            )
    return requests
