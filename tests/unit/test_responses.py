"""The headers and the wire form of the gateway's answers (gateway/responses.py), judged
against novasim's wire module, written apart from the gateway from Nova's stack: Nova's
fault wrapper, keystonemiddleware's 401 and webob's error pages."""

from __future__ import annotations

import json

import pytest

from gateway.call import Call
from gateway.identity.refusals import AUTH_REQUIRED, unauthorized
from gateway.nova.faults import Fault, not_routed
from gateway.nova.types import Version
from gateway.responses import answer_headers, fault_response
from novasim import faults as sim_faults
from novasim import microversion as sim_microversion
from novasim import wire

REQUEST_ID = "req-6c2ad1a2-7a3c-4b9d-9a86-8e6d7d2b2f4e"


def call(method: str = "POST", version: Version | None = None, accept: str | None = None) -> Call:
    headers = [("Accept", accept)] if accept is not None else []
    made = Call(REQUEST_ID, method, "/v2.1/servers/x/action", headers, "127.0.0.1", "http", "h")
    made.version = version
    return made


def sim_version(version: Version | None) -> sim_microversion.Version | None:
    return None if version is None else sim_microversion.parse(str(version))


def header_lines(headers: object, names: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: sorted(headers.getall(name, [])) for name in names}  # type: ignore[attr-defined]


COMPARED = (
    "x-openstack-request-id",
    "x-compute-request-id",
    "OpenStack-API-Version",
    "X-OpenStack-Nova-API-Version",
    "Vary",
    "Content-Type",
)


@pytest.mark.parametrize("version", [None, Version(2, 1), Version(2, 73), Version(2, 104)])
@pytest.mark.parametrize(("status", "message"), [(409, "Instance x is locked"), (400, "m")])
def test_a_nova_fault_is_what_novas_fault_wrapper_writes(
    version: Version | None, status: int, message: str
) -> None:
    ours = fault_response(call(version=version), Fault(status, message))
    sim_fault = sim_faults.Fault(status, message)
    theirs = wire.fault_response(REQUEST_ID, sim_version(version), sim_fault)
    assert ours.status == theirs.status
    assert json.loads(ours.body) == json.loads(theirs.body)  # type: ignore[arg-type]
    assert header_lines(ours.headers, COMPARED) == header_lines(theirs.headers, COMPARED)


def test_the_401_is_keystonemiddlewares() -> None:
    ours = fault_response(call(version=Version(2, 90)), unauthorized("token_invalid", "Keystone"))
    theirs = wire.unauthorized_response(REQUEST_ID, AUTH_REQUIRED)
    assert ours.status == theirs.status == 401
    assert json.loads(ours.body) == json.loads(theirs.body)  # type: ignore[arg-type]
    names = COMPARED[:5]  # no version headers: Nova never saw the request
    assert header_lines(ours.headers, names) == header_lines(theirs.headers, names)
    assert ours.headers["WWW-Authenticate"] == "Keystone"


@pytest.mark.parametrize("accept", ["", "application/json", "text/html", "*/*", "text/plain"])
def test_the_routers_404_is_webobs_page_for_the_accept_header(accept: str) -> None:
    ours = fault_response(call(method="GET", accept=accept or None), not_routed())
    theirs = wire.webob_error(REQUEST_ID, 404, wire.NOT_FOUND_TEXT, accept)
    assert ours.status == theirs.status == 404
    assert ours.body == theirs.body
    assert ours.headers["Content-Type"] == theirs.headers["Content-Type"]
    assert "OpenStack-API-Version" not in ours.headers


def test_a_head_answer_states_the_length_of_the_body_it_does_not_send() -> None:
    fault = not_routed()
    rendered = fault.render("GET", None)
    ours = fault_response(call(method="HEAD"), fault)
    assert int(ours.headers["Content-Length"]) == fault.render("HEAD", None).content_length
    assert rendered.content_length > 0


def test_a_fault_that_carries_its_own_version_shows_that_one() -> None:
    """A malformed or unsupported version header: Nova answers with the version it read."""
    fault = Fault(406, "Version 2.105 is not supported by the API.", version_headers=False)
    fault.version = Version(2, 105)
    ours = fault_response(call(version=None), fault)
    assert ours.headers["OpenStack-API-Version"] == "compute 2.105"
    assert ours.headers["X-OpenStack-Nova-API-Version"] == "2.105"
    novas = wire.base_headers(REQUEST_ID, sim_version(Version(2, 105)))
    assert sorted(ours.headers.getall("Vary")) == sorted(novas.getall("Vary"))


def test_retry_after_and_the_calls_own_headers_are_added() -> None:
    made = call(version=Version(2, 1))
    made.answer_headers.append(("RateLimit-Policy", "actions;q=10;w=60"))
    ours = fault_response(made, Fault(429, "slow down", retry_after=7))
    assert ours.headers["Retry-After"] == "7"
    assert ours.headers["RateLimit-Policy"] == "actions;q=10;w=60"
    assert json.loads(ours.body)["overLimit"]["retryAfter"] == "7"  # type: ignore[arg-type]


def test_answer_headers_of_a_forwarded_call() -> None:
    made = call(version=None)
    assert answer_headers(made) == [
        ("x-openstack-request-id", REQUEST_ID),
        ("x-compute-request-id", REQUEST_ID),
    ]
    made.version = Version(2, 88)
    made.answer_headers.append(("RateLimit-Policy", "p"))
    expected = list(wire.base_headers(REQUEST_ID, sim_version(Version(2, 88))).items())
    ours = answer_headers(made)
    assert ours[-1] == ("RateLimit-Policy", "p")
    # Nova's version headers and request ids; Vary lines come from the upstream's answer.
    assert sorted(ours[:-1]) == sorted(line for line in expected if line[0] != "Vary")
